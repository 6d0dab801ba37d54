"""The SLA watchdog's reads and writes: due status visits (through the sla_timers.next_due_at index), what was
done for them, and ai_sla_violations (one row per visit and kind)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from domain.policy import Severity
from domain.statuses import Status
from storage.db import Database, parse_ts, parse_ts_opt, ts

_DUE_COLUMNS = """
    t.id, t.order_id, t.status, t.entered_at, t.policy_version, t.budget_minutes, t.clock, t.severity,
    t.reminder_at, t.breach_at, t.stuck_at, t.reminded_at, t.breached_at, t.stuck_signalled_at, t.next_due_at,
    m.id AS manager_id, m.telegram_id AS manager_telegram_id, c.timer_id IS NOT NULL AS checkin_asked
"""
_DUE_FROM = """
    FROM sla_timers t
    JOIN orders o ON o.id = t.order_id
    LEFT JOIN managers m ON m.id = o.assigned_manager_id AND m.active = 1
    LEFT JOIN order_checkins c ON c.timer_id = t.id
"""


@dataclass(frozen=True)
class DueVisit:
    """An open status visit with its deadlines, what was done already, and the step's owner."""

    id: int
    order_id: str
    status: Status
    entered_at: datetime
    policy_version: str
    budget_minutes: int
    clock: str
    severity: Severity
    reminder_at: datetime
    breach_at: datetime
    stuck_at: datetime
    reminded: bool
    breached: bool
    stuck_signalled: bool
    next_due_at: datetime | None
    manager_id: str | None
    manager_telegram_id: int | None
    checkin_asked: bool


def _visit(row: aiosqlite.Row) -> DueVisit:
    return DueVisit(
        id=row["id"],
        order_id=row["order_id"],
        status=Status(row["status"]),
        entered_at=parse_ts(row["entered_at"]),
        policy_version=row["policy_version"],
        budget_minutes=row["budget_minutes"],
        clock=row["clock"],
        severity=row["severity"],
        reminder_at=parse_ts(row["reminder_at"]),
        breach_at=parse_ts(row["breach_at"]),
        stuck_at=parse_ts(row["stuck_at"]),
        reminded=row["reminded_at"] is not None,
        breached=row["breached_at"] is not None,
        stuck_signalled=row["stuck_signalled_at"] is not None,
        next_due_at=parse_ts_opt(row["next_due_at"]),
        manager_id=row["manager_id"],
        manager_telegram_id=row["manager_telegram_id"],
        checkin_asked=bool(row["checkin_asked"]),
    )


async def due_visit_ids(db: Database, now: datetime, *, after_id: int, limit: int) -> list[int]:
    """Open visits with something due at `now`, in id order after `after_id`.

    Forced through the partial index on next_due_at: without statistics SQLite would rather walk the primary
    key from `after_id`, which reads every visit ever recorded.
    """
    rows = await db.fetchall(
        """
        SELECT id FROM sla_timers INDEXED BY sla_timers_due
        WHERE next_due_at <= ? AND closed_at IS NULL AND next_due_at IS NOT NULL AND id > ?
        ORDER BY id LIMIT ?
        """,
        (ts(now), after_id, limit),
    )
    return [row["id"] for row in rows]


async def open_visit_for_update(conn: aiosqlite.Connection, timer_id: int) -> DueVisit | None:
    """Re-read one open visit inside the transaction that acts on it (it may have closed since the scan)."""
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_DUE_COLUMNS} {_DUE_FROM} WHERE t.id = ? AND t.closed_at IS NULL", (timer_id,)
        )
    )
    return _visit(rows[0]) if rows else None


async def record_progress(
    conn: aiosqlite.Connection,
    timer_id: int,
    *,
    reminded_at: datetime | None,
    breached_at: datetime | None,
    stuck_signalled_at: datetime | None,
    next_due_at: datetime | None,
) -> None:
    """Mark what this sweep did (a None mark leaves the column as it was) and when the visit is due next."""
    await conn.execute(
        """
        UPDATE sla_timers SET
            reminded_at = COALESCE(reminded_at, ?),
            breached_at = COALESCE(breached_at, ?),
            stuck_signalled_at = COALESCE(stuck_signalled_at, ?),
            next_due_at = ?
        WHERE id = ?
        """,
        (
            ts(reminded_at) if reminded_at else None,
            ts(breached_at) if breached_at else None,
            ts(stuck_signalled_at) if stuck_signalled_at else None,
            ts(next_due_at) if next_due_at else None,
            timer_id,
        ),
    )


async def insert_violation(
    conn: aiosqlite.Connection,
    visit: DueVisit,
    *,
    kind: str,
    due_at: datetime,
    detected_at: datetime,
    signal_id: int,
) -> bool:
    """One violation per visit and kind, with the signal raised for it; False when it exists already."""
    cursor = await conn.execute(
        """
        INSERT OR IGNORE INTO ai_sla_violations (timer_id, kind, order_id, status, policy_version,
                                                 budget_minutes, entered_at, breach_at, detected_at, severity,
                                                 signal_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            visit.id,
            kind,
            visit.order_id,
            str(visit.status),
            visit.policy_version,
            visit.budget_minutes,
            ts(visit.entered_at),
            ts(due_at),
            ts(detected_at),
            "high" if kind == "stuck_72h" else visit.severity,
            signal_id,
        ),
    )
    return cursor.rowcount > 0
