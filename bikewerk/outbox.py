"""Writes back to the CRM (SPEC §10): queued in crm_outbox inside the bot's own transactions, delivered by a
worker under each write's Idempotency-Key, retried until the CRM acknowledges them.

A write is queued in the same transaction as the change it reports, so a change made in the bot is never lost
when the CRM is down or the process dies; every attempt carries the same key, so a retry after a lost answer
is applied once. One order's writes reach the CRM in the order they were made.

What a failure does (decided here):
- unreachable, timeouts, 5xx, 429 (after the client's own quick retries), 408, and 409 (the CRM is still
  working on that key): retried with exponential backoff and jitter, 30 s doubling up to 15 min (longer when
  the CRM asks so with Retry-After). The flush stops at the first such failure: the next would fail too.
- any other 4xx (400, 401, 403, 404, 422): the CRM refuses the write as it is. It is kept aside as a contract
  violation and raises a `sync.contract_violation` signal so a person looks at it; it is still retried every
  6 h (a fix on either side lets it through), but it no longer holds the order's later writes, nor the bot's
  status against the CRM's in the sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import aiosqlite
from pydantic import ValidationError

from backbone.clearing import clear_by_dedup
from backbone.signals import raise_signal
from bikewerk.client import BikeWerkClient, BikeWerkError, BikeWerkHTTPError, BikeWerkUnavailable
from bikewerk.contract import AssignWrite, CompensationWrite, StatusWrite, describe
from bot.clock import Clock
from bot.config import Settings
from bot.logs import log_event
from domain.policy import Policy
from domain.signals import ClearWhen
from domain.statuses import Status
from storage import crm
from storage.db import Database

log = logging.getLogger(__name__)

WriteKind = Literal["assign", "status", "compensation"]

_TRANSIENT_STATUSES = frozenset({408, 409})  # the client already retried 429 and 5xx


async def enqueue_crm_write(
    conn: aiosqlite.Connection,
    *,
    kind: WriteKind,
    order_id: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime,
) -> None:
    """Queue a write to the CRM inside the caller's transaction; the worker delivers it after the commit.

    `payload` is `{"manager_id": ...}` for "assign" and `{"status": <canonical status>, "actor": ..., "at":
    datetime}` for "status". `idempotency_key` must name the change itself (e.g. f"status:{event_row_id}",
    f"assign:{assignment_id}"): queuing the same key again is a no-op. A payload off the contract raises
    ValueError (a programming error: nothing is queued).
    """
    await crm.enqueue_write(
        conn,
        kind=kind,
        order_id=order_id,
        payload=_body(kind, order_id, payload, idempotency_key),
        idempotency_key=idempotency_key,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class CrmWrite:
    kind: WriteKind
    order_id: str
    payload: dict[str, Any]
    idempotency_key: str


async def enqueue_crm_writes(conn: aiosqlite.Connection, writes: Iterable[CrmWrite], now: datetime) -> None:
    """`enqueue_crm_write` for many writes in one statement (a dispatch pass over a backlog)."""
    await crm.enqueue_writes(
        conn,
        (
            (w.kind, w.order_id, _body(w.kind, w.order_id, w.payload, w.idempotency_key), w.idempotency_key)
            for w in writes
        ),
        now,
    )


async def enqueue_assigns(
    conn: aiosqlite.Connection, assigns: Iterable[tuple[str, str, str]], now: datetime
) -> None:
    """Assign writes for many orders in one statement (a dispatch pass): (order id, manager id, idempotency
    key). The body depends on the manager only, so each manager's is checked and encoded once."""
    bodies: dict[str, str] = {}
    rows: list[tuple[WriteKind, str, str, str]] = []
    for order_id, manager_id, key in assigns:
        body = bodies.get(manager_id)
        if body is None:
            body = bodies[manager_id] = _body("assign", order_id, {"manager_id": manager_id}, key)
        elif not key.strip():
            raise ValueError("a CRM write needs a non-empty idempotency key")
        rows.append(("assign", order_id, body, key))
    await crm.enqueue_writes(conn, rows, now)


def _body(kind: WriteKind, order_id: str, payload: dict[str, Any], idempotency_key: str) -> str:
    """The write's JSON body, checked against the contract (ValueError when off it)."""
    try:
        if kind == "assign":
            body = AssignWrite.model_validate(payload).model_dump(mode="json")
        elif kind == "status":
            write = StatusWrite.model_validate(payload)
            Status(write.status)  # the CRM takes canonical names
            body = write.model_dump(mode="json", exclude_none=True)
        elif kind == "compensation":
            body = CompensationWrite.model_validate(payload).model_dump(mode="json")
        else:
            raise ValueError(f"unknown CRM write {kind!r}; expected assign, status or compensation")
    except ValidationError as exc:
        raise ValueError(f"CRM {kind} write for order {order_id}: {describe(exc)}") from None
    if not idempotency_key.strip():
        raise ValueError("a CRM write needs a non-empty idempotency key")
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


class CrmOutboxWorker:
    """Delivers due outbox rows; `flush()` once (tests, jobs) or `run(stop)` as the bot's background task."""

    def __init__(
        self,
        db: Database,
        client: BikeWerkClient,
        clock: Clock,
        *,
        settings: Settings | None = None,
        policy: Policy | None = None,
        wake_sender: Callable[[], None] | None = None,
        batch: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.clock = clock
        self.settings = settings  # routes the signal of a refused write
        self.policy = policy or Policy.default()  # the [outbox] backoff; the ladder of that signal
        self._backoff_start = timedelta(seconds=self.policy.outbox.backoff_start_seconds)
        self._backoff_max = timedelta(seconds=self.policy.outbox.backoff_max_seconds)
        self._refused_retry = timedelta(hours=self.policy.outbox.refused_retry_hours)
        self.batch = batch
        self._wake_sender = wake_sender or (lambda: None)
        self._rng = rng or random.Random()
        self._woken = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """Deliver now rather than at the next poll (call after committing an enqueue)."""
        self._woken.set()

    async def flush(self) -> int:
        """Deliver the writes due now, oldest first; returns how many the CRM acknowledged."""
        async with self._lock:
            acknowledged = 0
            while True:  # an acknowledged write lets the order's next one go: ask again until none moves
                rows = await crm.due_writes(self.db.reader, self.clock.now(), self.batch)
                acked_now = 0
                waiting: set[str] = set()  # orders whose write failed just now: their later writes wait
                for row in rows:
                    if row.order_id in waiting:
                        continue
                    outcome = await self._deliver(row)
                    if outcome == "unavailable":
                        return acknowledged + acked_now
                    if outcome == "acked":
                        acked_now += 1
                    else:
                        waiting.add(row.order_id)
                acknowledged += acked_now
                if not acked_now:
                    return acknowledged

    async def _deliver(self, row: crm.OutboxRow) -> Literal["acked", "retry", "refused", "unavailable"]:
        try:
            await self.client.write(
                row.kind, row.order_id, json.loads(row.payload), idempotency_key=row.idempotency_key
            )
        except BikeWerkHTTPError as exc:
            if exc.status in _TRANSIENT_STATUSES:
                await self._retry_later(row, str(exc), None)
                return "retry"
            await self._refused(row, exc)
            return "refused"
        except BikeWerkUnavailable as exc:
            await self._retry_later(row, str(exc), exc.retry_after)
            return "unavailable"
        except BikeWerkError as exc:
            await self._retry_later(row, str(exc), None)
            return "unavailable"
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await crm.mark_write_acked(conn, row.id, now)
            # A write the CRM refused before went through: its signal's problem is gone.
            await clear_by_dedup(
                conn,
                f"sync.contract_violation:crm_write:{row.idempotency_key}",
                ClearWhen.NEXT_RUN_OK,
                now,
                self.settings,
            )
        log_event(
            log, "crm_outbox.acked", id=row.id, kind=row.kind, order=row.order_id, attempts=row.attempts + 1
        )
        return "acked"

    def _backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: the policy's start (30 s) doubling per failed attempt, at most its
        max (15 min)."""
        ceiling = min(self._backoff_max, self._backoff_start * 2 ** min(attempts, 16))
        return ceiling * self._rng.uniform(0.5, 1.0)

    async def _retry_later(self, row: crm.OutboxRow, error: str, retry_after: float | None) -> None:
        now = self.clock.now()
        delay = self._backoff(row.attempts)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        async with self.db.transaction() as conn:
            await crm.mark_write_failed(conn, row.id, error=error, next_attempt_at=now + delay)
        log_event(
            log,
            "crm_outbox.retry",
            logging.WARNING,
            id=row.id,
            kind=row.kind,
            order=row.order_id,
            attempts=row.attempts + 1,
            next_in_s=round(delay.total_seconds()),
            error=error,
        )

    async def _refused(self, row: crm.OutboxRow, exc: BikeWerkHTTPError) -> None:
        now = self.clock.now()
        reason = f"the CRM refused the {row.kind} write: {exc}"
        async with self.db.transaction() as conn:
            await crm.mark_write_failed(
                conn, row.id, error=reason, next_attempt_at=now + self._refused_retry, refused_at=now
            )
            if row.refused_at is None:
                violation = crm.Violation(row.order_id, reason, row.payload)
                await crm.add_violations(conn, "crm_writes", [violation], now)
            await raise_signal(
                conn,
                type="sync.contract_violation",
                dedup_key=f"sync.contract_violation:crm_write:{row.idempotency_key}",
                now=now,
                order_id=row.order_id,
                details={"source": "crm_writes", "write": row.kind, "status": exc.status, "reason": reason},
                raised_by="crm_outbox",
                settings=self.settings,
                policy=self.policy,
            )
        self._wake_sender()
        log_event(log, "crm_outbox.refused", logging.WARNING, id=row.id, order=row.order_id, error=str(exc))

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 5.0) -> None:
        """Flush until `stop` is set: every `poll_seconds`, and at once after `wake()`."""
        while not stop.is_set():
            try:
                await self.flush()
            except Exception:  # a broken flush must not end the worker; the rows stay queued
                log.exception("crm_outbox.flush_failed")
            self._woken.clear()
            await _first_of(stop, self._woken, within=poll_seconds)


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Wait until any of `events` is set, or `within` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with suppress(asyncio.CancelledError):
                await waiter
