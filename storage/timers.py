"""SLA timers (table sla_timers): one row per status visit, deadlines planned once on entry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime

import aiosqlite

from domain.sla import VisitDeadlines
from storage.db import ts
from storage.instants import ts_many

_OPEN_SQL = """
INSERT INTO sla_timers (order_id, status, entered_at, policy_version, budget_minutes, clock, severity,
                        reminder_at, breach_at, stuck_at, next_due_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_CLOSE_SQL = (
    "UPDATE sla_timers SET closed_at = ?, next_due_at = NULL WHERE order_id = ? AND closed_at IS NULL"
)


def _rows(visits: Sequence[tuple[str, VisitDeadlines]]) -> list[tuple[object, ...]]:
    # Every visit's instants (entered, reminder, breach, stuck, next due) encoded in one call.
    instants = [
        (d.entered_at, d.reminder_at, d.breach_at, d.stuck_at, min(d.reminder_at, d.stuck_at))
        for _, d in visits
    ]
    text = iter(ts_many([at for five in instants for at in five]))
    return [
        (
            order_id,
            str(d.status),
            next(text),
            d.policy_version,
            d.budget_minutes,
            d.clock,
            d.severity,
            next(text),
            next(text),
            next(text),
            next(text),
        )
        for order_id, d in visits
    ]


async def close_visit(conn: aiosqlite.Connection, order_id: str, at: datetime) -> None:
    await conn.execute(_CLOSE_SQL, (ts(at), order_id))


async def open_visit(conn: aiosqlite.Connection, order_id: str, deadlines: VisitDeadlines | None) -> None:
    """Close the order's running visit (if any) and start the next one at `deadlines.entered_at`.

    For a final status (`plan_visit` gives None) there is no next visit: call `close_visit` instead.
    """
    if deadlines is not None:
        await close_visit(conn, order_id, deadlines.entered_at)
        await conn.executemany(_OPEN_SQL, _rows([(order_id, deadlines)]))


async def open_visits_bulk(
    conn: aiosqlite.Connection, visits: Iterable[tuple[str, VisitDeadlines | None, datetime]]
) -> None:
    """The same as open_visit for many orders (the sync's page): (order_id, deadlines or None, changed_at)."""
    visits = list(visits)
    # Queued at once: aiosqlite's thread runs them in this order, back to back.
    await asyncio.gather(
        conn.executemany(
            _CLOSE_SQL,
            [(ts(changed_at), order_id) for order_id, _, changed_at in visits],
        ),
        conn.executemany(_OPEN_SQL, _rows([(order_id, d) for order_id, d, _ in visits if d is not None])),
    )
