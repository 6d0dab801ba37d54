"""The money and trust side of orders (SPEC §14): compensations, disputes and payments as the CRM lists them,
the CFO's margin forecasts, the leak detector's findings, and the windowed reads the unit-economics and
quality KPIs are computed from.

The CRM's lists are replaced as a whole on each sync of an order (one statement per list and batch). Reads
take a `Database` or a connection; writes take the connection of the caller's transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import aiosqlite

from domain.economics import Booking, Incident, MoneyOrder
from domain.kpi import Window
from storage.db import Database, parse_ts, ts

Source = Database | aiosqlite.Connection


class OrderLists(NamedTuple):
    """An order's lists as synced: (id, amount, reason, at), (id, opened, closed, outcome), (id, amount, kind,
    at); instants as ts() text."""

    compensations: list[tuple[str, float, str, str]]
    disputes: list[tuple[str, str, str | None, str | None]]
    payments: list[tuple[str, float, str, str]]


async def _rows(source: Source, sql: str, params: Sequence[object] = ()) -> list[Any]:
    conn = source.reader if isinstance(source, Database) else source
    async with conn.execute(sql, tuple(params)) as cursor:
        cursor.row_factory = None
        return list(await cursor.fetchall())


# --- sync ---------------------------------------------------------------------------------------------------

_LISTS = (
    ("order_compensations", "order_id, id, amount_eur, reason, at", 5),
    ("order_disputes", "order_id, id, opened_at, closed_at, outcome", 5),
    ("order_payments", "order_id, id, amount_eur, kind, at", 5),
)


async def replace_lists(conn: aiosqlite.Connection, lists: Sequence[tuple[str, OrderLists]]) -> None:
    """Store each order's compensations, disputes and payments as the CRM shows them now."""
    if not lists:
        return
    ids = json.dumps([order_id for order_id, _ in lists])
    statements: list[tuple[str, tuple[str]]] = []
    for k, (table, columns, width) in enumerate(_LISTS):
        statements.append((f"DELETE FROM {table} WHERE order_id IN (SELECT value FROM json_each(?))", (ids,)))
        rows = [[order_id, *entry] for order_id, entry_lists in lists for entry in entry_lists[k]]
        if not rows:
            continue
        fields = ", ".join(f"json_extract(value, '$[{n}]')" for n in range(width))
        statements.append(
            (
                f"INSERT OR REPLACE INTO {table} ({columns}) SELECT {fields} FROM json_each(?)",
                (json.dumps(rows, ensure_ascii=False),),
            )
        )
    # Queued at once: aiosqlite's thread runs them in this order, back to back (one wait, not six).
    await asyncio.gather(*(conn.execute(sql, params) for sql, params in statements))


# --- forecasts (booked at acceptance) -----------------------------------------------------------------------


async def book_forecasts(
    conn: aiosqlite.Connection, now: datetime, *, usual_shipping_eur: float, limit: int = 50_000
) -> int:
    """Book the margin forecast of every priced order past pending_manager that has none yet:
    sale − purchase − usual shipping − fees, on the prices the order carries now. An order first seen already
    past acceptance (history) is booked the same way and marked so. Returns how many were booked."""
    cursor = await conn.execute(
        """
        INSERT INTO margin_forecasts (order_id, booked_at, source, sale_eur, purchase_eur, shipping_eur,
                                      fees_eur, forecast_eur)
        SELECT o.id, ?1,
               CASE WHEN o.status = 'accepted' THEN 'accepted' ELSE 'history' END,
               o.sale_eur, o.purchase_eur, ?2, o.fees_eur, o.sale_eur - o.purchase_eur - ?2 - o.fees_eur
        FROM orders o
        WHERE o.status NOT IN ('pending_manager', 'cancelled')
          AND o.sale_eur IS NOT NULL AND o.purchase_eur IS NOT NULL AND o.fees_eur IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM margin_forecasts f WHERE f.order_id = o.id)
        LIMIT ?3
        """,
        (ts(now), usual_shipping_eur, limit),
    )
    return max(cursor.rowcount, 0)


# --- what the formulas read ---------------------------------------------------------------------------------

_MONEY_SELECT = """
    SELECT o.id, o.status_since, o.sale_eur, o.purchase_eur, o.shipping_eur, o.fees_eur, o.channel, o.seller,
           o.bike_brand || ' ' || o.bike_model,
           f.forecast_eur, f.purchase_eur,
           (SELECT json_group_array(json_array(c.amount_eur, c.reason)) FROM order_compensations c
             WHERE c.order_id = o.id),
           (SELECT COALESCE(SUM(CASE p.kind WHEN 'payment' THEN p.amount_eur ELSE -p.amount_eur END), 0)
              FROM order_payments p WHERE p.order_id = o.id)
    FROM orders o LEFT JOIN margin_forecasts f ON f.order_id = o.id
"""


def _money_order(r: Any) -> MoneyOrder:
    compensations = tuple((float(a), str(reason)) for a, reason in json.loads(r[11] or "[]"))
    return MoneyOrder(
        order_id=r[0],
        delivered_at=parse_ts(r[1]),
        sale=r[2],
        purchase=r[3],
        shipping=r[4],
        fees=r[5],
        compensations=compensations,
        collected=float(r[12]),
        booking=None if r[9] is None else Booking(float(r[9]), float(r[10])),
        channel=r[6],
        seller=r[7],
        model=r[8],
    )


async def delivered_orders(source: Source, window: Window) -> list[MoneyOrder]:
    """Orders that entered delivered in `window` (delivered is final: status_since is that instant), with
    everything their margin is made of."""
    rows = await _rows(
        source,
        _MONEY_SELECT + " WHERE o.status = 'delivered' AND o.status_since >= ? AND o.status_since < ?",
        (ts(window.start), ts(window.end)),
    )
    return [_money_order(r) for r in rows]


async def money_order(source: Source, order_id: str) -> MoneyOrder | None:
    """One order's margin facts (delivered_at: when it entered its current status)."""
    rows = await _rows(source, _MONEY_SELECT + " WHERE o.id = ?", (order_id,))
    return _money_order(rows[0]) if rows else None


async def delivered_changed_since(
    source: Source, since: datetime | None, delivered_after: datetime
) -> list[MoneyOrder]:
    """Orders delivered after `delivered_after` and synced at or after `since` (None: whenever)."""
    rows = await _rows(
        source,
        _MONEY_SELECT + " WHERE o.status = 'delivered' AND o.status_since >= ?2"
        " AND (?1 IS NULL OR o.synced_at >= ?1)",
        (None if since is None else ts(since), ts(delivered_after)),
    )
    return [_money_order(r) for r in rows]


async def incidents(source: Source, window: Window) -> list[Incident]:
    """Compensations whose `at` and disputes opened in `window`, with their order's seller and bike model."""
    rows = await _rows(
        source,
        """
        SELECT 'compensation', c.order_id, c.id, c.at, c.amount_eur, o.seller,
               o.bike_brand || ' ' || o.bike_model
        FROM order_compensations c JOIN orders o ON o.id = c.order_id
        WHERE c.at >= ?1 AND c.at < ?2
        UNION ALL
        SELECT 'dispute', d.order_id, d.id, d.opened_at, NULL, o.seller, o.bike_brand || ' ' || o.bike_model
        FROM order_disputes d JOIN orders o ON o.id = d.order_id
        WHERE d.opened_at >= ?1 AND d.opened_at < ?2
        """,
        (ts(window.start), ts(window.end)),
    )
    return [Incident(r[0], r[1], r[2], parse_ts(r[3]), r[4], r[5] or "", r[6] or "") for r in rows]


async def delivered_count(source: Source, window: Window) -> int:
    rows = await _rows(
        source,
        "SELECT COUNT(*) FROM orders WHERE status = 'delivered' AND status_since >= ? AND status_since < ?",
        (ts(window.start), ts(window.end)),
    )
    return int(rows[0][0])


@dataclass(frozen=True)
class ChecklistCount:
    submitted: int
    severe: int


async def checklists_submitted(source: Source, window: Window) -> ChecklistCount:
    """Checklists submitted in `window`, and those with a fail on item 4 or 6 (a frame or fork crack)."""
    rows = await _rows(
        source,
        """
        SELECT COUNT(*), COALESCE(SUM(EXISTS (
                   SELECT 1 FROM checklist_answers a
                   WHERE a.order_id = s.order_id AND a.item IN (4, 6) AND a.answer = 'fail')), 0)
        FROM checklist_sessions s WHERE s.submitted_at >= ? AND s.submitted_at < ?
        """,
        (ts(window.start), ts(window.end)),
    )
    return ChecklistCount(int(rows[0][0]), int(rows[0][1]))


# --- the leak detector's memory -----------------------------------------------------------------------------


async def findings_of(source: Source, order_ids: Iterable[str]) -> dict[tuple[str, str], float]:
    rows = await _rows(
        source,
        "SELECT order_id, rule, eur FROM circle_findings WHERE order_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(order_ids)),),
    )
    return {(r[0], r[1]): float(r[2]) for r in rows}


async def save_finding(
    conn: aiosqlite.Connection,
    order_id: str,
    rule: str,
    eur: float,
    causes: list[dict[str, Any]],
    now: datetime,
    signal_id: int | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO circle_findings (order_id, rule, eur, causes, found_at, signal_id)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (order_id, rule) DO UPDATE SET eur = excluded.eur, causes = excluded.causes,
            found_at = excluded.found_at, signal_id = excluded.signal_id
        """,
        (order_id, rule, eur, json.dumps(causes), ts(now), signal_id),
    )


async def kv_get(source: Source, key: str) -> str | None:
    rows = await _rows(source, "SELECT value FROM kv WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else None


async def kv_set(conn: aiosqlite.Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


async def order_status(source: Source, order_id: str) -> str | None:
    rows = await _rows(source, "SELECT status FROM orders WHERE id = ?", (order_id,))
    return str(rows[0][0]) if rows else None


async def delivered_nets(source: Source, window: Window) -> list[tuple[datetime, float]]:
    """(delivered at, net margin) of every priced order delivered in `window`, oldest first: what a chart of
    net margin per day needs, without the rest of each order (a fortnight is ~15,000 rows at 100k orders)."""
    rows = await _rows(
        source,
        """
        SELECT o.status_since,
               o.sale_eur - o.purchase_eur - o.shipping_eur - o.fees_eur
               - COALESCE((SELECT SUM(c.amount_eur) FROM order_compensations c WHERE c.order_id = o.id), 0)
        FROM orders o
        WHERE o.status = 'delivered' AND o.status_since >= ? AND o.status_since < ?
          AND o.sale_eur IS NOT NULL AND o.purchase_eur IS NOT NULL AND o.shipping_eur IS NOT NULL
          AND o.fees_eur IS NOT NULL
        ORDER BY o.status_since
        """,
        (ts(window.start), ts(window.end)),
    )
    return [(parse_ts(r[0]), float(r[1])) for r in rows]
