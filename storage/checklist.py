"""The 28-point checklist of an order as stored: answers and notes (checklist_answers), photos and documents
(artifacts) and where the manager is in it (checklist_sessions), so leaving or a restart resumes there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

from domain.checklist import Answer, ItemAnswer
from storage.db import parse_ts, parse_ts_opt, ts

ArtifactKind = Literal["photo", "document"]


@dataclass(frozen=True)
class ChecklistSession:
    order_id: str
    telegram_id: int
    page: int  # the checklist group shown
    current_item: int | None  # photos and documents sent now are attached to this item
    note_item: int | None  # the next text is this item's note
    opened_at: datetime
    submitted_at: datetime | None


async def get_session(conn: aiosqlite.Connection, order_id: str) -> ChecklistSession | None:
    rows = list(
        await conn.execute_fetchall("SELECT * FROM checklist_sessions WHERE order_id = ?", (order_id,))
    )
    if not rows:
        return None
    row = rows[0]
    return ChecklistSession(
        order_id=row["order_id"],
        telegram_id=row["telegram_id"],
        page=row["page"],
        current_item=row["current_item"],
        note_item=row["note_item"],
        opened_at=parse_ts(row["opened_at"]),
        submitted_at=parse_ts_opt(row["submitted_at"]),
    )


async def open_session(conn: aiosqlite.Connection, order_id: str, telegram_id: int, now: datetime) -> None:
    """Start the order's checklist, or take it up again where it was (page and current item are kept)."""
    await conn.execute(
        """
        INSERT INTO checklist_sessions (order_id, telegram_id, opened_at) VALUES (?, ?, ?)
        ON CONFLICT (order_id) DO UPDATE SET telegram_id = excluded.telegram_id
        """,
        (order_id, telegram_id, ts(now)),
    )


async def set_page(conn: aiosqlite.Connection, order_id: str, page: int) -> None:
    await conn.execute("UPDATE checklist_sessions SET page = ? WHERE order_id = ?", (page, order_id))


async def set_current_item(
    conn: aiosqlite.Connection, order_id: str, item: int | None, *, wants_note: bool
) -> None:
    """Make `item` the one files go to; `wants_note` also makes the next text its note."""
    await conn.execute(
        "UPDATE checklist_sessions SET current_item = ?, note_item = ? WHERE order_id = ?",
        (item, item if wants_note else None, order_id),
    )


async def mark_submitted(conn: aiosqlite.Connection, order_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE checklist_sessions SET submitted_at = ?, note_item = NULL WHERE order_id = ?",
        (ts(now), order_id),
    )


async def answers(conn: aiosqlite.Connection, order_id: str) -> dict[int, ItemAnswer]:
    """The answers given so far, each with the number of files attached to its item."""
    rows = await conn.execute_fetchall(
        """
        SELECT c.item, c.answer, c.note,
               (SELECT count(*) FROM artifacts a WHERE a.order_id = c.order_id AND a.item = c.item) AS files
        FROM checklist_answers c WHERE c.order_id = ?
        """,
        (order_id,),
    )
    return {row["item"]: ItemAnswer(row["answer"], row["note"], row["files"]) for row in rows}


async def files_per_item(conn: aiosqlite.Connection, order_id: str) -> dict[int, int]:
    rows = await conn.execute_fetchall(
        "SELECT item, count(*) FROM artifacts WHERE order_id = ? AND item IS NOT NULL GROUP BY item",
        (order_id,),
    )
    return {item: count for item, count in rows}


async def set_answer(
    conn: aiosqlite.Connection, order_id: str, item: int, answer: Answer, *, by: int, now: datetime
) -> None:
    """Answer (or change the answer to) an item; a note given before is kept."""
    await conn.execute(
        """
        INSERT INTO checklist_answers (order_id, item, answer, answered_by, answered_at)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (order_id, item) DO UPDATE SET
            answer = excluded.answer, answered_by = excluded.answered_by, answered_at = excluded.answered_at
        """,
        (order_id, item, answer, by, ts(now)),
    )


async def set_note(conn: aiosqlite.Connection, order_id: str, item: int, note: str) -> bool:
    """Set an answered item's note; False when the item has no answer yet."""
    cursor = await conn.execute(
        "UPDATE checklist_answers SET note = ? WHERE order_id = ? AND item = ?", (note, order_id, item)
    )
    return cursor.rowcount > 0


@dataclass(frozen=True)
class NewArtifact:
    order_id: str
    item: int
    kind: ArtifactKind
    file_id: str
    file_unique_id: str
    local_path: str | None
    telegram_id: int


async def add_artifact(conn: aiosqlite.Connection, artifact: NewArtifact, now: datetime) -> bool:
    """Store a file of the checklist; False when this very file (same unique id) was stored for the order."""
    cursor = await conn.execute(
        """
        INSERT OR IGNORE INTO artifacts
            (order_id, item, kind, file_id, file_unique_id, local_path, telegram_id, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            artifact.order_id,
            artifact.item,
            artifact.kind,
            artifact.file_id,
            artifact.file_unique_id,
            artifact.local_path,
            artifact.telegram_id,
            ts(now),
        ),
    )
    return cursor.rowcount > 0
