"""What a person's next free message answers (issue 12), in one lookup: the question asked last among a
tracking number, a checklist note (input_focus) and a postmortem answer (postmortems not done, not paused)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

from storage.db import ts
from storage.signals import Postmortem, Source, _postmortem, _row

AwaitedKind = Literal["tracking", "checklist", "postmortem"]


@dataclass(frozen=True)
class Awaited:
    kind: AwaitedKind
    order_id: str | None = None  # tracking, checklist
    postmortem_id: int | None = None  # postmortem


async def awaited(source: Source, telegram_id: int) -> Awaited | None:
    row = await _row(
        source,
        """
        SELECT kind, order_id, NULL AS postmortem_id, since AS asked FROM input_focus WHERE telegram_id = ?
        UNION ALL
        SELECT 'postmortem', NULL, id, COALESCE(asked_at, created_at) FROM postmortems
        WHERE author = ? AND step <> 'done' AND paused_at IS NULL
        ORDER BY asked DESC LIMIT 1
        """,
        (telegram_id, telegram_id),
    )
    if row is None:
        return None
    return Awaited(row["kind"], row["order_id"], row["postmortem_id"])


async def get_postmortem(source: Source, postmortem_id: int) -> Postmortem | None:
    row = await _row(source, "SELECT * FROM postmortems WHERE id = ?", (postmortem_id,))
    return None if row is None else _postmortem(row)


async def postmortem_of_signal(source: Source, signal_id: int) -> Postmortem | None:
    row = await _row(source, "SELECT * FROM postmortems WHERE signal_id = ?", (signal_id,))
    return None if row is None else _postmortem(row)


async def pause_postmortems(conn: aiosqlite.Connection, author: int, now: datetime) -> list[int]:
    """Put off every unfinished postmortem of the author; returns their signal ids."""
    rows = await conn.execute_fetchall(
        "SELECT signal_id FROM postmortems WHERE author = ? AND step <> 'done' AND paused_at IS NULL"
        " ORDER BY id",
        (author,),
    )
    await conn.execute(
        "UPDATE postmortems SET paused_at = ? WHERE author = ? AND step <> 'done' AND paused_at IS NULL",
        (ts(now), author),
    )
    return [int(r[0]) for r in rows]


async def resume_postmortem(conn: aiosqlite.Connection, signal_id: int, author: int, now: datetime) -> bool:
    """The author continues the postmortem of `signal_id`: its question is the one asked last again."""
    cursor = await conn.execute(
        """
        UPDATE postmortems SET paused_at = NULL, asked_at = ?
        WHERE signal_id = ? AND author = ? AND step <> 'done'
        """,
        (ts(now), signal_id, author),
    )
    return cursor.rowcount > 0


async def mark_asked(conn: aiosqlite.Connection, signal_id: int, now: datetime) -> None:
    await conn.execute("UPDATE postmortems SET asked_at = ? WHERE signal_id = ?", (ts(now), signal_id))
