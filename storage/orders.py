"""Orders as the bot changes them (table orders, order_status_events), their short handles for buttons
(order_handles) and what a manager's next message answers (input_focus). The sync owns the CRM mirror's
upserts (storage/crm.py); this module owns the bot's side.

Functions take an aiosqlite connection: the one of the caller's transaction, or `db.reader` for a plain read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

import aiosqlite

from domain.models import Order
from domain.statuses import FINAL_STATUSES, Status
from storage.db import parse_ts, parse_ts_opt, ts

FocusKind = Literal["checklist", "tracking"]

_OPEN_SQL = "(" + ", ".join(f"'{s.value}'" for s in Status if s not in FINAL_STATUSES) + ")"
_ORDER_COLUMNS = (
    "o.id, o.status, o.created_at, o.updated_at, o.status_since, o.client_name, o.client_city, o.bike_brand, "
    "o.bike_model, o.price_eur, o.is_ebike, o.seller, o.crm_manager_id, o.assigned_manager_id, o.sale_eur, "
    "o.purchase_eur, o.shipping_eur, o.fees_eur, o.tracking_number"
)
_ORDER_FIELDS = _ORDER_COLUMNS.count(",") + 1


_STATUSES = {status.value: status for status in Status}


def order_from_row(row: aiosqlite.Row) -> Order:
    """An order from a row that starts with `_ORDER_COLUMNS` (unpacked by position: a dispatch pass reads
    thousands, and names cost a lookup each)."""
    (
        order_id,
        status,
        created_at,
        updated_at,
        status_since,
        client_name,
        client_city,
        bike_brand,
        bike_model,
        price_eur,
        is_ebike,
        seller,
        crm_manager_id,
        assigned_manager_id,
        sale_eur,
        purchase_eur,
        shipping_eur,
        fees_eur,
        tracking_number,
    ) = tuple(row)[:_ORDER_FIELDS]
    return Order(
        id=order_id,
        status=_STATUSES[status],
        created_at=parse_ts(created_at),
        updated_at=parse_ts(updated_at),
        status_since=parse_ts(status_since),
        client_name=client_name or "",
        client_city=client_city or "",
        bike_brand=bike_brand or "",
        bike_model=bike_model or "",
        price_eur=price_eur if price_eur is not None else 0.0,
        is_ebike=bool(is_ebike),
        seller=seller or "",
        crm_manager_id=crm_manager_id,
        assigned_manager_id=assigned_manager_id,
        sale_eur=sale_eur,
        purchase_eur=purchase_eur,
        shipping_eur=shipping_eur,
        fees_eur=fees_eur,
        tracking_number=tracking_number,
    )


async def _one(conn: aiosqlite.Connection, sql: str, params: tuple[object, ...]) -> aiosqlite.Row | None:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def get_order(conn: aiosqlite.Connection, order_id: str) -> Order | None:
    row = await _one(conn, f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.id = ?", (order_id,))
    return None if row is None else order_from_row(row)


def id_list(ids: Iterable[str]) -> str:
    """Ids as one JSON parameter for `IN (SELECT value FROM json_each(?))`: no limit on how many."""
    return json.dumps(sorted(set(ids)), ensure_ascii=False)


async def get_orders(conn: aiosqlite.Connection, order_ids: Iterable[str]) -> list[Order]:
    """The orders among `order_ids` that exist, in id order."""
    rows = await conn.execute_fetchall(
        f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.id IN (SELECT value FROM json_each(?)) ORDER BY o.id",
        (id_list(order_ids),),
    )
    return [order_from_row(row) for row in rows]


async def order_handle(conn: aiosqlite.Connection, order_id: str) -> int:
    """The order's short number for button data (created on first use)."""
    await conn.execute("INSERT OR IGNORE INTO order_handles (order_id) VALUES (?)", (order_id,))
    row = await _one(conn, "SELECT id FROM order_handles WHERE order_id = ?", (order_id,))
    assert row is not None
    return int(row[0])


async def order_of_handle(conn: aiosqlite.Connection, handle: int) -> str | None:
    row = await _one(conn, "SELECT order_id FROM order_handles WHERE id = ?", (handle,))
    return None if row is None else str(row[0])


class QueuedOrder(NamedTuple):
    """An order waiting for a manager, with what its offer card shows (a dispatch pass reads thousands)."""

    id: str
    created_at: str  # as stored: the queue's order, and where its next page starts
    bike_brand: str
    bike_model: str
    is_ebike: bool
    price_eur: float
    client_city: str


async def pending_without_offer(
    conn: aiosqlite.Connection, *, after: QueuedOrder | None = None, limit: int = 1000
) -> list[QueuedOrder]:
    """Orders in pending_manager with neither a live offer nor an accepted assignment nor a compliance hold,
    oldest first; the next page starts `after` the last order of the previous one. An order whose accept
    timeout waits for a person (the autopilot asked: a live order.accept_timeout signal) is left alone until
    it is resolved. Read off the queue's own index (migrations/016): the planner, without statistics,
    would take the status index and sort every pending order again for each page."""
    start = (after.created_at, after.id) if after is not None else ("", "")
    rows = await conn.execute_fetchall(
        """
        SELECT o.id, o.created_at, coalesce(o.bike_brand, ''), coalesce(o.bike_model, ''), o.is_ebike,
               coalesce(o.price_eur, 0.0), coalesce(o.client_city, '')
        FROM orders o INDEXED BY orders_pending_queue
        WHERE o.status = 'pending_manager' AND (o.created_at, o.id) > (?, ?)
          AND NOT EXISTS (SELECT 1 FROM ai_assignments a
                          WHERE a.order_id = o.id AND a.state IN ('offered', 'accepted'))
          AND NOT EXISTS (SELECT 1 FROM compliance_holds h  -- held by a sanctions hit (governance)
                          WHERE h.order_id = o.id AND h.released_at IS NULL)
          AND NOT EXISTS (SELECT 1 FROM ai_signals s WHERE s.order_id = o.id
                          AND s.type = 'order.accept_timeout' AND s.state <> 'resolved')
        ORDER BY o.created_at, o.id
        LIMIT ?
        """,
        (*start, limit),
    )
    return [
        QueuedOrder(order_id, created_at, brand, model, ebike == 1, price, city)
        for order_id, created_at, brand, model, ebike, price, city in rows
    ]


async def open_orders_by_manager(conn: aiosqlite.Connection) -> dict[str, dict[Status, int]]:
    """Every manager's open orders counted per status; offered orders count (they wait in pending_manager)."""
    rows = await conn.execute_fetchall(
        f"""
        SELECT assigned_manager_id, status, count(*) FROM orders
        WHERE assigned_manager_id IS NOT NULL AND status IN {_OPEN_SQL}
        GROUP BY assigned_manager_id, status
        """
    )
    loads: dict[str, dict[Status, int]] = {}
    for manager_id, status, count in rows:
        loads.setdefault(manager_id, {})[Status(status)] = count
    return loads


async def set_assigned_managers(conn: aiosqlite.Connection, pairs: Iterable[tuple[str | None, str]]) -> None:
    """(manager id or None, order id): who the order is with now, as far as the bot is concerned."""
    await conn.executemany("UPDATE orders SET assigned_manager_id = ? WHERE id = ?", pairs)


@dataclass(frozen=True)
class OpenOrder:
    order: Order
    deadline: datetime | None  # the current status visit's breach instant (None: no running SLA visit)


async def open_orders_of(conn: aiosqlite.Connection, manager_id: str) -> list[OpenOrder]:
    """A manager's open orders, the ones due soonest first, with the deadline of their current step."""
    rows = await conn.execute_fetchall(
        f"""
        SELECT {_ORDER_COLUMNS}, t.breach_at FROM orders o
        LEFT JOIN sla_timers t ON t.order_id = o.id AND t.closed_at IS NULL
        WHERE o.assigned_manager_id = ? AND o.status IN {_OPEN_SQL}
        ORDER BY t.breach_at IS NULL, t.breach_at, o.id
        """,
        (manager_id,),
    )
    return [OpenOrder(order_from_row(row), parse_ts_opt(row["breach_at"])) for row in rows]


async def step_deadline(conn: aiosqlite.Connection, order_id: str) -> datetime | None:
    """When the order's current status visit breaches its budget (None for a final status)."""
    row = await _one(
        conn, "SELECT breach_at FROM sla_timers WHERE order_id = ? AND closed_at IS NULL", (order_id,)
    )
    return None if row is None else parse_ts(row["breach_at"])


async def set_status(
    conn: aiosqlite.Connection, order_id: str, to: Status, at: datetime, *, tracking_number: str | None = None
) -> None:
    await conn.execute(
        """
        UPDATE orders SET status = ?, crm_status = ?, status_since = ?, updated_at = ?,
                          tracking_number = coalesce(?, tracking_number)
        WHERE id = ?
        """,
        (to.value, to.value, ts(at), ts(at), tracking_number, order_id),
    )


async def add_status_event(
    conn: aiosqlite.Connection,
    *,
    order_id: str,
    from_status: Status | None,
    to_status: Status,
    actor: str,
    at: datetime,
    reason: str | None = None,
) -> int:
    """One row of the order's history, made in the bot (source 'bot'); returns its id."""
    cursor = await conn.execute(
        """
        INSERT INTO order_status_events (order_id, from_status, to_status, actor, source, at, reason)
        VALUES (?, ?, ?, ?, 'bot', ?, ?)
        """,
        (order_id, from_status.value if from_status else None, to_status.value, actor, ts(at), reason),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


@dataclass(frozen=True)
class HistoryEntry:
    from_status: Status | None
    to_status: Status
    actor: str
    source: str
    at: datetime
    reason: str | None


async def status_history(conn: aiosqlite.Connection, order_id: str) -> list[HistoryEntry]:
    rows = await conn.execute_fetchall(
        """
        SELECT from_status, to_status, actor, source, at, reason FROM order_status_events
        WHERE order_id = ? ORDER BY at, id
        """,
        (order_id,),
    )
    return [
        HistoryEntry(
            Status(row["from_status"]) if row["from_status"] else None,
            Status(row["to_status"]),
            row["actor"],
            row["source"],
            parse_ts(row["at"]),
            row["reason"],
        )
        for row in rows
    ]


# --- what a manager's next free message answers


@dataclass(frozen=True)
class Focus:
    telegram_id: int
    kind: FocusKind
    order_id: str
    since: datetime


async def set_focus(
    conn: aiosqlite.Connection, telegram_id: int, kind: FocusKind, order_id: str, now: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO input_focus (telegram_id, kind, order_id, since) VALUES (?, ?, ?, ?)
        ON CONFLICT (telegram_id) DO UPDATE SET kind = excluded.kind, order_id = excluded.order_id,
                                                since = excluded.since
        """,
        (telegram_id, kind, order_id, ts(now)),
    )


async def get_focus(conn: aiosqlite.Connection, telegram_id: int) -> Focus | None:
    row = await _one(conn, "SELECT * FROM input_focus WHERE telegram_id = ?", (telegram_id,))
    if row is None:
        return None
    return Focus(row["telegram_id"], row["kind"], row["order_id"], parse_ts(row["since"]))


async def clear_focus(
    conn: aiosqlite.Connection,
    *,
    order_id: str,
    telegram_id: int | None = None,
    kind: FocusKind | None = None,
) -> None:
    """Forget the questions about an order (for one person or everyone, of one kind or all)."""
    await conn.execute(
        """
        DELETE FROM input_focus WHERE order_id = ?
          AND (? IS NULL OR telegram_id = ?) AND (? IS NULL OR kind = ?)
        """,
        (order_id, telegram_id, telegram_id, kind, kind),
    )
