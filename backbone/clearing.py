"""Signals that tell the truth (issue 12): when the condition behind a signal has cleared, the backbone
resolves it by itself. The ping is edited to say what cleared it and when, the ladder and the check-ins stop
(a resolved signal is never due), the resolution is an automatic decision with the reason, the people
involved hear of it, and a signal of a severity the policy names (`[crisis] postmortem_when_cleared`) still
asks for its postmortem.

Order-based conditions (domain.clearing) are checked by `sweep_cleared`, run first in every escalation sweep;
a source that reports success (a sync run, a CRM write, an unblocked chat) calls `clear_by_dedup` itself.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import aiosqlite

from backbone.decisions import record_decision
from backbone.postmortems import ask_postmortem
from backbone.signals import Routing, contacts_of, resolve_signal
from bot.config import Settings
from bot.logs import log_event
from bot.services import Services
from domain.clearing import ORDER_CONDITIONS, Cleared, cleared_by_order
from domain.crisis import CrisisPolicy
from domain.signals import SIGNAL_TYPES, ClearWhen, Signal, needs_postmortem
from keyboards.outcomes import cleared_resolution
from storage import clearing as clearing_store
from storage import signals as store

log = logging.getLogger(__name__)

_BATCH = 500
ORDER_CLEARED_TYPES = tuple(code for code, t in SIGNAL_TYPES.items() if t.clears_when in ORDER_CONDITIONS)


async def clear_signal(
    conn: aiosqlite.Connection,
    signal: Signal,
    routing: Routing,
    now: datetime,
    cleared: Cleared,
    crisis: CrisisPolicy | None = None,
) -> Signal:
    """Resolve `signal` as the system because its condition cleared (inside the caller's transaction)."""
    details = {**signal.details, "cleared": cleared.as_details()}
    await store.update_signal(conn, signal.id, details=details)
    resolved = await resolve_signal(
        conn,
        replace(signal, details=details),
        routing,
        now,
        by=None,
        resolution=cleared_resolution(cleared.code),
    )
    await record_decision(
        conn,
        kind="auto",
        action="resolve",
        reason=cleared_resolution(cleared.code),
        now=now,
        signal_id=signal.id,
        order_id=signal.order_id,
        details=cleared.as_details(),
    )
    policy = crisis or CrisisPolicy()
    if (
        needs_postmortem(signal.severity)
        and signal.kind.postmortem
        and signal.severity in policy.postmortem_when_cleared
    ):
        author = signal.acked_by or signal.owner_person or contacts_of(signal, routing).owner_id
        if author is not None:
            await ask_postmortem(conn, routing, resolved, author, now)
    log_event(log, "signal.cleared", id=signal.id, type=signal.type, code=str(cleared.code))
    return resolved


async def clear_by_dedup(
    conn: aiosqlite.Connection,
    dedup_key: str,
    code: ClearWhen,
    now: datetime,
    settings: Settings | None,
    crisis: CrisisPolicy | None = None,
    **facts: object,
) -> bool:
    """The source of a problem reports it gone: resolve the live signal with `dedup_key`, if any."""
    signal = await store.live_signal_by_dedup(conn, dedup_key)
    if signal is None:
        return False
    await clear_signal(
        conn, signal, Routing.from_settings(settings), now, Cleared(code, now, dict(facts)), crisis
    )
    return True


async def cleared_but_open(services: Services, now: datetime) -> list[tuple[Signal, Cleared]]:
    """Live order-based signals whose condition has cleared (the sweep resolves them; the demo's final check
    expects none)."""
    live = await clearing_store.live_signals_of_types(services.db, ORDER_CLEARED_TYPES, _BATCH)
    orders = await clearing_store.orders_now(services.db, {s.order_id for s in live if s.order_id})
    found = []
    for signal in live:
        cleared = cleared_by_order(signal, orders.get(signal.order_id or ""), now)
        if cleared is not None:
            found.append((signal, cleared))
    return found


async def sweep_cleared(services: Services, now: datetime) -> int:
    """Resolve every live order-based signal whose order has moved past its condition. One transaction per
    signal; a signal resolved meanwhile is left alone. Returns how many were resolved."""
    routing = Routing.from_settings(services.settings)
    resolved = 0
    for signal, cleared in await cleared_but_open(services, now):
        async with services.db.transaction() as conn:
            current = await store.get_signal(conn, signal.id)
            if current is None or current.state == "resolved":
                continue
            await clear_signal(conn, current, routing, now, cleared, services.policy.crisis)
        resolved += 1
    return resolved
