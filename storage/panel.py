"""Reads for the admin panel: the decision log filtered (circle, severity, order, person, time) and an
order's whole history (status events, assignments with dispatch scores, SLA visits, checklist with photos,
signals, decisions, CRM writes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiosqlite

from domain.signals import Signal
from storage.db import Database, ts
from storage.signals import Decision, Source, _decision, signal_from_row


@dataclass(frozen=True)
class LogFilter:
    circle: str | None = None
    severity: str | None = None
    order_id: str | None = None
    person: int | None = None  # the Telegram id that owns, acknowledged, resolved or decided
    since: datetime | None = None
    until: datetime | None = None


async def _rows(
    source: Source, sql: str, params: tuple[object, ...] | list[object] = ()
) -> list[aiosqlite.Row]:
    if isinstance(source, Database):
        return await source.fetchall(sql, tuple(params))
    return list(await source.execute_fetchall(sql, tuple(params)))


def _log_where(where: LogFilter) -> tuple[str, list[object]]:
    clauses: list[str] = ["1 = 1"]
    params: list[object] = []
    if where.circle:
        clauses.append("s.circle = ?")
        params.append(where.circle)
    if where.severity:
        clauses.append("s.severity = ?")
        params.append(where.severity)
    if where.order_id:
        clauses.append("s.order_id = ?")
        params.append(where.order_id)
    if where.person is not None:
        clauses.append(
            "(s.owner_person = ? OR s.acked_by = ? OR s.resolved_by = ?"
            " OR EXISTS (SELECT 1 FROM ai_decisions d WHERE d.signal_id = s.id AND d.actor = ?))"
        )
        params += [where.person, where.person, where.person, str(where.person)]
    if where.since is not None:
        clauses.append("s.raised_at >= ?")
        params.append(ts(where.since))
    if where.until is not None:
        clauses.append("s.raised_at < ?")
        params.append(ts(where.until))
    return " AND ".join(clauses), params


async def signal_log(
    source: Source, where: LogFilter, *, limit: int, offset: int
) -> tuple[list[tuple[Signal, list[Decision]]], int]:
    """Signals matching the filter, newest first, each with its decisions in order; and how many match."""
    clause, params = _log_where(where)
    total = await _rows(source, f"SELECT COUNT(*) FROM ai_signals s WHERE {clause}", params)
    rows = await _rows(
        source,
        f"SELECT s.* FROM ai_signals s WHERE {clause} ORDER BY s.raised_at DESC, s.id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    signals = [signal_from_row(r) for r in rows]
    decisions: dict[int, list[Decision]] = {s.id: [] for s in signals}
    if signals:
        marks = ", ".join("?" * len(signals))
        for r in await _rows(
            source, f"SELECT * FROM ai_decisions WHERE signal_id IN ({marks}) ORDER BY id", list(decisions)
        ):
            decisions[r["signal_id"]].append(_decision(r))
    return [(s, decisions[s.id]) for s in signals], int(total[0][0])


async def decisions_without_signal(source: Source, where: LogFilter, *, limit: int) -> list[Decision]:
    """Decisions taken on no signal (automatic reminders, autopilot runs), newest first, by order and time."""
    clauses: list[str] = ["signal_id IS NULL"]
    params: list[object] = []
    if where.order_id:
        clauses.append("order_id = ?")
        params.append(where.order_id)
    if where.person is not None:
        clauses.append("actor = ?")
        params.append(str(where.person))
    if where.since is not None:
        clauses.append("created_at >= ?")
        params.append(ts(where.since))
    if where.until is not None:
        clauses.append("created_at < ?")
        params.append(ts(where.until))
    rows = await _rows(
        source,
        f"SELECT * FROM ai_decisions WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    return [_decision(r) for r in rows]


async def circles_with_signals(source: Source) -> list[str]:
    return [r[0] for r in await _rows(source, "SELECT DISTINCT circle FROM ai_signals ORDER BY circle")]


async def live_signals(source: Source, *, limit: int) -> list[Signal]:
    """Open and acknowledged signals, worst and oldest first."""
    rows = await _rows(
        source,
        """
        SELECT * FROM ai_signals WHERE state <> 'resolved'
        ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                 deadline_at, id
        LIMIT ?
        """,
        (limit,),
    )
    return [signal_from_row(r) for r in rows]


@dataclass
class OrderHistory:
    order: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    visits: list[dict[str, Any]] = field(default_factory=list)
    checklist: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    crm_writes: list[dict[str, Any]] = field(default_factory=list)


def _dicts(rows: list[aiosqlite.Row]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


async def order_history(source: Source, order_id: str) -> OrderHistory:
    order = await _rows(
        source,
        """
        SELECT o.*, m.name AS manager_name FROM orders o
        LEFT JOIN managers m ON m.id = o.assigned_manager_id WHERE o.id = ?
        """,
        (order_id,),
    )
    history = OrderHistory(dict(order[0]) if order else None)
    history.events = _dicts(
        await _rows(
            source, "SELECT * FROM order_status_events WHERE order_id = ? ORDER BY at, id", (order_id,)
        )
    )
    history.assignments = _dicts(
        await _rows(
            source,
            """
            SELECT a.*, m.name AS manager_name FROM ai_assignments a
            LEFT JOIN managers m ON m.id = a.manager_id WHERE a.order_id = ? ORDER BY a.id
            """,
            (order_id,),
        )
    )
    for assignment in history.assignments:
        try:
            assignment["candidates"] = json.loads(assignment["candidates"])
        except (TypeError, ValueError):
            assignment["candidates"] = []
    history.visits = _dicts(
        await _rows(
            source, "SELECT * FROM sla_timers WHERE order_id = ? ORDER BY entered_at, id", (order_id,)
        )
    )
    history.checklist = _dicts(
        await _rows(source, "SELECT * FROM checklist_answers WHERE order_id = ? ORDER BY item", (order_id,))
    )
    history.artifacts = _dicts(
        await _rows(source, "SELECT * FROM artifacts WHERE order_id = ? ORDER BY item, id", (order_id,))
    )
    history.signals = [
        signal_from_row(r)
        for r in await _rows(source, "SELECT * FROM ai_signals WHERE order_id = ? ORDER BY id", (order_id,))
    ]
    history.decisions = [
        _decision(r)
        for r in await _rows(source, "SELECT * FROM ai_decisions WHERE order_id = ? ORDER BY id", (order_id,))
    ]
    history.crm_writes = _dicts(
        await _rows(source, "SELECT * FROM crm_outbox WHERE order_id = ? ORDER BY id", (order_id,))
    )
    return history


async def artifact(source: Source, artifact_id: int) -> dict[str, Any] | None:
    rows = await _rows(source, "SELECT * FROM artifacts WHERE id = ?", (artifact_id,))
    return dict(rows[0]) if rows else None


async def decisions_since(source: Source, actions: tuple[str, ...], since: datetime) -> list[Decision]:
    """Decisions of the given actions taken since `since`, oldest first."""
    marks = ", ".join("?" * len(actions))
    rows = await _rows(
        source,
        f"SELECT * FROM ai_decisions WHERE action IN ({marks}) AND created_at >= ? ORDER BY id",
        [*actions, ts(since)],
    )
    return [_decision(r) for r in rows]


async def signal_counts_since(source: Source, since: datetime) -> tuple[int, int]:
    """(raised, resolved) signals since `since`."""
    rows = await _rows(
        source,
        """
        SELECT (SELECT COUNT(*) FROM ai_signals WHERE raised_at >= ?),
               (SELECT COUNT(*) FROM ai_signals WHERE resolved_at >= ?)
        """,
        (ts(since), ts(since)),
    )
    return int(rows[0][0]), int(rows[0][1])
