"""The autopilot's rows: an action's mode when switched back to "ask" (autopilot_modes), and its automatic
runs (ai_decisions with kind 'auto' and details.autopilot naming the action)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage.db import ts
from storage.panel import _rows
from storage.signals import Decision, Source, _decision


async def mode_of(source: Source, action: str) -> str | None:
    rows = await _rows(source, "SELECT mode FROM autopilot_modes WHERE action = ?", (action,))
    return str(rows[0][0]) if rows else None


async def modes(source: Source) -> dict[str, str]:
    return {r[0]: r[1] for r in await _rows(source, "SELECT action, mode FROM autopilot_modes")}


async def set_mode(conn: aiosqlite.Connection, action: str, mode: str, now: datetime, reason: str) -> None:
    await conn.execute(
        """
        INSERT INTO autopilot_modes (action, mode, changed_at, reason) VALUES (?, ?, ?, ?)
        ON CONFLICT (action) DO UPDATE SET mode = excluded.mode, changed_at = excluded.changed_at,
                                           reason = excluded.reason
        """,
        (action, mode, ts(now), reason),
    )


async def runs_since(source: Source, action: str, since: datetime) -> int:
    rows = await _rows(
        source,
        """
        SELECT COUNT(*) FROM ai_decisions
        WHERE kind = 'auto' AND created_at >= ? AND json_extract(details, '$.autopilot') = ?
        """,
        (ts(since), action),
    )
    return int(rows[0][0])


async def runs_between(source: Source, action: str, start: datetime, end: datetime) -> list[Decision]:
    rows = await _rows(
        source,
        """
        SELECT * FROM ai_decisions
        WHERE kind = 'auto' AND created_at >= ? AND created_at < ?
          AND json_extract(details, '$.autopilot') = ?
        ORDER BY id
        """,
        (ts(start), ts(end), action),
    )
    return [_decision(r) for r in rows]
