"""The simulator's pushes to the bot (SPEC §13 `POST /sim/webhook`): every order change becomes a signed
`{"type", "id"}` POST to the bot's `/crm/events`, delivered in order by one task, with a fault share of pushes
lost on the way (stable per push), so the bot's periodic sync is tested as the safety net."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str


class Pusher:
    """Pushes of one simulator. `log` holds every push made: type, id, dropped, the bot's HTTP status."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.webhook: Webhook | None = None
        self.log: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[tuple[Webhook, dict[str, Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def set_webhook(self, url: str | None, secret: str = "") -> None:
        """Push to `url` from now on (None: stop pushing)."""
        self.webhook = Webhook(url, secret) if url else None

    def push(self, kind: str, record_id: str, drop_share: float) -> None:
        """Push one change (unless the fault drops it)."""
        webhook = self.webhook
        if webhook is None:
            return
        entry: dict[str, Any] = {"type": kind, "id": record_id, "dropped": False, "status": None}
        number = len(self.log)
        self.log.append(entry)
        if drop_share and zlib.crc32(f"{self.seed}:push:{number}".encode()) / 2**32 < drop_share:
            entry["dropped"] = True
            return
        self._queue.put_nowait((webhook, entry))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        """One request per push, in order; a push the bot does not take is lost (no retry), as the bot's
        periodic sync must cope with."""
        async with ClientSession(timeout=ClientTimeout(total=5)) as session:
            while not self._queue.empty():
                webhook, entry = self._queue.get_nowait()
                body = json.dumps({"type": entry["type"], "id": entry["id"]}).encode()
                signature = hmac.new(webhook.secret.encode(), body, hashlib.sha256).hexdigest()
                headers = {"Content-Type": "application/json", "X-BikeWerk-Signature": signature}
                try:
                    async with session.post(webhook.url, data=body, headers=headers) as resp:
                        entry["status"] = resp.status
                except (ClientError, TimeoutError) as exc:
                    entry["status"] = type(exc).__name__

    async def delivered(self) -> None:
        """Return when every push made so far was delivered (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
