"""The SQL of KPIs and digests: windowed reads of visits, open orders and escalations for the formulas in
domain/kpi.py, the daily snapshots (kpi_snapshots), the baseline (kpi_baseline) and what the digests list.

Every read is bounded by an index (migrations/007_kpi.sql): a 24 h window reads its own rows, not all history.
Reads take a `Database` or a connection; writes take the connection of the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import aiosqlite

from domain.kpi import Escalation, MetricKey, OpenOrder, RetroAction, RetroSignal, Visit, Window
from domain.statuses import FINAL_STATUSES, OPEN_STATUSES, Status
from storage.db import Database, ts

Source = Database | aiosqlite.Connection

INSTALLED_AT_KEY = "installed_at"

_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
_FINAL = tuple(sorted(s.value for s in FINAL_STATUSES))
_OPEN_IN = "(" + ", ".join("?" * len(_OPEN)) + ")"
_FINAL_IN = "(" + ", ".join("?" * len(_FINAL)) + ")"
_STATUSES = {s.value: s for s in Status}


def _at(text: str) -> datetime:
    # The store's fixed-width UTC text (storage.db.ts) is ISO 8601; fromisoformat reads it ~50x faster than
    # strptime, which matters over the tens of thousands of rows a window holds.
    return datetime.fromisoformat(text)


def _at_opt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def _rows(source: Source, sql: str, params: Sequence[object] = ()) -> list[Any]:
    conn = source.conn if isinstance(source, Database) else source
    async with conn.execute(sql, tuple(params)) as cursor:
        # Plain tuples, not sqlite3.Row: tens of thousands of rows a window, and fewer objects for the
        # garbage collector to scan.
        cursor.row_factory = None
        return list(await cursor.fetchall())


async def _one(source: Source, sql: str, params: Sequence[object] = ()) -> Any:
    rows = await _rows(source, sql, params)
    return rows[0] if rows else None


# --- rows for the formulas ----------------------------------------------------------------------------------


async def open_orders_now(source: Source, *, now: datetime, stuck_since: datetime) -> list[OpenOrder]:
    """Open orders as they are now, counted in groups alike for the formulas (see domain.kpi.OpenOrder).

    Owner: the assigned manager, or an unresolved signal on the order with an owner person. Next step: a
    running SLA visit of the order's status (it carries the deadline); overdue: that deadline has passed."""
    rows = await _rows(
        source,
        f"""
        SELECT o.status,
               o.status_since <= ? AS stuck,
               COALESCE(t.breach_at <= ?, 0) AS overdue,
               o.assigned_manager_id IS NOT NULL OR EXISTS (
                   SELECT 1 FROM ai_signals s
                   WHERE s.order_id = o.id AND s.state <> 'resolved' AND s.owner_person IS NOT NULL
               ) AS has_owner,
               t.status IS o.status AS has_next_step,
               COUNT(*), MIN(o.status_since)
        FROM orders o LEFT JOIN sla_timers t ON t.order_id = o.id AND t.closed_at IS NULL
        WHERE o.status IN {_OPEN_IN}
        GROUP BY 1, 2, 3, 4, 5
        """,
        (ts(stuck_since), ts(now), *_OPEN),
    )
    return [
        OpenOrder("", _STATUSES[r[0]], _at(r[6]), bool(r[3]), bool(r[4]), bool(r[2]), r[5])
        for r in rows
        if r[0] in _STATUSES
    ]


async def open_orders_at(source: Source, at: datetime) -> list[OpenOrder]:
    """Open orders as they were at `at`, rebuilt from order_status_events (ownership is not known then).

    Candidates are the orders open now and those that closed after `at`; each one's state is its last event
    at or before `at`."""
    rows = await _rows(
        source,
        f"""
        WITH candidates(id) AS (
            SELECT id FROM orders WHERE status IN {_OPEN_IN}
            UNION ALL
            SELECT id FROM orders WHERE status IN {_FINAL_IN} AND status_since > ?
        )
        SELECT c.id, e.to_status, e.at
        FROM candidates c
        JOIN order_status_events e ON e.id = (
            SELECT e2.id FROM order_status_events e2
            WHERE e2.order_id = c.id AND e2.at <= ?
            ORDER BY e2.at DESC, e2.id DESC LIMIT 1
        )
        WHERE e.to_status IN {_OPEN_IN}
        """,
        (*_OPEN, *_FINAL, ts(at), ts(at), *_OPEN),
    )
    return [OpenOrder(r[0], _STATUSES[r[1]], _at(r[2])) for r in rows]


async def finished_visits(source: Source, window: Window) -> list[Visit]:
    """The visits that ended in `window`: each status event in it closes the visit its predecessor opened.

    The move is credited to the event's actor when that is a manager, else to the order's manager."""
    rows = await _rows(
        source,
        """
        SELECT e.order_id, p.to_status, p.at, e.at, e.to_status,
               COALESCE(m.id, o.assigned_manager_id, o.crm_manager_id)
        FROM order_status_events e
        JOIN order_status_events p ON p.id = (
            SELECT p2.id FROM order_status_events p2
            WHERE p2.order_id = e.order_id AND p2.at <= e.at AND (p2.at < e.at OR p2.id < e.id)
            ORDER BY p2.at DESC, p2.id DESC LIMIT 1
        )
        LEFT JOIN orders o ON o.id = e.order_id
        LEFT JOIN managers m ON m.id = e.actor
        WHERE e.at >= ? AND e.at < ?
        """,
        (ts(window.start), ts(window.end)),
    )
    return [
        Visit(r[0], _STATUSES[r[1]], _at(r[2]), _at(r[3]), _STATUSES[r[4]], None, r[5])
        for r in rows
        if r[1] in _STATUSES and r[4] in _STATUSES
    ]


async def timed_visits(source: Source, window: Window) -> list[Visit]:
    """SLA visits (sla_timers) that finished in `window` or whose budget ran out in it while still open, with
    the breach deadline fixed when the order entered the status. (The second part takes the visits breached in
    the window that did not also finish in it: still open, or closed after the window.)"""
    start, end = ts(window.start), ts(window.end)
    rows = await _rows(
        source,
        """
        SELECT order_id, status, entered_at, closed_at, breach_at FROM sla_timers
        WHERE closed_at >= ? AND closed_at < ?
        UNION ALL
        SELECT order_id, status, entered_at, closed_at, breach_at FROM sla_timers
        WHERE breach_at >= ? AND breach_at < ? AND (closed_at IS NULL OR closed_at >= ?)
        """,
        (start, end, start, end, end),
    )
    return [
        Visit(r[0], _STATUSES[r[1]], _at(r[2]), _at_opt(r[3]), None, _at(r[4]))
        for r in rows
        if r[1] in _STATUSES
    ]


async def resolved_escalations(source: Source, window: Window) -> list[Escalation]:
    rows = await _rows(
        source,
        """
        SELECT id, resolved_at, owner_person, deadline_at, resolution FROM ai_signals
        WHERE resolved_at >= ? AND resolved_at < ?
        """,
        (ts(window.start), ts(window.end)),
    )
    return [Escalation(r[0], _at(r[1]), r[2], _at_opt(r[3]), r[4]) for r in rows]


async def first_event_at(source: Source) -> datetime | None:
    row = await _one(source, "SELECT MIN(at) FROM order_status_events")
    return None if row is None or row[0] is None else _at(row[0])


# --- install time -------------------------------------------------------------------------------------------


async def installed_at(source: Source) -> datetime | None:
    row = await _one(source, "SELECT value FROM kv WHERE key = ?", (INSTALLED_AT_KEY,))
    return None if row is None else _at(row[0])


async def mark_installed(conn: aiosqlite.Connection, now: datetime) -> None:
    """Record the install time once (the first run); later calls change nothing."""
    await conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (INSTALLED_AT_KEY, ts(now)))


# --- snapshots and the baseline -----------------------------------------------------------------------------


async def snapshot_days(source: Source, first: date, last: date) -> set[date]:
    rows = await _rows(
        source,
        "SELECT DISTINCT day FROM kpi_snapshots WHERE day >= ? AND day <= ?",
        (first.isoformat(), last.isoformat()),
    )
    return {date.fromisoformat(r[0]) for r in rows}


async def write_snapshot(
    conn: aiosqlite.Connection, day: date, metrics: Mapping[MetricKey, float | None]
) -> bool:
    """Store a day's KPIs unless the day has a snapshot already (the first one stands); True if stored."""
    if await _one(conn, "SELECT 1 FROM kpi_snapshots WHERE day = ? LIMIT 1", (day.isoformat(),)) is not None:
        return False
    await conn.executemany(
        "INSERT INTO kpi_snapshots (day, metric, scope, value) VALUES (?, ?, ?, ?)",
        [(day.isoformat(), metric, scope, value) for (metric, scope), value in metrics.items()],
    )
    return True


async def snapshots(
    source: Source, first: date, last: date, *, metrics: Sequence[str] = ()
) -> dict[date, dict[MetricKey, float | None]]:
    """Snapshots of the days first..last (inclusive), optionally only some metrics."""
    filter_sql = f" AND metric IN ({', '.join('?' * len(metrics))})" if metrics else ""
    rows = await _rows(
        source,
        "SELECT day, metric, scope, value FROM kpi_snapshots WHERE day >= ? AND day <= ?" + filter_sql,
        (first.isoformat(), last.isoformat(), *metrics),
    )
    result: dict[date, dict[MetricKey, float | None]] = {}
    for day, metric, scope, value in rows:
        result.setdefault(date.fromisoformat(day), {})[(metric, scope)] = value
    return result


@dataclass(frozen=True)
class Baseline:
    values: dict[MetricKey, float | None]
    source: str | None  # import | install | history; None when there is no baseline yet
    set_at: datetime | None


async def baseline(source: Source) -> Baseline:
    rows = await _rows(source, "SELECT metric, scope, value, source, set_at FROM kpi_baseline")
    if not rows:
        return Baseline({}, None, None)
    return Baseline({(r[0], r[1]): r[2] for r in rows}, rows[0][3], _at(rows[0][4]))


async def replace_baseline(
    conn: aiosqlite.Connection, values: Mapping[MetricKey, float | None], *, source: str, now: datetime
) -> None:
    await conn.execute("DELETE FROM kpi_baseline")
    await conn.executemany(
        "INSERT INTO kpi_baseline (metric, scope, value, source, set_at) VALUES (?, ?, ?, ?, ?)",
        [(metric, scope, value, source, ts(now)) for (metric, scope), value in values.items()],
    )


# --- what the digests list ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalLine:
    id: int
    type: str
    severity: str
    state: str
    order_id: str | None
    title: str
    owner_person: int | None
    owner_name: str | None
    deadline_at: datetime
    raised_at: datetime


_SIGNAL_SELECT = """
    SELECT s.id, s.type, s.severity, s.state, s.order_id, s.title, s.owner_person,
           COALESCE(m.name, u.first_name), s.deadline_at, s.raised_at
    FROM ai_signals s
    LEFT JOIN managers m ON m.telegram_id = s.owner_person
    LEFT JOIN users u ON u.telegram_id = s.owner_person
"""


def _signal_line(r: Any) -> SignalLine:
    return SignalLine(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _at(r[8]), _at(r[9]))


async def live_signals(
    source: Source, *, severities: Sequence[str], states: Sequence[str], limit: int
) -> tuple[list[SignalLine], int]:
    """Signals of some severities and states, the worst and most urgent first, and how many there are."""
    where = (
        f"s.state IN ({', '.join('?' * len(states))}) AND s.severity IN ({', '.join('?' * len(severities))})"
    )
    params = (*states, *severities)
    rows = await _rows(
        source,
        _SIGNAL_SELECT
        + f""" WHERE {where}
        ORDER BY CASE s.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                 s.deadline_at, s.id
        LIMIT ?""",
        (*params, limit),
    )
    total = await _one(source, f"SELECT COUNT(*) FROM ai_signals s WHERE {where}", params)
    return [_signal_line(r) for r in rows], int(total[0])


@dataclass(frozen=True)
class Blocker:
    order_id: str
    status: Status
    status_since: datetime
    manager_id: str | None
    manager_name: str | None
    due_at: datetime | None  # the running visit's breach deadline


async def blockers(source: Source, *, now: datetime, stuck_since: datetime, limit: int) -> list[Blocker]:
    """The `limit` longest-waiting stalled open orders (past their SLA deadline, or without a status change
    since `stuck_since`). One index walk per status, oldest first, instead of sorting every open order."""
    per_status = f"""
        SELECT * FROM (
            SELECT o.id, o.status, o.status_since, o.assigned_manager_id, m.name, t.breach_at
            FROM orders o
            LEFT JOIN sla_timers t ON t.order_id = o.id AND t.closed_at IS NULL
            LEFT JOIN managers m ON m.id = o.assigned_manager_id
            WHERE o.status = ? AND (o.status_since <= ? OR t.breach_at <= ?)
            ORDER BY o.status_since LIMIT {int(limit)}
        )"""
    params: list[object] = []
    for status in _OPEN:
        params += [status, ts(stuck_since), ts(now)]
    rows = await _rows(source, " UNION ALL ".join([per_status] * len(_OPEN)), params)
    found = [Blocker(r[0], _STATUSES[r[1]], _at(r[2]), r[3], r[4], _at_opt(r[5])) for r in rows]
    return sorted(found, key=lambda b: (b.status_since, b.order_id))[:limit]


@dataclass(frozen=True)
class ManagerLoad:
    manager_id: str
    name: str
    active: bool
    on_leave: bool
    capacity: int
    last_assigned_at: datetime | None
    open_orders_by_status: dict[Status, int]


async def manager_loads(source: Source) -> list[ManagerLoad]:
    """Every manager with their open orders per status (assigned-not-accepted ones included)."""
    rows = await _rows(
        source,
        f"""
        SELECT m.id, m.name, m.active, m.on_leave, COALESCE(m.capacity_override, m.capacity),
               m.last_assigned_at, o.status, COUNT(o.id)
        FROM managers m
        LEFT JOIN orders o ON o.assigned_manager_id = m.id AND o.status IN {_OPEN_IN}
        GROUP BY m.id, o.status ORDER BY m.id
        """,
        _OPEN,
    )
    loads: dict[str, ManagerLoad] = {}
    for r in rows:
        load = loads.get(r[0])
        if load is None:
            load = loads[r[0]] = ManagerLoad(r[0], r[1], bool(r[2]), bool(r[3]), r[4], _at_opt(r[5]), {})
        if r[6] in _STATUSES:
            load.open_orders_by_status[_STATUSES[r[6]]] = r[7]
    return list(loads.values())


async def manager_names(source: Source) -> dict[str, str]:
    return {r[0]: r[1] for r in await _rows(source, "SELECT id, name FROM managers")}


async def week_signals(source: Source, window: Window) -> list[RetroSignal]:
    """Every signal raised in `window` with the decisions taken on it (action and observed effect)."""
    start, end = ts(window.start), ts(window.end)
    signals = await _rows(
        source,
        """
        SELECT id, type, severity, state, order_id, raised_at FROM ai_signals
        WHERE raised_at >= ? AND raised_at < ?
        """,
        (start, end),
    )
    decisions = await _rows(
        source,
        """
        SELECT d.signal_id, d.action, d.kind, d.effect FROM ai_decisions d
        JOIN ai_signals s ON s.id = d.signal_id
        WHERE s.raised_at >= ? AND s.raised_at < ? ORDER BY d.id
        """,
        (start, end),
    )
    actions: dict[int, list[RetroAction]] = {}
    for signal_id, action, kind, effect in decisions:
        actions.setdefault(signal_id, []).append(RetroAction(action, kind, _effect(effect)))
    return [
        RetroSignal(r[0], r[1], r[2], r[3], r[4], _at(r[5]), tuple(actions.get(r[0], ()))) for r in signals
    ]


def _effect(text: str | None) -> dict[str, Any] | None:
    """ai_decisions.effect is a JSON object; anything else says nothing the retrospective can use."""
    if not text:
        return None
    try:
        effect = json.loads(text)
    except ValueError:
        return None
    return effect if isinstance(effect, dict) else None


async def message_queued(source: Source, chat_id: int, ref: str) -> bool:
    """Whether a message slot (chat, ref) exists already: a digest goes out once per day and chat."""
    row = await _one(source, "SELECT 1 FROM tg_messages WHERE chat_id = ? AND ref = ?", (chat_id, ref))
    return row is not None


async def add_snapshot_rows(
    conn: aiosqlite.Connection, day: date, metrics: Mapping[MetricKey, float | None]
) -> int:
    """Add rows to a day's snapshot (the circles' KPIs beside sales_ops'); rows the day has already stay."""
    cursor = await conn.executemany(
        "INSERT OR IGNORE INTO kpi_snapshots (day, metric, scope, value) VALUES (?, ?, ?, ?)",
        [(day.isoformat(), metric, scope, value) for (metric, scope), value in metrics.items()],
    )
    return max(cursor.rowcount, 0)


async def has_metric(source: Source, day: date, metric: str) -> bool:
    row = await _one(
        source, "SELECT 1 FROM kpi_snapshots WHERE day = ? AND metric = ? LIMIT 1", (day.isoformat(), metric)
    )
    return row is not None
