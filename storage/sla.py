"""The SLA watchdog's reads and writes: due status visits (through the sla_timers.next_due_at index), what was
done for them, and ai_sla_violations (one row per visit and kind)."""

from __future__ import annotations

import json
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


async def open_visits_for_update(conn: aiosqlite.Connection, timer_ids: list[int]) -> list[DueVisit]:
    """Re-read open visits inside the transaction that acts on them (some may have closed since the scan),
    in id order."""
    rows = await conn.execute_fetchall(
        f"SELECT {_DUE_COLUMNS} {_DUE_FROM}"
        " WHERE t.id IN (SELECT value FROM json_each(?)) AND t.closed_at IS NULL ORDER BY t.id",
        (json.dumps(timer_ids),),
    )
    return [_visit(row) for row in rows]


@dataclass(frozen=True)
class Progress:
    """What a sweep did for a visit (None leaves a mark as it was) and when the visit is due next."""

    timer_id: int
    reminded_at: datetime | None
    breached_at: datetime | None
    stuck_signalled_at: datetime | None
    next_due_at: datetime | None


async def record_progress(conn: aiosqlite.Connection, progress: list[Progress]) -> None:
    """Mark what the sweep did for each visit, in one statement."""
    await conn.executemany(
        """
        UPDATE sla_timers SET
            reminded_at = COALESCE(reminded_at, ?),
            breached_at = COALESCE(breached_at, ?),
            stuck_signalled_at = COALESCE(stuck_signalled_at, ?),
            next_due_at = ?
        WHERE id = ?
        """,
        [
            (
                _ts_opt(p.reminded_at),
                _ts_opt(p.breached_at),
                _ts_opt(p.stuck_signalled_at),
                _ts_opt(p.next_due_at),
                p.timer_id,
            )
            for p in progress
        ],
    )


def _ts_opt(instant: datetime | None) -> str | None:
    return ts(instant) if instant else None


@dataclass(frozen=True)
class NewViolation:
    visit: DueVisit
    kind: str  # budget | stuck_72h
    due_at: datetime
    signal_id: int


async def insert_violations(
    conn: aiosqlite.Connection, violations: list[NewViolation], *, detected_at: datetime
) -> None:
    """One violation per visit and kind, with the signal raised for it (a repeat is ignored), in one
    statement."""
    await conn.executemany(
        """
        INSERT OR IGNORE INTO ai_sla_violations (timer_id, kind, order_id, status, policy_version,
                                                 budget_minutes, entered_at, breach_at, detected_at, severity,
                                                 signal_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            (
                v.visit.id,
                v.kind,
                v.visit.order_id,
                str(v.visit.status),
                v.visit.policy_version,
                v.visit.budget_minutes,
                ts(v.visit.entered_at),
                ts(v.due_at),
                ts(detected_at),
                "high" if v.kind == "stuck_72h" else v.visit.severity,
                v.signal_id,
            )
            for v in violations
        ],
    )
