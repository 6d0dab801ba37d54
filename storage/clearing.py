"""What the clearing sweep reads (issue 12): live signals whose condition depends on an order, and those
orders' status and offers as they are now."""

from __future__ import annotations

from collections.abc import Collection

from domain.clearing import OrderNow
from domain.signals import Signal
from storage.db import parse_ts, parse_ts_opt
from storage.signals import Source, _rows, signal_from_row


async def live_signals_of_types(source: Source, types: Collection[str], limit: int) -> list[Signal]:
    """Unresolved signals of `types`, oldest first."""
    if not types:
        return []
    marks = ", ".join("?" for _ in types)
    rows = await _rows(
        source,
        f"SELECT * FROM ai_signals WHERE state <> 'resolved' AND type IN ({marks}) ORDER BY id LIMIT ?",
        (*types, limit),
    )
    return [signal_from_row(r) for r in rows]


async def orders_now(source: Source, order_ids: Collection[str]) -> dict[str, OrderNow]:
    """Status, status_since and the latest live offer or accepted assignment of each known order."""
    if not order_ids:
        return {}
    marks = ", ".join("?" for _ in order_ids)
    rows = await _rows(
        source,
        f"""
        SELECT o.id, o.status, o.status_since,
               (SELECT MAX(a.offered_at) FROM ai_assignments a
                 WHERE a.order_id = o.id AND a.state IN ('offered', 'accepted')) AS offered_at
        FROM orders o WHERE o.id IN ({marks})
        """,
        tuple(order_ids),
    )
    return {
        r["id"]: OrderNow(r["status"], parse_ts(r["status_since"]), parse_ts_opt(r["offered_at"]))
        for r in rows
    }
