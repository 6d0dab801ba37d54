"""The CRM mirror (SPEC §10): the sync's upserts of managers, orders and CRM status events, its cursors, the
records kept aside as contract violations, workspace snapshots and the CRM write outbox (crm_outbox).

Writes take the connection of the caller's transaction; reads take a connection too (`db.reader` outside one).
Lists of ids go to SQLite as one JSON parameter (`json_each`), so a page of thousands is still one statement.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import aiosqlite

from domain.models import Manager
from domain.statuses import Status
from storage.db import from_json_rows, parse_ts, parse_ts_opt, ts
from storage.instants import ts_many

WriteKind = Literal["assign", "status", "compensation"]
ViolationSource = Literal[
    "orders", "order_status_events", "managers", "workspace", "crm_writes", "crm_events", "leads"
]


def _ids(values: Iterable[str]) -> str:
    return json.dumps(list(values))


# --- cursors ------------------------------------------------------------------------------------------------


async def get_cursor(conn: aiosqlite.Connection, name: str) -> str | None:
    rows = await conn.execute_fetchall("SELECT value FROM sync_cursors WHERE name = ?", (name,))
    return next((str(row[0]) for row in rows), None)


async def set_cursor(conn: aiosqlite.Connection, name: str, value: str, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO sync_cursors (name, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, value, ts(now)),
    )


# --- managers -----------------------------------------------------------------------------------------------


async def manager_telegram_ids(conn: aiosqlite.Connection) -> dict[str, int | None]:
    """Every known manager id with its Telegram id (None when not linked)."""
    rows = await conn.execute_fetchall("SELECT id, telegram_id FROM managers")
    return {str(row[0]): row[1] for row in rows}


async def upsert_managers(conn: aiosqlite.Connection, managers: Sequence[Manager], now: datetime) -> None:
    """Store the CRM's view of managers. What the bot keeps about them (capacity override, leave, shift,
    misses) stays; a Telegram id linked in the bot stays when the CRM has none."""
    await conn.executemany(
        """
        INSERT INTO managers (id, name, telegram_id, active, capacity, timezone, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, telegram_id = coalesce(excluded.telegram_id, managers.telegram_id),
            active = excluded.active, capacity = excluded.capacity, timezone = excluded.timezone,
            updated_at = excluded.updated_at
        """,
        [(m.id, m.name, m.telegram_id, int(m.active), m.capacity, m.timezone, ts(now)) for m in managers],
    )


# --- orders -------------------------------------------------------------------------------------------------


class MirrorOrder(NamedTuple):
    """One order as the CRM shows it, mapped onto our statuses, ready for `upsert_orders`."""

    id: str
    status: Status
    crm_status: str
    created_at: datetime
    updated_at: datetime
    status_since: datetime  # used when the status differs from the stored one (or the order is new)
    client_name: str
    client_city: str
    bike_brand: str
    bike_model: str
    price_eur: float
    is_ebike: bool
    seller: str
    crm_manager_id: str | None
    assigned_manager_id: str | None  # used only while the stored order has none
    sale_eur: float | None
    purchase_eur: float | None
    shipping_eur: float | None
    fees_eur: float | None
    channel: str | None = None
    client_country: str | None = None
    seller_country: str | None = None


@dataclass(frozen=True)
class StoredState:
    status: Status
    status_since: datetime
    assigned_manager_id: str | None


async def _json_rows(conn: aiosqlite.Connection, sql: str, params: Sequence[object]) -> list[list[Any]]:
    """The rows of `sql` (selecting one `json_array(...)` per row), fetched as one JSON array.

    Each row fetched on its own costs aiosqlite's thread a turn at the interpreter lock, which it may wait
    milliseconds for while the event loop works (validating a page): for thousands of rows, one value."""
    rows = await conn.execute_fetchall(f"SELECT json_group_array(json(row)) FROM ({sql})", params)
    found: list[list[Any]] = json.loads(next(iter(rows))[0])
    return found


async def order_states(conn: aiosqlite.Connection, order_ids: Iterable[str]) -> dict[str, StoredState]:
    rows = await _json_rows(
        conn,
        "SELECT json_array(id, status, status_since, assigned_manager_id) AS row FROM orders"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (_ids(order_ids),),
    )
    return {row[0]: StoredState(Status(row[1]), parse_ts(row[2]), row[3]) for row in rows}


async def orders_with_pending_status_write(conn: aiosqlite.Connection) -> set[str]:
    """Orders whose status change made in the bot the CRM has not acknowledged yet: the CRM still shows the
    old status, so the bot's status stands until the write lands. Few at any time (read off a small index)."""
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT order_id FROM crm_outbox"
        " WHERE acked_at IS NULL AND refused_at IS NULL AND kind = 'status'"
    )
    return {row[0] for row in rows}


async def status_entry_times(
    conn: aiosqlite.Connection, wanted: Iterable[tuple[str, Status]]
) -> dict[tuple[str, Status], datetime]:
    """When each (order, status) was last entered, from the stored status events."""
    rows = await _json_rows(
        conn,
        """
        SELECT json_array(e.order_id, e.to_status, max(e.at)) AS row
        FROM json_each(?) AS j
        JOIN order_status_events AS e
          ON e.order_id = json_extract(j.value, '$[0]') AND e.to_status = json_extract(j.value, '$[1]')
        GROUP BY e.order_id, e.to_status
        """,
        (json.dumps([[order_id, status.value] for order_id, status in wanted]),),
    )
    return {(row[0], Status(row[1])): parse_ts(row[2]) for row in rows}


_ORDER_COLUMNS = (
    "id, status, crm_status, created_at, updated_at, status_since, client_name, client_city, bike_brand,"
    " bike_model, price_eur, is_ebike, seller, crm_manager_id, assigned_manager_id, sale_eur, purchase_eur,"
    " shipping_eur, fees_eur, channel, client_country, seller_country"
)


_UPSERT_ORDERS_SET = """
ON CONFLICT (id) DO UPDATE SET
    status_since = CASE WHEN orders.status = excluded.status THEN orders.status_since
                        ELSE excluded.status_since END,
    status = excluded.status, crm_status = excluded.crm_status, created_at = excluded.created_at,
    updated_at = excluded.updated_at, client_name = excluded.client_name, client_city = excluded.client_city,
    bike_brand = excluded.bike_brand, bike_model = excluded.bike_model, price_eur = excluded.price_eur,
    is_ebike = excluded.is_ebike, seller = excluded.seller, crm_manager_id = excluded.crm_manager_id,
    assigned_manager_id = coalesce(orders.assigned_manager_id, excluded.assigned_manager_id),
    sale_eur = excluded.sale_eur, purchase_eur = excluded.purchase_eur, shipping_eur = excluded.shipping_eur,
    fees_eur = excluded.fees_eur, channel = excluded.channel, client_country = excluded.client_country,
    seller_country = excluded.seller_country, synced_at = excluded.synced_at
"""
_ORDER_WIDTH = 23  # the columns above and synced_at
# SQLite's default cap on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
_ORDERS_PER_STATEMENT = 32766 // _ORDER_WIDTH


@functools.lru_cache(maxsize=8)
def _upsert_orders_sql(count: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * _ORDER_WIDTH) + ")"] * count)
    return f"INSERT INTO orders ({_ORDER_COLUMNS}, synced_at) VALUES {values} {_UPSERT_ORDERS_SET}"


async def upsert_orders(conn: aiosqlite.Connection, orders: Sequence[MirrorOrder], now: datetime) -> None:
    """Insert or refresh orders from the CRM. `status_since` moves only when the status changes; the bot's
    `assigned_manager_id` is never replaced, only filled in when empty; the tracking number stays."""
    # The rows are the parameters of a multi-row VALUES, ~1,400 rows a statement. Like a JSON batch
    # (`from_json_rows`) a statement is bound in one go, not row by row under the interpreter lock as with
    # executemany; and SQLite reads bound values directly, where 22 json_extract calls a row cost more than
    # the insert itself. Queued at once: aiosqlite's thread runs them in this order, back to back.
    synced_at = ts(now)
    statements = []
    for start in range(0, len(orders), _ORDERS_PER_STATEMENT):
        part = _order_rows(orders[start : start + _ORDERS_PER_STATEMENT])
        params = [value for row in part for value in (*row, synced_at)]
        statements.append(conn.execute(_upsert_orders_sql(len(part)), params))
    await asyncio.gather(*statements)


def _order_rows(orders: Sequence[MirrorOrder]) -> list[tuple[object, ...]]:
    return [
        (
            o.id,
            o.status.value,
            o.crm_status,
            created_at,
            updated_at,
            status_since,
            o.client_name,
            o.client_city,
            o.bike_brand,
            o.bike_model,
            o.price_eur,
            int(o.is_ebike),
            o.seller,
            o.crm_manager_id,
            o.assigned_manager_id,
            o.sale_eur,
            o.purchase_eur,
            o.shipping_eur,
            o.fees_eur,
            o.channel,
            o.client_country,
            o.seller_country,
        )
        for o, created_at, updated_at, status_since in zip(
            orders,
            ts_many([o.created_at for o in orders]),
            ts_many([o.updated_at for o in orders]),
            ts_many([o.status_since for o in orders]),
            strict=True,
        )
    ]


# --- status events ------------------------------------------------------------------------------------------


# A status event seen in the CRM in the form it is stored, so a page of events goes to SQLite as it is:
# (crm event id, order id, from status or None, to status, actor, at as ts() text). A plain tuple: a first
# sync makes a million of them.
CrmEvent = tuple[int, str, Status | None, Status, str, str]


async def unconfirmed_bot_events(conn: aiosqlite.Connection) -> dict[tuple[str, str], list[int]]:
    """Status changes made in the bot that no CRM event confirmed yet, by (order, status), oldest first.
    Few at any time: the CRM echoes a change soon after the outbox delivers it (read off a small index)."""
    rows = await conn.execute_fetchall(
        "SELECT id, order_id, to_status FROM order_status_events"
        " WHERE source = 'bot' AND crm_event_id IS NULL ORDER BY at, id"
    )
    found: dict[tuple[str, str], list[int]] = {}
    for row_id, order_id, to_status in rows:
        found.setdefault((order_id, to_status), []).append(row_id)
    return found


async def confirm_bot_events(conn: aiosqlite.Connection, pairs: Sequence[tuple[int, int]]) -> None:
    """(crm event id, our event row id): the CRM's echo of a change made in the bot."""
    await conn.executemany("UPDATE order_status_events SET crm_event_id = ? WHERE id = ?", pairs)


_INSERT_CRM_EVENTS = f"""
INSERT OR IGNORE INTO order_status_events (crm_event_id, order_id, from_status, to_status, actor, at, source)
{from_json_rows(6, "'crm'")}
"""


# The events' secondary indexes (migrations/001_core.sql). A first sync drops them while it loads an empty
# table and builds them after: a million events arrive in id order, but these indexes are keyed by order and
# by time, so filling them row by row writes pages all over both trees; one sort per index at the end is
# several times cheaper.
_EVENT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_order ON order_status_events(order_id, at)",
    "CREATE INDEX IF NOT EXISTS events_at ON order_status_events(at)",
)


async def prepare_event_load(conn: aiosqlite.Connection) -> bool:
    """Before the events stage: with no event stored yet, drop the secondary indexes (True: the caller
    calls `finish_event_load` when the stage ends). Otherwise make sure they exist (False), so a first load
    cut short by a crash gets them back at the next run."""
    rows = await conn.execute_fetchall("SELECT NOT EXISTS (SELECT 1 FROM order_status_events)")
    empty = bool(next(iter(rows))[0])
    if empty:
        await conn.execute("DROP INDEX IF EXISTS events_order")
        await conn.execute("DROP INDEX IF EXISTS events_at")
    else:
        await finish_event_load(conn)
    return empty


async def finish_event_load(conn: aiosqlite.Connection) -> None:
    for sql in _EVENT_INDEXES:
        await conn.execute(sql)


async def insert_crm_events(conn: aiosqlite.Connection, events: Sequence[CrmEvent]) -> int:
    """Store events seen in the CRM (source 'crm'); an event id already stored is skipped. Returns how many
    were new."""
    return await insert_encoded_events(conn, [encode_events(events)])


def encode_events(events: Sequence[CrmEvent]) -> str:
    return json.dumps(events, ensure_ascii=False)


async def insert_encoded_events(conn: aiosqlite.Connection, pages: Sequence[str]) -> int:
    """`insert_crm_events` for events already encoded, a JSON array (`encode_events`) per page."""
    rows = pages[0] if len(pages) == 1 else "[" + ",".join(p[1:-1] for p in pages if p != "[]") + "]"
    cursor = await conn.execute(_INSERT_CRM_EVENTS, (rows,))
    return max(cursor.rowcount, 0)


# --- contract violations and workspace snapshots ------------------------------------------------------------


class Violation(NamedTuple):
    record_id: str | None
    reason: str
    raw: str


async def add_violations(
    conn: aiosqlite.Connection, source: ViolationSource, violations: Sequence[Violation], now: datetime
) -> None:
    await conn.executemany(
        "INSERT INTO contract_violations (source, record_id, reason, raw, seen_at) VALUES (?, ?, ?, ?, ?)",
        [(source, v.record_id, v.reason, v.raw, ts(now)) for v in violations],
    )


@dataclass(frozen=True)
class StoredViolation:
    id: int
    source: str
    record_id: str | None
    reason: str
    raw: str
    seen_at: datetime


async def list_violations(
    conn: aiosqlite.Connection, source: ViolationSource | None = None, *, limit: int = 100
) -> list[StoredViolation]:
    """The latest records kept aside, newest first."""
    rows = await conn.execute_fetchall(
        "SELECT id, source, record_id, reason, raw, seen_at FROM contract_violations"
        " WHERE ?1 IS NULL OR source = ?1 ORDER BY id DESC LIMIT ?2",
        (source, limit),
    )
    return [StoredViolation(r[0], r[1], r[2], r[3], r[4], parse_ts(r[5])) for r in rows]


async def add_workspace_snapshot(conn: aiosqlite.Connection, payload: str, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO workspace_snapshots (fetched_at, payload) VALUES (?, ?)", (ts(now), payload)
    )


# --- CRM write outbox ---------------------------------------------------------------------------------------


_ENQUEUE_SQL = (
    "INSERT OR IGNORE INTO crm_outbox (kind, order_id, payload, idempotency_key, created_at,"
    " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)"
)


async def enqueue_write(
    conn: aiosqlite.Connection,
    *,
    kind: WriteKind,
    order_id: str,
    payload: str,
    idempotency_key: str,
    now: datetime,
) -> bool:
    """Queue a write to the CRM, due now. A key queued before is left as it is; returns True when queued."""
    cursor = await conn.execute(_ENQUEUE_SQL, (kind, order_id, payload, idempotency_key, ts(now), ts(now)))
    return cursor.rowcount > 0


async def enqueue_writes(
    conn: aiosqlite.Connection, writes: Iterable[tuple[WriteKind, str, str, str]], now: datetime
) -> None:
    """`enqueue_write` for many writes in one statement: (kind, order id, payload JSON, idempotency key)."""
    await conn.execute(_ENQUEUE_MANY_SQL, (json.dumps(list(writes), ensure_ascii=False), ts(now)))


_ENQUEUE_MANY_SQL = (
    "INSERT OR IGNORE INTO crm_outbox (kind, order_id, payload, idempotency_key, created_at, next_attempt_at)"
    f" {from_json_rows(4, '?2', '?2')}"
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: WriteKind
    order_id: str
    payload: str  # JSON body of the request
    idempotency_key: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    acked_at: datetime | None
    refused_at: datetime | None  # the CRM refused it (a 4xx); still retried, slowly


_OUTBOX_COLUMNS = (
    "id, kind, order_id, payload, idempotency_key, created_at, attempts, next_attempt_at, last_error,"
    " acked_at, refused_at"
)


def _outbox_row(row: aiosqlite.Row) -> OutboxRow:
    return OutboxRow(
        id=row[0],
        kind=row[1],
        order_id=row[2],
        payload=row[3],
        idempotency_key=row[4],
        created_at=parse_ts(row[5]),
        attempts=row[6],
        next_attempt_at=parse_ts(row[7]),
        last_error=row[8],
        acked_at=parse_ts_opt(row[9]),
        refused_at=parse_ts_opt(row[10]),
    )


async def due_writes(conn: aiosqlite.Connection, now: datetime, limit: int) -> list[OutboxRow]:
    """Unacknowledged writes due by `now`, oldest first, each only once every earlier write of its order is
    acknowledged or refused (so the CRM sees one order's changes in the order they were made)."""
    rows = await conn.execute_fetchall(
        f"""
        SELECT {_OUTBOX_COLUMNS} FROM crm_outbox AS o
        WHERE o.acked_at IS NULL AND o.next_attempt_at <= ?
          AND NOT EXISTS (SELECT 1 FROM crm_outbox AS p
                          WHERE p.order_id = o.order_id AND p.acked_at IS NULL AND p.refused_at IS NULL
                            AND p.id < o.id)
        ORDER BY o.id LIMIT ?
        """,
        (ts(now), limit),
    )
    return [_outbox_row(row) for row in rows]


async def outbox_rows(conn: aiosqlite.Connection, *, pending_only: bool = False) -> list[OutboxRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_OUTBOX_COLUMNS} FROM crm_outbox WHERE NOT ? OR acked_at IS NULL ORDER BY id",
        (pending_only,),
    )
    return [_outbox_row(row) for row in rows]


async def mark_write_acked(conn: aiosqlite.Connection, row_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE crm_outbox SET acked_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
        (ts(now), row_id),
    )


async def mark_write_failed(
    conn: aiosqlite.Connection,
    row_id: int,
    *,
    error: str,
    next_attempt_at: datetime,
    refused_at: datetime | None = None,
) -> None:
    """Record a failed attempt and when to try again; `refused_at` marks (once) a write the CRM refused."""
    await conn.execute(
        "UPDATE crm_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
        " refused_at = coalesce(refused_at, ?) WHERE id = ?",
        (error[:500], ts(next_attempt_at), None if refused_at is None else ts(refused_at), row_id),
    )
