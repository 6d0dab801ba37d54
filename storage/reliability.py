"""Reliability tables: the CRM client's latency records, sync runs, health checks, and the reads the
reliability circle's KPIs and signals make over them (plus contract violations, signals and the sender's
queue, which other modules write)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from storage.db import parse_ts, ts


async def _fetch(conn: aiosqlite.Connection, sql: str, params: Any = ()) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


@dataclass(frozen=True)
class SyncRun:
    started_at: datetime
    finished_at: datetime
    ok: bool
    error: str | None
    orders: int = 0
    events: int = 0
    leads: int = 0
    violations: int = 0


async def add_sync_run(
    conn: aiosqlite.Connection, run: SyncRun, latencies: Iterable[tuple[datetime, str, float, bool]]
) -> None:
    await conn.execute(
        "INSERT INTO sync_runs (started_at, finished_at, ok, error, orders, events, leads, violations) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ts(run.started_at),
            ts(run.finished_at),
            int(run.ok),
            run.error,
            run.orders,
            run.events,
            run.leads,
            run.violations,
        ),
    )
    await conn.executemany(
        "INSERT INTO api_latency (at, route, ms, ok) VALUES (?, ?, ?, ?)",
        ((ts(at), route, round(ms, 2), int(ok)) for at, route, ms, ok in latencies),
    )


async def latencies(conn: aiosqlite.Connection, start: datetime, end: datetime) -> list[tuple[float, bool]]:
    rows = await _fetch(conn, "SELECT ms, ok FROM api_latency WHERE at >= ? AND at < ?", (ts(start), ts(end)))
    return [(float(r[0]), bool(r[1])) for r in rows]


async def recent_runs(conn: aiosqlite.Connection, limit: int) -> list[SyncRun]:
    rows = await _fetch(
        conn,
        "SELECT started_at, finished_at, ok, error, orders, events, leads, violations FROM sync_runs "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [SyncRun(parse_ts(r[0]), parse_ts(r[1]), bool(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows]


async def last_good_sync(conn: aiosqlite.Connection) -> datetime | None:
    rows = await _fetch(conn, "SELECT max(finished_at) FROM sync_runs WHERE ok = 1")
    return parse_ts(rows[0][0]) if rows and rows[0][0] else None


async def add_health_checks(
    conn: aiosqlite.Connection, at: datetime, checks: Iterable[tuple[str, bool, str]]
) -> None:
    await conn.executemany(
        "INSERT INTO health_checks (at, component, ok, detail) VALUES (?, ?, ?, ?)",
        ((ts(at), component, int(ok), detail) for component, ok, detail in checks),
    )


async def health_share(conn: aiosqlite.Connection, start: datetime, end: datetime) -> tuple[int, int]:
    """(checks in the window, checks that passed)."""
    rows = await _fetch(
        conn,
        "SELECT count(*), coalesce(sum(ok), 0) FROM health_checks WHERE at >= ? AND at < ?",
        (ts(start), ts(end)),
    )
    return int(rows[0][0]), int(rows[0][1])


async def sender_backlog(conn: aiosqlite.Connection, now: datetime) -> int:
    """Telegram messages due now and not yet delivered (the sender's queue)."""
    rows = await _fetch(
        conn,
        "SELECT count(*) FROM tg_messages WHERE sent_version < version AND dead = 0 AND next_attempt_at <= ?",
        (ts(now),),
    )
    return int(rows[0][0])


async def outbox_backlog(conn: aiosqlite.Connection) -> int:
    rows = await _fetch(conn, "SELECT count(*) FROM crm_outbox WHERE acked_at IS NULL")
    return int(rows[0][0])


@dataclass(frozen=True)
class Violation:
    source: str
    record_id: str | None
    reason: str


async def violations(
    conn: aiosqlite.Connection, start: datetime, end: datetime, *, sample: int = 3
) -> tuple[int, list[Violation]]:
    """(records kept aside in the window, the first few of them)."""
    count = await _fetch(
        conn,
        "SELECT count(*) FROM contract_violations WHERE seen_at >= ? AND seen_at < ?",
        (ts(start), ts(end)),
    )
    rows = await _fetch(
        conn,
        "SELECT source, record_id, reason FROM contract_violations WHERE seen_at >= ? AND seen_at < ? "
        "ORDER BY id LIMIT ?",
        (ts(start), ts(end), sample),
    )
    return int(count[0][0]), [Violation(r[0], r[1], r[2]) for r in rows]


async def incidents(
    conn: aiosqlite.Connection, circle: str, start: datetime, end: datetime
) -> tuple[int, list[float]]:
    """(critical and high signals of `circle` raised in the window, minutes to resolve of those resolved
    in it)."""
    raised = await _fetch(
        conn,
        "SELECT count(*) FROM ai_signals WHERE circle = ? AND severity IN ('critical', 'high') "
        "AND raised_at >= ? AND raised_at < ?",
        (circle, ts(start), ts(end)),
    )
    resolved = await _fetch(
        conn,
        "SELECT raised_at, resolved_at FROM ai_signals WHERE circle = ? AND severity IN ('critical', 'high') "
        "AND resolved_at >= ? AND resolved_at < ?",
        (circle, ts(start), ts(end)),
    )
    minutes = [(parse_ts(r[1]) - parse_ts(r[0])).total_seconds() / 60 for r in resolved]
    return int(raised[0][0]), minutes


async def last_workspace(conn: aiosqlite.Connection) -> tuple[datetime, dict[str, Any]] | None:
    rows = await _fetch(conn, "SELECT fetched_at, payload FROM workspace_snapshots ORDER BY id DESC LIMIT 1")
    if not rows:
        return None
    try:
        payload = json.loads(rows[0][1])
    except ValueError:
        payload = {}
    return parse_ts(rows[0][0]), payload if isinstance(payload, dict) else {}


async def order_count(conn: aiosqlite.Connection) -> int:
    rows = await _fetch(conn, "SELECT count(*) FROM orders")
    return int(rows[0][0])


async def live_signal_ids(conn: aiosqlite.Connection, dedup_keys: Sequence[str]) -> dict[str, int]:
    if not dedup_keys:
        return {}
    rows = await _fetch(
        conn,
        f"SELECT dedup_key, id FROM ai_signals WHERE state <> 'resolved' "
        f"AND dedup_key IN ({','.join('?' * len(dedup_keys))})",
        list(dedup_keys),
    )
    return {r[0]: int(r[1]) for r in rows}


async def live_signals_like(conn: aiosqlite.Connection, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, details) of the live signals whose type starts with `prefix` ("revenue.", "reliability.")."""
    rows = await _fetch(
        conn,
        "SELECT type, details FROM ai_signals WHERE state <> 'resolved' AND type LIKE ? ORDER BY id",
        (prefix + "%",),
    )
    return [(r[0], json.loads(r[1]) if r[1] else {}) for r in rows]
