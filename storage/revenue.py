"""Revenue tables: leads as synced from the CRM, and the funnel reads the revenue circle makes over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from storage.db import parse_ts, parse_ts_opt, ts


@dataclass(frozen=True)
class LeadRow:
    id: str
    created_at: datetime
    updated_at: datetime
    channel: str
    checkout_at: datetime | None
    booking_at: datetime | None
    order_id: str | None
    lost_at: datetime | None
    cost_eur: float | None


def _opt(instant: datetime | None) -> str | None:
    return None if instant is None else ts(instant)


async def upsert_leads(conn: aiosqlite.Connection, leads: Sequence[LeadRow], now: datetime) -> None:
    await conn.executemany(
        """
        INSERT INTO leads (id, created_at, updated_at, channel, checkout_at, booking_at, order_id, lost_at,
                           cost_eur, synced_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET
            updated_at = excluded.updated_at, channel = excluded.channel, checkout_at = excluded.checkout_at,
            booking_at = excluded.booking_at, order_id = excluded.order_id, lost_at = excluded.lost_at,
            cost_eur = excluded.cost_eur, synced_at = excluded.synced_at
        """,
        (
            (
                lead.id,
                ts(lead.created_at),
                ts(lead.updated_at),
                lead.channel,
                _opt(lead.checkout_at),
                _opt(lead.booking_at),
                lead.order_id,
                _opt(lead.lost_at),
                lead.cost_eur,
                ts(now),
            )
            for lead in leads
        ),
    )


async def leads_created(conn: aiosqlite.Connection, start: datetime, end: datetime) -> list[LeadRow]:
    rows = await conn.execute_fetchall(
        "SELECT id, created_at, updated_at, channel, checkout_at, booking_at, order_id, lost_at, cost_eur "
        "FROM leads WHERE created_at >= ? AND created_at < ? ORDER BY created_at",
        (ts(start), ts(end)),
    )
    return [_lead(r) for r in rows]


async def leads_checked_out(conn: aiosqlite.Connection, start: datetime, end: datetime) -> list[LeadRow]:
    rows = await conn.execute_fetchall(
        "SELECT id, created_at, updated_at, channel, checkout_at, booking_at, order_id, lost_at, cost_eur "
        "FROM leads WHERE checkout_at >= ? AND checkout_at < ?",
        (ts(start), ts(end)),
    )
    return [_lead(r) for r in rows]


def _lead(r: Any) -> LeadRow:
    return LeadRow(
        r[0],
        parse_ts(r[1]),
        parse_ts(r[2]),
        r[3],
        parse_ts_opt(r[4]),
        parse_ts_opt(r[5]),
        r[6],
        parse_ts_opt(r[7]),
        r[8],
    )


async def delivered_margins_by_channel(
    conn: aiosqlite.Connection, start: datetime, end: datetime
) -> dict[str, float]:
    """Σ (sale − purchase − shipping − fees) of the orders that entered delivered in [start, end), per the
    channel of the lead that became the order."""
    rows = await conn.execute_fetchall(
        """
        SELECT l.channel,
               sum(coalesce(o.sale_eur, 0) - coalesce(o.purchase_eur, 0) - coalesce(o.shipping_eur, 0)
                   - coalesce(o.fees_eur, 0))
        FROM leads l JOIN orders o ON o.id = l.order_id
        WHERE EXISTS (SELECT 1 FROM order_status_events e
                      WHERE e.order_id = o.id AND e.to_status = 'delivered' AND e.at >= ? AND e.at < ?)
        GROUP BY l.channel
        """,
        (ts(start), ts(end)),
    )
    return {r[0]: round(float(r[1]), 2) for r in rows}
