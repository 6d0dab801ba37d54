"""What the crisis conditions read (issue 12): recent SLA breaches, severe defects on orders in given
statuses."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from storage.db import ts
from storage.signals import Source, _row, _rows


async def breaches_since(source: Source, since: datetime) -> int:
    row = await _row(
        source,
        "SELECT COUNT(*) AS n FROM ai_signals WHERE type = 'sla.breach' AND raised_at >= ?",
        (ts(since),),
    )
    return int(row["n"]) if row is not None else 0


async def ever_raised(source: Source, dedup_key: str) -> bool:
    return (
        await _row(source, "SELECT 1 FROM ai_signals WHERE dedup_key = ? LIMIT 1", (dedup_key,)) is not None
    )


async def defects_on_orders_in(source: Source, statuses: Collection[str]) -> list[str]:
    """Orders in `statuses` with a severe defect signal still live."""
    marks = ", ".join("?" for _ in statuses)
    rows = await _rows(
        source,
        f"""
        SELECT DISTINCT s.order_id FROM ai_signals s JOIN orders o ON o.id = s.order_id
        WHERE s.type = 'quality.severe_defect' AND s.state <> 'resolved' AND o.status IN ({marks})
        ORDER BY s.order_id
        """,
        tuple(statuses),
    )
    return [r["order_id"] for r in rows]
