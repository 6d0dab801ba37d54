"""Governance tables: sanctions lists and their entries, screenings, compliance holds, process drift."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from domain.sanctions import Entry
from domain.statuses import FINAL_STATUSES, Status
from storage.db import parse_ts, parse_ts_opt, ts


async def _fetch(conn: aiosqlite.Connection, sql: str, params: Any = ()) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


_OPEN_SQL = "(" + ", ".join(f"'{s.value}'" for s in Status if s not in FINAL_STATUSES) + ")"


@dataclass(frozen=True)
class ListInfo:
    version: str
    source: str
    datasets: str
    entries: int
    imported_at: datetime


async def list_in_force(conn: aiosqlite.Connection) -> ListInfo | None:
    rows = await _fetch(
        conn, "SELECT version, source, datasets, entries, imported_at FROM sanctions_lists WHERE in_force = 1"
    )
    if not rows:
        return None
    version, source, datasets, entries, imported_at = rows[0]
    return ListInfo(version, source, datasets, entries, parse_ts(imported_at))


async def store_list(
    conn: aiosqlite.Connection,
    *,
    version: str,
    source: str,
    datasets: Sequence[str],
    entries: Sequence[Entry],
    published: datetime | None,
    now: datetime,
) -> bool:
    """Put a list in force (its entries stored once per version). False when that version is already in
    force (the same file imported again)."""
    current = await list_in_force(conn)
    if current is not None and current.version == version:
        return False
    await conn.execute("UPDATE sanctions_lists SET in_force = 0 WHERE in_force = 1")
    known = await _fetch(conn, "SELECT 1 FROM sanctions_lists WHERE version = ?", (version,))
    if known:
        await conn.execute(
            "UPDATE sanctions_lists SET in_force = 1, imported_at = ?, source = ? WHERE version = ?",
            (ts(now), source, version),
        )
        return True
    await conn.execute(
        "INSERT INTO sanctions_lists (version, source, datasets, entries, published_at, imported_at, "
        "in_force) VALUES (?, ?, ?, ?, ?, ?, 1)",
        (version, source, ",".join(datasets), len(entries), ts(published) if published else None, ts(now)),
    )
    await conn.executemany(
        "INSERT INTO sanctions_entries (list_version, entry_id, schema, name, aliases, countries, "
        "birth_date, sanctions, dataset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                version,
                e.id,
                e.schema,
                e.name,
                json.dumps(list(e.aliases), ensure_ascii=False),
                ";".join(e.countries),
                e.birth_date,
                e.sanctions,
                e.dataset,
            )
            for e in entries
        ),
    )
    return True


async def list_names(conn: aiosqlite.Connection, version: str) -> list[tuple[str, str, list[str]]]:
    """(entry id, primary name, every name incl. aliases) of a list version."""
    rows = await _fetch(
        conn, "SELECT entry_id, name, aliases FROM sanctions_entries WHERE list_version = ?", (version,)
    )
    return [(entry_id, name, [name, *json.loads(aliases)]) for entry_id, name, aliases in rows]


async def entry_facts(conn: aiosqlite.Connection, version: str, entry_id: str) -> dict[str, str]:
    rows = await _fetch(
        conn,
        "SELECT schema, countries, birth_date, sanctions, dataset FROM sanctions_entries "
        "WHERE list_version = ? AND entry_id = ?",
        (version, entry_id),
    )
    if not rows:
        return {}
    schema, countries, birth_date, sanctions, dataset = rows[0]
    return {
        "schema": schema,
        "countries": countries,
        "birth_date": birth_date,
        "sanctions": sanctions,
        "dataset": dataset,
    }


@dataclass(frozen=True)
class Party:
    order_id: str
    client: str
    seller: str


async def open_orders_to_screen(conn: aiosqlite.Connection) -> list[Party]:
    rows = await _fetch(
        conn, f"SELECT id, client_name, seller FROM orders WHERE status IN {_OPEN_SQL} ORDER BY id"
    )
    return [Party(r[0], r[1] or "", r[2] or "") for r in rows]


async def add_screenings(
    conn: aiosqlite.Connection,
    rows: Iterable[tuple[str, str, datetime, float | None, float | None, bool]],
) -> None:
    await conn.executemany(
        "INSERT OR REPLACE INTO sanctions_screenings (order_id, list_version, screened_at, client_score, "
        "seller_score, hit) VALUES (?, ?, ?, ?, ?, ?)",
        ((o, v, ts(at), c, s, int(hit)) for o, v, at, c, s, hit in rows),
    )


@dataclass(frozen=True)
class Hold:
    id: int
    order_id: str
    party: str
    name: str
    entry_id: str
    entry_name: str
    matched_name: str
    score: float
    list_version: str
    held_at: datetime
    signal_id: int | None
    released_at: datetime | None
    outcome: str | None


_HOLD_COLUMNS = (
    "id, order_id, party, name, entry_id, entry_name, matched_name, score, list_version, held_at, signal_id, "
    "released_at, outcome"
)


def _hold(row: Any) -> Hold:
    return Hold(
        id=row[0],
        order_id=row[1],
        party=row[2],
        name=row[3],
        entry_id=row[4],
        entry_name=row[5],
        matched_name=row[6],
        score=row[7],
        list_version=row[8],
        held_at=parse_ts(row[9]),
        signal_id=row[10],
        released_at=parse_ts_opt(row[11]),
        outcome=row[12],
    )


async def known_holds(conn: aiosqlite.Connection, order_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(order, entry) pairs held before, live or settled: the same hit is never raised twice."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(order_ids), 500):
        part = order_ids[start : start + 500]
        rows = await _fetch(
            conn,
            "SELECT order_id, entry_id FROM compliance_holds "
            f"WHERE order_id IN ({','.join('?' * len(part))})",
            part,
        )
        found.update((r[0], r[1]) for r in rows)
    return found


async def add_hold(
    conn: aiosqlite.Connection,
    *,
    order_id: str,
    party: str,
    name: str,
    entry_id: str,
    entry_name: str,
    matched_name: str,
    score: float,
    list_version: str,
    now: datetime,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO compliance_holds (order_id, party, name, entry_id, entry_name, matched_name, score, "
        "list_version, held_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (order_id, party, name, entry_id, entry_name, matched_name, score, list_version, ts(now)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def set_hold_signal(conn: aiosqlite.Connection, hold_id: int, signal_id: int) -> None:
    await conn.execute("UPDATE compliance_holds SET signal_id = ? WHERE id = ?", (signal_id, hold_id))


async def live_holds(conn: aiosqlite.Connection, order_id: str | None = None) -> list[Hold]:
    where, params = ("AND order_id = ?", (order_id,)) if order_id else ("", ())
    rows = await _fetch(
        conn,
        f"SELECT {_HOLD_COLUMNS} FROM compliance_holds WHERE released_at IS NULL {where} ORDER BY id",
        params,
    )
    return [_hold(r) for r in rows]


async def hold_of_signal(conn: aiosqlite.Connection, signal_id: int) -> Hold | None:
    rows = await _fetch(
        conn, f"SELECT {_HOLD_COLUMNS} FROM compliance_holds WHERE signal_id = ?", (signal_id,)
    )
    return _hold(rows[0]) if rows else None


async def release_holds(
    conn: aiosqlite.Connection, order_id: str, *, by: str, outcome: str, now: datetime
) -> int:
    cursor = await conn.execute(
        "UPDATE compliance_holds SET released_at = ?, released_by = ?, outcome = ? "
        "WHERE order_id = ? AND released_at IS NULL",
        (ts(now), by, outcome, order_id),
    )
    return cursor.rowcount


async def screening_coverage(
    conn: aiosqlite.Connection, start: datetime, end: datetime, version: str | None
) -> tuple[int, int]:
    """(orders created in [start, end), those of them screened against `version`)."""
    rows = await _fetch(
        conn,
        "SELECT count(*), count(s.order_id) FROM orders o "
        "LEFT JOIN sanctions_screenings s ON s.order_id = o.id AND s.list_version = ? "
        "WHERE o.created_at >= ? AND o.created_at < ?",
        (version or "", ts(start), ts(end)),
    )
    return int(rows[0][0]), int(rows[0][1])


# --- process drift ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrmEvent:
    id: int
    order_id: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime


async def crm_events_after(conn: aiosqlite.Connection, after_id: int, limit: int = 5000) -> list[CrmEvent]:
    rows = await _fetch(
        conn,
        "SELECT id, order_id, from_status, to_status, actor, at FROM order_status_events "
        "WHERE id > ? AND source = 'crm' ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [CrmEvent(r[0], r[1], r[2], r[3], r[4], parse_ts(r[5])) for r in rows]


async def last_event_id(conn: aiosqlite.Connection) -> int:
    rows = await _fetch(conn, "SELECT coalesce(max(id), 0) FROM order_status_events")
    return int(rows[0][0])


async def approved_cancels(conn: aiosqlite.Connection, order_ids: Sequence[str]) -> set[str]:
    """Orders with an approved cancel request (SPEC §6) or a sanctions hit confirmed (rejected = cancel)."""
    if not order_ids:
        return set()
    marks = ",".join("?" * len(order_ids))
    rows = await _fetch(
        conn,
        f"SELECT DISTINCT order_id FROM ai_decisions WHERE order_id IN ({marks}) "
        "AND ((action = 'cancel' AND state = 'approved') "
        "OR (action = 'sanctions_review' AND state = 'rejected'))",
        list(order_ids),
    )
    return {r[0] for r in rows}


async def add_drift(
    conn: aiosqlite.Connection,
    rows: Iterable[tuple[int, str, str, str | None, str, str, datetime]],
    now: datetime,
) -> list[int]:
    """Store drift rows (event id, order, rule, from, to, actor, at); returns the ids of the new ones."""
    ids: list[int] = []
    for event_id, order_id, rule, from_status, to_status, actor, at in rows:
        cursor = await conn.execute(
            "INSERT OR IGNORE INTO process_drift (event_id, order_id, rule, from_status, to_status, actor, "
            "at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, order_id, rule, from_status, to_status, actor, ts(at), ts(now)),
        )
        if cursor.rowcount and cursor.lastrowid is not None:
            ids.append(cursor.lastrowid)
    return ids


async def set_drift_signal(conn: aiosqlite.Connection, drift_id: int, signal_id: int) -> None:
    await conn.execute("UPDATE process_drift SET signal_id = ? WHERE id = ?", (signal_id, drift_id))


async def drift_count(conn: aiosqlite.Connection, start: datetime, end: datetime) -> int:
    rows = await _fetch(
        conn, "SELECT count(*) FROM process_drift WHERE at >= ? AND at < ?", (ts(start), ts(end))
    )
    return int(rows[0][0])


async def open_compliance_signals(conn: aiosqlite.Connection) -> int:
    rows = await _fetch(
        conn, "SELECT count(*) FROM ai_signals WHERE circle = 'compliance' AND state <> 'resolved'"
    )
    return int(rows[0][0])


async def list_imports(
    conn: aiosqlite.Connection, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """(published, imported) of the lists imported in [start, end) that carry their own date."""
    rows = await _fetch(
        conn,
        "SELECT published_at, imported_at FROM sanctions_lists "
        "WHERE imported_at >= ? AND imported_at < ? AND published_at IS NOT NULL",
        (ts(start), ts(end)),
    )
    return [(parse_ts(r[0]), parse_ts(r[1])) for r in rows]
