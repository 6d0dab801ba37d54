"""Outgoing Telegram message slots (table tg_messages): what each chat should show, for the sender to send."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

import aiosqlite

from storage.db import Database, parse_ts, ts

MessageKind = Literal["text", "photo", "document"]


async def put_message(
    conn: aiosqlite.Connection,
    *,
    chat_id: int,
    ref: str,
    body: str,
    now: datetime,
    markup: dict[str, Any] | None = None,
    kind: MessageKind = "text",
    file_path: str | None = None,
) -> bool:
    """Ask for `chat_id` to show this message under `ref` (call inside the use case's transaction).

    The first call for a (chat, ref) sends a message; later calls with other content edit it in place; a call
    with the same content changes nothing. Returns True when the sender has something new to do.
    """
    cursor = await conn.execute(_PUT_SQL, _put_row(chat_id, ref, body, markup, kind, file_path, ts(now)))
    return cursor.rowcount > 0


class TextMessage(NamedTuple):
    chat_id: int
    ref: str
    body: str
    markup: dict[str, Any] | None


async def put_messages(conn: aiosqlite.Connection, messages: Iterable[TextMessage], *, now: datetime) -> None:
    """`put_message` for many text messages in one statement (a dispatch pass over a backlog)."""
    await put_encoded_messages(
        conn, [(m.chat_id, m.ref, m.body, encode_markup(m.markup)) for m in messages], now=now
    )


async def put_encoded_messages(
    conn: aiosqlite.Connection, messages: Sequence[tuple[int, str, str, str | None]], *, now: datetime
) -> None:
    """`put_messages` for text messages whose markup is already encoded (`encode_markup`): (chat id, ref,
    body, markup JSON). A dispatch pass renders thousands of cards that differ only in a few values."""
    await conn.execute(_PUT_MANY_SQL, (json.dumps(messages, ensure_ascii=False), ts(now)))


_COLUMNS = "chat_id, ref, kind, body, markup, file_path, created_at, updated_at, next_attempt_at"
_ON_CONFLICT = """
ON CONFLICT (chat_id, ref) DO UPDATE SET
    body = excluded.body, markup = excluded.markup, file_path = excluded.file_path,
    version = version + 1, updated_at = excluded.updated_at,
    next_attempt_at = excluded.next_attempt_at, attempts = 0, last_error = NULL
WHERE body IS NOT excluded.body OR markup IS NOT excluded.markup
"""
_PUT_SQL = f"INSERT INTO tg_messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {_ON_CONFLICT}"
# (chat id, ref, body, markup) rows as one JSON parameter; `WHERE true` tells SQLite's parser that the
# ON CONFLICT belongs to the INSERT, not to a join in the SELECT.
_PUT_MANY_SQL = f"""
INSERT INTO tg_messages ({_COLUMNS})
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'text', json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), NULL, ?2, ?2, ?2
FROM json_each(?1) WHERE true
{_ON_CONFLICT}
"""


def encode_markup(markup: dict[str, Any] | None) -> str | None:
    """A keyboard as tg_messages.markup stores it (and compares it, to skip edits that change nothing)."""
    return json.dumps(markup, ensure_ascii=False, sort_keys=True) if markup is not None else None


def _put_row(
    chat_id: int,
    ref: str,
    body: str,
    markup: dict[str, Any] | None,
    kind: str,
    file_path: str | None,
    at: str,
) -> tuple[object, ...]:
    return (chat_id, ref, kind, body, encode_markup(markup), file_path, at, at, at)


# --- the sender's side: what is due, and what happened to each delivery


async def chats_with_due_messages(db: Database, now: datetime, *, limit: int) -> list[int]:
    """Chats that have a message to send or edit now, the longest waiting first."""
    rows = await db.fetchall(
        """
        SELECT chat_id FROM tg_messages
        WHERE sent_version < version AND dead = 0 AND next_attempt_at <= ?
        GROUP BY chat_id ORDER BY MIN(next_attempt_at), MIN(id) LIMIT ?
        """,
        (ts(now), limit),
    )
    return [int(row["chat_id"]) for row in rows]


async def due_messages(db: Database, chat_id: int, now: datetime, *, limit: int) -> list[aiosqlite.Row]:
    """A chat's messages to send or edit now, in the order they were first asked for."""
    return await db.fetchall(
        """
        SELECT * FROM tg_messages
        WHERE chat_id = ? AND sent_version < version AND dead = 0 AND next_attempt_at <= ?
        ORDER BY id LIMIT ?
        """,
        (chat_id, ts(now), limit),
    )


async def next_due_at(db: Database) -> datetime | None:
    row = await db.fetchone(
        "SELECT MIN(next_attempt_at) AS at FROM tg_messages WHERE sent_version < version AND dead = 0"
    )
    return parse_ts(row["at"]) if row is not None and row["at"] is not None else None


async def record_parts(
    conn: aiosqlite.Connection, message_row_id: int, message_ids: list[int], *, now: datetime
) -> None:
    """Store the Telegram ids of the parts shown so far (the first is `message_id`, the rest extra ids)."""
    await conn.execute(
        "UPDATE tg_messages SET message_id = ?, extra_message_ids = ?, updated_at = ? WHERE id = ?",
        (
            message_ids[0] if message_ids else None,
            json.dumps(message_ids[1:]) if len(message_ids) > 1 else None,
            ts(now),
            message_row_id,
        ),
    )


async def mark_delivered(
    conn: aiosqlite.Connection, message_row_id: int, *, version: int, message_ids: list[int], now: datetime
) -> None:
    """The chat shows `version` of the message. A newer version asked for meanwhile stays due (an edit)."""
    await record_parts(conn, message_row_id, message_ids, now=now)
    await conn.execute(
        """
        UPDATE tg_messages SET sent_version = MAX(sent_version, ?), attempts = 0, last_error = NULL
        WHERE id = ?
        """,
        (version, message_row_id),
    )


async def mark_attempt_failed(
    conn: aiosqlite.Connection, message_row_id: int, *, error: str, retry_at: datetime
) -> None:
    await conn.execute(
        "UPDATE tg_messages SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        (error[:500], ts(retry_at), message_row_id),
    )


async def mark_dead(conn: aiosqlite.Connection, message_row_id: int, *, error: str) -> None:
    """Undeliverable for good (a permanent error): kept with the reason, never tried again."""
    await conn.execute(
        "UPDATE tg_messages SET dead = 1, attempts = attempts + 1, last_error = ? WHERE id = ?",
        (error[:500], message_row_id),
    )


async def kill_chat_messages(conn: aiosqlite.Connection, chat_id: int, *, error: str) -> int:
    """Every pending message of a chat that blocked the bot: kept, marked undeliverable."""
    cursor = await conn.execute(
        """
        UPDATE tg_messages SET dead = 1, last_error = ?
        WHERE chat_id = ? AND dead = 0 AND sent_version < version
        """,
        (error[:500], chat_id),
    )
    return cursor.rowcount


async def revive_chat_messages(conn: aiosqlite.Connection, chat_id: int, *, now: datetime) -> int:
    """The chat unblocked the bot: what piled up meanwhile goes out (cards show the current state)."""
    cursor = await conn.execute(
        """
        UPDATE tg_messages SET dead = 0, attempts = 0, last_error = NULL, next_attempt_at = ?
        WHERE chat_id = ? AND dead = 1 AND sent_version < version
        """,
        (ts(now), chat_id),
    )
    return cursor.rowcount


async def move_to_chat(
    conn: aiosqlite.Connection, old_chat_id: int, new_chat_id: int, *, now: datetime
) -> int:
    """A group migrated: its messages still to deliver go to the new chat, as new messages.

    Messages already shown stay with the old chat until they change (an edit there fails and moves them then).
    A slot the new chat already has under the same ref wins; the old one is retired.
    """
    cursor = await conn.execute(
        """
        UPDATE OR IGNORE tg_messages
        SET chat_id = ?, message_id = NULL, extra_message_ids = NULL, next_attempt_at = ?, updated_at = ?
        WHERE chat_id = ? AND dead = 0 AND sent_version < version
        """,
        (new_chat_id, ts(now), ts(now), old_chat_id),
    )
    await conn.execute(
        """
        UPDATE tg_messages SET dead = 1, last_error = 'superseded: the group migrated'
        WHERE chat_id = ? AND dead = 0 AND sent_version < version
        """,
        (old_chat_id,),
    )
    return cursor.rowcount


def message_parts(row: aiosqlite.Row) -> list[int]:
    """Telegram ids of the parts a slot shows now, first to last (empty: not sent yet)."""
    if row["message_id"] is None:
        return []
    extra = json.loads(row["extra_message_ids"]) if row["extra_message_ids"] else []
    return [int(row["message_id"]), *(int(part) for part in extra)]


async def message_id_for(db: Database, chat_id: int, ref: str) -> int | None:
    """The Telegram id of the message carrying the slot's keyboard (its last part); None if not shown yet."""
    row = await db.fetchone(
        "SELECT message_id, extra_message_ids FROM tg_messages WHERE chat_id = ? AND ref = ?", (chat_id, ref)
    )
    if row is None:
        return None
    parts = message_parts(row)
    return parts[-1] if parts else None


async def ref_for_message(db: Database, chat_id: int, message_id: int) -> str | None:
    """Which slot a message the user pressed a button on belongs to (None: not one of ours, or an old one)."""
    row = await db.fetchone(
        """
        SELECT ref FROM tg_messages
        WHERE chat_id = ? AND (message_id = ?
            OR EXISTS (SELECT 1 FROM json_each(tg_messages.extra_message_ids) WHERE value = ?))
        """,
        (chat_id, message_id, message_id),
    )
    return None if row is None else str(row["ref"])


async def get_message(db: Database, chat_id: int, ref: str) -> aiosqlite.Row | None:
    """The slot as stored: content, versions, Telegram ids and delivery state."""
    return await db.fetchone("SELECT * FROM tg_messages WHERE chat_id = ? AND ref = ?", (chat_id, ref))
