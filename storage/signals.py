"""Signals, decisions, postmortems and check-ins (ai_signals, ai_decisions, postmortems, order_checkins).

Reads take a `Database` or the connection of a transaction (`Source`); writes take the transaction's
connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from domain.policy import Severity
from domain.signals import Signal, SignalFilter
from storage.db import Database, parse_ts, parse_ts_opt, ts

Source = Database | aiosqlite.Connection

# Worst first, then oldest: the order signal lists are read in.
_SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"


async def _rows(source: Source, sql: str, params: tuple[object, ...] = ()) -> list[aiosqlite.Row]:
    if isinstance(source, Database):
        return await source.fetchall(sql, params)
    # One round trip to the database thread (execute + fetch + close would be three).
    return list(await source.execute_fetchall(sql, params))


async def _row(source: Source, sql: str, params: tuple[object, ...] = ()) -> aiosqlite.Row | None:
    rows = await _rows(source, sql, params)
    return rows[0] if rows else None


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# --- signals ------------------------------------------------------------------------------------------------


def signal_from_row(row: aiosqlite.Row) -> Signal:
    return Signal(
        id=row["id"],
        type=row["type"],
        severity=row["severity"],
        circle=row["circle"],
        order_id=row["order_id"],
        dedup_key=row["dedup_key"],
        state=row["state"],
        owner_person=row["owner_person"],
        escalation_level=row["escalation_level"],
        needs_decision=bool(row["needs_decision"]),
        deadline_at=parse_ts(row["deadline_at"]),
        raised_at=parse_ts(row["raised_at"]),
        raised_by=row["raised_by"],
        acked_at=parse_ts_opt(row["acked_at"]),
        acked_by=row["acked_by"],
        resolved_at=parse_ts_opt(row["resolved_at"]),
        resolved_by=row["resolved_by"],
        resolution=row["resolution"],
        snoozed_until=parse_ts_opt(row["snoozed_until"]),
        still_on_it_asked_at=parse_ts_opt(row["still_on_it_asked_at"]),
        checked_in_at=parse_ts_opt(row["checked_in_at"]),
        repeats=row["repeats"],
        last_seen_at=parse_ts(row["last_seen_at"]),
        details=json.loads(row["details"]),
        ping_chats=tuple(json.loads(row["ping_chats"])),
    )


async def get_signal(source: Source, signal_id: int) -> Signal | None:
    row = await _row(source, "SELECT * FROM ai_signals WHERE id = ?", (signal_id,))
    return None if row is None else signal_from_row(row)


async def live_signal_by_dedup(source: Source, dedup_key: str) -> Signal | None:
    row = await _row(
        source, "SELECT * FROM ai_signals WHERE dedup_key = ? AND state <> 'resolved'", (dedup_key,)
    )
    return None if row is None else signal_from_row(row)


@dataclass(frozen=True)
class NewSignal:
    type: str
    severity: Severity
    circle: str
    order_id: str | None
    dedup_key: str
    owner_person: int | None
    escalation_level: int
    needs_decision: bool
    deadline_at: datetime
    raised_at: datetime
    raised_by: str
    title: str
    details: Mapping[str, Any]
    ping_chats: tuple[int, ...]


_INSERT_SIGNAL = """
INSERT INTO ai_signals (type, severity, circle, order_id, dedup_key, state, owner_person, escalation_level,
                        needs_decision, deadline_at, raised_at, raised_by, last_seen_at, title, details,
                        ping_chats)
VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _signal_row(new: NewSignal) -> tuple[object, ...]:
    return (
        new.type,
        new.severity,
        new.circle,
        new.order_id,
        new.dedup_key,
        new.owner_person,
        new.escalation_level,
        int(new.needs_decision),
        ts(new.deadline_at),
        ts(new.raised_at),
        new.raised_by,
        ts(new.raised_at),
        new.title,
        _json(dict(new.details)),
        _json(list(new.ping_chats)),
    )


def _stored(new: NewSignal, signal_id: int) -> Signal:
    return Signal(
        id=signal_id,
        type=new.type,
        severity=new.severity,
        circle=new.circle,
        order_id=new.order_id,
        dedup_key=new.dedup_key,
        state="open",
        owner_person=new.owner_person,
        escalation_level=new.escalation_level,
        needs_decision=new.needs_decision,
        deadline_at=new.deadline_at,
        raised_at=new.raised_at,
        raised_by=new.raised_by,
        acked_at=None,
        acked_by=None,
        resolved_at=None,
        resolved_by=None,
        resolution=None,
        snoozed_until=None,
        still_on_it_asked_at=None,
        checked_in_at=None,
        repeats=0,
        last_seen_at=new.raised_at,
        details=dict(new.details),
        ping_chats=new.ping_chats,
    )


async def insert_signal(conn: aiosqlite.Connection, new: NewSignal) -> Signal:
    """Store a new open signal; returns it as stored (without reading it back)."""
    cursor = await conn.execute(_INSERT_SIGNAL, _signal_row(new))
    assert cursor.lastrowid is not None
    return _stored(new, cursor.lastrowid)


async def insert_signals(conn: aiosqlite.Connection, new: list[NewSignal]) -> list[Signal]:
    """Store many new open signals in two statements (their dedup keys must be distinct and not live);
    returns them as stored, in the same order."""
    if not new:
        return []
    await conn.executemany(_INSERT_SIGNAL, [_signal_row(n) for n in new])
    rows = await conn.execute_fetchall(
        "SELECT id, dedup_key FROM ai_signals"
        " WHERE state <> 'resolved' AND dedup_key IN (SELECT value FROM json_each(?))",
        (_json([n.dedup_key for n in new]),),
    )
    ids = {row[1]: row[0] for row in rows}
    return [_stored(n, ids[n.dedup_key]) for n in new]


async def live_dedup_keys(source: Source, dedup_keys: Iterable[str]) -> set[str]:
    """Which of these dedup keys have a live (not resolved) signal."""
    rows = await _rows(
        source,
        "SELECT dedup_key FROM ai_signals"
        " WHERE state <> 'resolved' AND dedup_key IN (SELECT value FROM json_each(?))",
        (_json(list(dedup_keys)),),
    )
    return {r["dedup_key"] for r in rows}


async def orders_with_live_signals(source: Source, order_ids: Iterable[str], *, at_least: int) -> list[str]:
    """Which of these orders have `at_least` live signals (candidates for arbitration)."""
    rows = await _rows(
        source,
        "SELECT order_id FROM ai_signals"
        " WHERE state <> 'resolved' AND order_id IN (SELECT value FROM json_each(?))"
        " GROUP BY order_id HAVING count(*) >= ? ORDER BY order_id",
        (_json(sorted(set(order_ids))), at_least),
    )
    return [r["order_id"] for r in rows]


_SIGNAL_COLUMNS = frozenset(
    {
        "severity",
        "state",
        "owner_person",
        "escalation_level",
        "deadline_at",
        "acked_at",
        "acked_by",
        "resolved_at",
        "resolved_by",
        "resolution",
        "snoozed_until",
        "still_on_it_asked_at",
        "checked_in_at",
        "repeats",
        "last_seen_at",
        "details",
        "ping_chats",
        "postmortem_flagged_at",
    }
)


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, dict):
        return _json(value)
    if isinstance(value, tuple | list):
        return _json(list(value))
    return value


async def update_signal(conn: aiosqlite.Connection, signal_id: int, **changes: object) -> None:
    """Set the given columns (datetimes, dicts and sequences are encoded the way the table stores them)."""
    unknown = changes.keys() - _SIGNAL_COLUMNS
    if unknown:
        raise ValueError(f"ai_signals has no settable column {sorted(unknown)}")
    columns = ", ".join(f"{name} = ?" for name in changes)
    await conn.execute(
        f"UPDATE ai_signals SET {columns} WHERE id = ?",
        (*(_encode(v) for v in changes.values()), signal_id),
    )


async def live_signals_on_order(source: Source, order_id: str) -> list[Signal]:
    rows = await _rows(
        source, "SELECT * FROM ai_signals WHERE order_id = ? AND state <> 'resolved' ORDER BY id", (order_id,)
    )
    return [signal_from_row(r) for r in rows]


async def due_signals(source: Source, now: datetime, limit: int) -> list[Signal]:
    """Live signals whose deadline has come (to escalate, to ask "still on it?", to end a snooze), except open
    ones already at the top of the ladder, which have nowhere left to go."""
    rows = await _rows(
        source,
        """
        SELECT * FROM ai_signals
        WHERE state <> 'resolved' AND deadline_at <= ? AND NOT (state = 'open' AND escalation_level >= 2)
        ORDER BY deadline_at LIMIT ?
        """,
        (ts(now), limit),
    )
    return [signal_from_row(r) for r in rows]


async def unrouted_signals(source: Source, limit: int) -> list[Signal]:
    rows = await _rows(
        source,
        "SELECT * FROM ai_signals WHERE state <> 'resolved' AND ping_chats = '[]' ORDER BY id LIMIT ?",
        (limit,),
    )
    return [signal_from_row(r) for r in rows]


async def critical_without_postmortem(source: Source, raised_before: datetime, limit: int) -> list[Signal]:
    """Critical signals raised before `raised_before` with no finished postmortem and not flagged yet."""
    rows = await _rows(
        source,
        """
        SELECT s.* FROM ai_signals s
        LEFT JOIN postmortems p ON p.signal_id = s.id AND p.step = 'done'
        WHERE s.severity = 'critical' AND s.postmortem_flagged_at IS NULL AND s.raised_at <= ?
          AND p.id IS NULL
        ORDER BY s.raised_at LIMIT ?
        """,
        (ts(raised_before), limit),
    )
    return [signal_from_row(r) for r in rows]


def _filter_sql(where: SignalFilter, *, live_only: bool) -> tuple[str, list[object]]:
    clauses = ["state <> 'resolved'"] if live_only else ["1 = 1"]
    params: list[object] = []
    if where.severity is not None:
        clauses.append("severity = ?")
        params.append(where.severity)
    if where.circle is not None:
        clauses.append("circle = ?")
        params.append(str(where.circle))
    if where.order_id is not None:
        clauses.append("order_id = ?")
        params.append(where.order_id)
    return " AND ".join(clauses), params


async def list_signals(
    source: Source, where: SignalFilter, *, limit: int, offset: int, live_only: bool = True
) -> tuple[list[Signal], int]:
    """One page of signals (worst and oldest first) and the number of all that match."""
    clause, params = _filter_sql(where, live_only=live_only)
    total_row = await _row(source, f"SELECT COUNT(*) FROM ai_signals WHERE {clause}", tuple(params))
    rows = await _rows(
        source,
        f"SELECT * FROM ai_signals WHERE {clause} ORDER BY {_SEVERITY_ORDER}, raised_at, id LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [signal_from_row(r) for r in rows], int(total_row[0]) if total_row else 0


async def person_names(source: Source, telegram_ids: Iterable[int | None]) -> dict[int, str]:
    """What to call people (for "acknowledged by Anna"): the first name the bot saw them under, else the name
    of the manager linked to that Telegram id."""
    ids = sorted({i for i in telegram_ids if i is not None})
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = await _rows(
        source,
        f"""
        SELECT telegram_id, name FROM (
            SELECT telegram_id, first_name AS name, 1 AS rank FROM users
            WHERE first_name IS NOT NULL AND telegram_id IN ({marks})
            UNION ALL
            SELECT telegram_id, name, 0 AS rank FROM managers WHERE telegram_id IN ({marks})
        ) ORDER BY rank
        """,
        (*ids, *ids),
    )
    return {r["telegram_id"]: r["name"] for r in rows}  # the seen first name (rank 1) comes last and wins


# --- decisions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    id: int
    signal_id: int | None
    order_id: str | None
    kind: str  # auto | human
    action: str
    state: str  # done | pending_approval | approved | rejected
    actor: str
    reason: str
    details: dict[str, Any]
    effect: dict[str, Any] | None
    effect_at: datetime | None
    created_at: datetime


def _decision(row: aiosqlite.Row) -> Decision:
    return Decision(
        id=row["id"],
        signal_id=row["signal_id"],
        order_id=row["order_id"],
        kind=row["kind"],
        action=row["action"],
        state=row["state"],
        actor=row["actor"],
        reason=row["reason"],
        details=json.loads(row["details"]),
        effect=json.loads(row["effect"]) if row["effect"] else None,
        effect_at=parse_ts_opt(row["effect_at"]),
        created_at=parse_ts(row["created_at"]),
    )


async def insert_decision(
    conn: aiosqlite.Connection,
    *,
    kind: str,
    action: str,
    actor: str,
    reason: str,
    now: datetime,
    signal_id: int | None = None,
    order_id: str | None = None,
    state: str = "done",
    details: Mapping[str, Any] | None = None,
) -> int:
    cursor = await conn.execute(
        """
        INSERT INTO ai_decisions (signal_id, order_id, kind, action, state, actor, reason, details,
                                  created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (signal_id, order_id, kind, action, state, actor, reason, _json(dict(details or {})), ts(now)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def pending_approval(source: Source, signal_id: int) -> Decision | None:
    row = await _row(
        source,
        "SELECT * FROM ai_decisions WHERE signal_id = ? AND state = 'pending_approval' ORDER BY id LIMIT 1",
        (signal_id,),
    )
    return None if row is None else _decision(row)


async def pending_request_on_order(source: Source, order_id: str, action: str) -> Decision | None:
    """The request of `action` on an order still waiting for an admin's approval, if any."""
    row = await _row(
        source,
        """
        SELECT * FROM ai_decisions WHERE order_id = ? AND action = ? AND state = 'pending_approval'
        ORDER BY id DESC LIMIT 1
        """,
        (order_id, action),
    )
    return None if row is None else _decision(row)


async def set_decision_state(conn: aiosqlite.Connection, decision_id: int, state: str) -> None:
    await conn.execute("UPDATE ai_decisions SET state = ? WHERE id = ?", (state, decision_id))


async def decisions_of_signal(source: Source, signal_id: int) -> list[Decision]:
    rows = await _rows(source, "SELECT * FROM ai_decisions WHERE signal_id = ? ORDER BY id", (signal_id,))
    return [_decision(r) for r in rows]


async def decision_log(source: Source, *, limit: int, offset: int) -> tuple[list[Decision], int]:
    """Newest first."""
    total = await _row(source, "SELECT COUNT(*) FROM ai_decisions")
    rows = await _rows(
        source, "SELECT * FROM ai_decisions ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
    )
    return [_decision(r) for r in rows], int(total[0]) if total else 0


async def decisions_awaiting_effect(source: Source, *, limit: int) -> list[Decision]:
    rows = await _rows(
        source,
        """
        SELECT * FROM ai_decisions WHERE effect IS NULL AND order_id IS NOT NULL
        ORDER BY created_at LIMIT ?
        """,
        (limit,),
    )
    return [_decision(r) for r in rows]


async def set_effect(
    conn: aiosqlite.Connection, decision_id: int, effect: Mapping[str, Any], at: datetime
) -> None:
    await conn.execute(
        "UPDATE ai_decisions SET effect = ?, effect_at = ? WHERE id = ? AND effect IS NULL",
        (_json(dict(effect)), ts(at), decision_id),
    )


@dataclass(frozen=True)
class StatusChange:
    to_status: str
    at: datetime


async def first_status_change_after(source: Source, order_id: str, after: datetime) -> StatusChange | None:
    row = await _row(
        source,
        "SELECT to_status, at FROM order_status_events WHERE order_id = ? AND at > ? ORDER BY at LIMIT 1",
        (order_id, ts(after)),
    )
    return None if row is None else StatusChange(row["to_status"], parse_ts(row["at"]))


# --- postmortems --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postmortem:
    id: int
    signal_id: int
    author: int
    step: str  # cause | action | effect | prevention | done
    cause: str | None
    action: str | None
    effect: str | None
    prevention: str | None
    created_at: datetime
    done_at: datetime | None


def _postmortem(row: aiosqlite.Row) -> Postmortem:
    return Postmortem(
        id=row["id"],
        signal_id=row["signal_id"],
        author=row["author"],
        step=row["step"],
        cause=row["cause"],
        action=row["action"],
        effect=row["effect"],
        prevention=row["prevention"],
        created_at=parse_ts(row["created_at"]),
        done_at=parse_ts_opt(row["done_at"]),
    )


async def create_postmortem(
    conn: aiosqlite.Connection, *, signal_id: int, author: int, now: datetime
) -> bool:
    """Start a postmortem for a signal (one per signal); False if it already has one."""
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO postmortems (signal_id, author, created_at) VALUES (?, ?, ?)",
        (signal_id, author, ts(now)),
    )
    return cursor.rowcount > 0


async def postmortem_in_progress(source: Source, author: int) -> Postmortem | None:
    """The author's oldest unfinished postmortem: the one their next message answers."""
    row = await _row(
        source, "SELECT * FROM postmortems WHERE author = ? AND step <> 'done' ORDER BY id LIMIT 1", (author,)
    )
    return None if row is None else _postmortem(row)


_POSTMORTEM_STEPS = ("cause", "action", "effect", "prevention")


async def answer_postmortem_step(
    conn: aiosqlite.Connection, postmortem_id: int, *, step: str, text: str, next_step: str, now: datetime
) -> bool:
    """Store the answer to `step` and move on; False if the postmortem is past that step (a repeat)."""
    if step not in _POSTMORTEM_STEPS:
        raise ValueError(f"not a postmortem step: {step!r}")
    cursor = await conn.execute(
        f"UPDATE postmortems SET {step} = ?, step = ?, done_at = ? WHERE id = ? AND step = ?",
        (text, next_step, ts(now) if next_step == "done" else None, postmortem_id, step),
    )
    return cursor.rowcount > 0


async def list_postmortems(source: Source, *, limit: int, offset: int) -> tuple[list[Postmortem], int]:
    total = await _row(source, "SELECT COUNT(*) FROM postmortems")
    rows = await _rows(source, "SELECT * FROM postmortems ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
    return [_postmortem(r) for r in rows], int(total[0]) if total else 0


# --- "still on it?" for accepted orders ---------------------------------------------------------------------


@dataclass(frozen=True)
class Checkin:
    timer_id: int
    order_id: str
    telegram_id: int
    asked_at: datetime
    reply_by: datetime
    answered_at: datetime | None
    signal_id: int | None


def _checkin(row: aiosqlite.Row) -> Checkin:
    return Checkin(
        timer_id=row["timer_id"],
        order_id=row["order_id"],
        telegram_id=row["telegram_id"],
        asked_at=parse_ts(row["asked_at"]),
        reply_by=parse_ts(row["reply_by"]),
        answered_at=parse_ts_opt(row["answered_at"]),
        signal_id=row["signal_id"],
    )


async def insert_checkin(
    conn: aiosqlite.Connection,
    *,
    timer_id: int,
    order_id: str,
    telegram_id: int,
    asked_at: datetime,
    reply_by: datetime,
) -> bool:
    cursor = await conn.execute(
        """
        INSERT OR IGNORE INTO order_checkins (timer_id, order_id, telegram_id, asked_at, reply_by)
        VALUES (?, ?, ?, ?, ?)
        """,
        (timer_id, order_id, telegram_id, ts(asked_at), ts(reply_by)),
    )
    return cursor.rowcount > 0


async def get_checkin(source: Source, timer_id: int) -> Checkin | None:
    row = await _row(source, "SELECT * FROM order_checkins WHERE timer_id = ?", (timer_id,))
    return None if row is None else _checkin(row)


async def answer_checkin(conn: aiosqlite.Connection, timer_id: int, now: datetime) -> bool:
    cursor = await conn.execute(
        "UPDATE order_checkins SET answered_at = ?"
        " WHERE timer_id = ? AND answered_at IS NULL AND signal_id IS NULL",
        (ts(now), timer_id),
    )
    return cursor.rowcount > 0


async def unanswered_checkins(source: Source, now: datetime, limit: int) -> list[Checkin]:
    """Questions past their reply time with no answer and no signal yet, whose visit is still running."""
    rows = await _rows(
        source,
        """
        SELECT c.* FROM order_checkins c JOIN sla_timers t ON t.id = c.timer_id
        WHERE c.answered_at IS NULL AND c.signal_id IS NULL AND c.reply_by <= ? AND t.closed_at IS NULL
        ORDER BY c.reply_by LIMIT ?
        """,
        (ts(now), limit),
    )
    return [_checkin(r) for r in rows]


async def set_checkin_signal(conn: aiosqlite.Connection, timer_id: int, signal_id: int) -> None:
    await conn.execute("UPDATE order_checkins SET signal_id = ? WHERE timer_id = ?", (signal_id, timer_id))
