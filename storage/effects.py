"""What the effect sweep reads (issue 12): decisions still waiting for their effect, and what happened after
them (status changes, acceptances, repeats of a problem)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from storage.db import parse_ts, ts
from storage.signals import Decision, Source, _decision, _row, _rows


async def decisions_to_observe(source: Source, actions: Collection[str], limit: int) -> list[Decision]:
    """Settled decisions of `actions` without an effect yet, oldest first (a pending request is not)."""
    marks = ", ".join("?" for _ in actions)
    rows = await _rows(
        source,
        f"""
        SELECT * FROM ai_decisions
        WHERE effect IS NULL AND state <> 'pending_approval' AND action IN ({marks})
        ORDER BY created_at, id LIMIT ?
        """,
        (*actions, limit),
    )
    return [_decision(r) for r in rows]


async def first_acceptance_after(source: Source, order_id: str, after: datetime) -> datetime | None:
    row = await _row(
        source,
        """
        SELECT MIN(answered_at) AS at FROM ai_assignments
        WHERE order_id = ? AND answered_at >= ? AND state = 'accepted'
        """,
        (order_id, ts(after)),
    )
    return parse_ts(row["at"]) if row is not None and row["at"] is not None else None


async def repeat_after(
    source: Source, *, type_: str, status: str | None, after: datetime, not_id: int
) -> tuple[int, datetime] | None:
    """The first signal of `type_` (and, when given, on the same status) raised after `after`."""
    rows = await _rows(
        source,
        """
        SELECT id, raised_at, details FROM ai_signals
        WHERE type = ? AND raised_at > ? AND id <> ? ORDER BY raised_at, id LIMIT 50
        """,
        (type_, ts(after), not_id),
    )
    for row in rows:
        if status is None or f'"status": "{status}"' in row["details"]:
            return int(row["id"]), parse_ts(row["raised_at"])
    return None
