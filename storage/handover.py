"""Handing an order over to another manager (issue 12): release the live assignment, record an accepted one
for the new manager."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage.db import ts

HANDOVER = "handover"  # ai_assignments.decline_reason of an assignment handed over


async def release_for_handover(conn: aiosqlite.Connection, assignment_id: int, now: datetime) -> bool:
    """An offer or an accepted assignment ends because the order went to another manager."""
    cursor = await conn.execute(
        """
        UPDATE ai_assignments SET state = 'released', answered_at = ?, decline_reason = ?
        WHERE id = ? AND state IN ('offered', 'accepted')
        """,
        (ts(now), HANDOVER, assignment_id),
    )
    return cursor.rowcount > 0


async def insert_accepted(
    conn: aiosqlite.Connection,
    *,
    assignment_id: int,
    order_id: str,
    manager_id: str,
    now: datetime,
    candidates_json: str,
    reason: str,
) -> None:
    """The order's new accepted assignment (the order is already past acceptance: nothing to accept again)."""
    await conn.execute(
        """
        INSERT INTO ai_assignments (id, order_id, manager_id, state, offered_at, expires_at, answered_at,
                                    candidates, reason)
        VALUES (?, ?, ?, 'accepted', ?, ?, ?, ?, ?)
        """,
        (assignment_id, order_id, manager_id, ts(now), ts(now), ts(now), candidates_json, reason),
    )
