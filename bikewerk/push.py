"""The CRM's pushes (SPEC §13): `POST /crm/events` with `{"type", "id"}`, signed with HMAC-SHA256 of the body
(`X-BikeWerk-Signature`, hex, the secret from BIKEWERK_WEBHOOK_SECRET).

A push only says which record changed; the bot reads that record itself through the contract and stores it
with the sync's own code (`Syncer.sync_order`), so a push carries no data to trust and a replayed one only
reads the record again. The answer is 202 as soon as the event is queued; one supervised worker applies the
queued events in order (an event already waiting is not queued twice) and survives any failure of one. A
request without a valid signature is refused with 401 and logged; a signed body that breaks the contract is
kept aside like a sync record and answered 400. A push lost on the way is caught by the periodic sync.

`setup_push(app, receiver)` adds the route to any aiohttp application (the bot's HTTP server);
`PushReceiver.run(stop)` is the worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from bikewerk.contract import PushEvent, describe
from bot.logs import log_event

log = logging.getLogger(__name__)

PUSH_PATH = "/crm/events"
SIGNATURE_HEADER = "X-BikeWerk-Signature"
MAX_BODY = 16 * 1024  # a push is a type and an id; anything larger is not one
RAW_LIMIT = 1000  # characters of a rejected body kept aside

Apply = Callable[[PushEvent], Awaitable[None]]
KeepAside = Callable[[str | None, str, str], Awaitable[None]]  # record id, reason, raw body


def sign(secret: str, body: bytes) -> str:
    """The signature the CRM sends: HMAC-SHA256 of the body, hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the body's signature (compared in constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())


def read_push(body: bytes) -> PushEvent:
    """The event of a signed body (ValueError with a one-line reason when it breaks the contract)."""
    try:
        return PushEvent.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


class PushReceiver:
    """Queues signed CRM events and applies them one at a time in a supervised worker."""

    def __init__(self, secret: str, apply: Apply, keep_aside: KeepAside) -> None:
        if not secret:
            raise ValueError("a push receiver needs BIKEWERK_WEBHOOK_SECRET")
        self._secret = secret
        self._apply = apply
        self._keep_aside = keep_aside
        self._queue: asyncio.Queue[PushEvent] = asyncio.Queue()
        self._waiting: set[PushEvent] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.refused = 0  # requests refused for their signature
        self.applied = 0  # events applied (a failure counts too: the periodic sync catches it)

    # --- HTTP --------------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.json_response({"error": "too large for a push"}, status=413)
        if not signature_ok(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.refused += 1
            log_event(
                log,
                "push.refused",
                logging.WARNING,
                reason="missing signature" if SIGNATURE_HEADER not in request.headers else "bad signature",
                remote=request.remote,
                bytes=len(body),
            )
            return web.json_response({"error": "missing or bad signature"}, status=401)
        try:
            event = read_push(body)
        except ValueError as exc:
            raw = body.decode("utf-8", "replace")
            await self._keep_aside(_record_id(body), f"push: {exc}", raw[:RAW_LIMIT])
            return web.json_response({"error": str(exc)}, status=400)
        self.put(event)
        return web.json_response({"accepted": True}, status=202)

    # --- the worker --------------------------------------------------------------------------------------

    def put(self, event: PushEvent) -> None:
        """Queue an event, unless the same one is already waiting (a burst of pushes is one read)."""
        if event in self._waiting:
            return
        self._waiting.add(event)
        self._idle.clear()
        self._queue.put_nowait(event)

    async def run(self, stop: asyncio.Event) -> None:
        """Apply queued events until `stop` is set; a failing event is logged and the next one goes on."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                event = getting.result()
                self._waiting.discard(event)
                try:
                    await self._apply(event)
                except Exception as exc:  # supervised: one event's failure never stops the worker
                    log_event(
                        log, "push.failed", logging.ERROR, type=event.type, id=event.id, error=repr(exc)
                    )
                finally:
                    self.applied += 1
                    if self._queue.empty():
                        self._idle.set()
        finally:
            stopping.cancel()

    async def wait_idle(self) -> None:
        """Return when every queued event has been applied."""
        await self._idle.wait()


def _record_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    record_id = data.get("id") if isinstance(data, dict) else None
    return None if record_id is None else str(record_id)[:64]


def setup_push(app: web.Application, receiver: PushReceiver) -> None:
    """Add `POST /crm/events` to an aiohttp application."""
    app.router.add_post(PUSH_PATH, receiver.handle)
