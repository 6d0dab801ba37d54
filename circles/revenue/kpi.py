"""The revenue circle's KPIs (SPEC §14; definitions in docs/kpi.md) over a window [start, end).

`revenue_kpis(conn, (start, end))` reads the synced leads (and the orders they became); a rate over an empty
window is None, never 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from domain import funnel
from storage import revenue as store

Window = tuple[datetime, datetime]


def facts(rows: list[store.LeadRow]) -> list[funnel.LeadFacts]:
    return [
        funnel.LeadFacts(r.channel, r.created_at, r.checkout_at, r.booking_at, r.order_id, r.cost_eur)
        for r in rows
    ]


async def revenue_kpis(conn: aiosqlite.Connection, window: Window) -> dict[str, Any]:
    start, end = window
    created = facts(await store.leads_created(conn, start, end))
    checked_out = facts(await store.leads_checked_out(conn, start, end))
    return {
        "lead_count": len(created),
        "leads_by_channel": {channel: len(own) for channel, own in funnel.by_channel(created).items()},
        "lead_to_order_conversion": funnel.lead_to_order(created),
        "lead_to_order_conversion_by_channel": {
            channel: funnel.lead_to_order(own) for channel, own in funnel.by_channel(created).items()
        },
        "checkout_to_booking_conversion": funnel.checkout_to_booking(checked_out),
        "funnel_drop_off": funnel.drop_off(created),
        "channel_quality_score": funnel.channel_quality(created),
        "cost_per_order_eur": funnel.cost_per_order(created),
        "gross_margin_by_channel_eur": await store.delivered_margins_by_channel(conn, start, end),
    }
