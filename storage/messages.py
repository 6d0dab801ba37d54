"""Outgoing Telegram message slots (table tg_messages): what each chat should show, for the sender to deliver."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from storage.db import ts

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
    markup_json = json.dumps(markup, ensure_ascii=False, sort_keys=True) if markup is not None else None
    cursor = await conn.execute(
        """
        INSERT INTO tg_messages (chat_id, ref, kind, body, markup, file_path, created_at, updated_at,
                                 next_attempt_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (chat_id, ref) DO UPDATE SET
            body = excluded.body, markup = excluded.markup, file_path = excluded.file_path,
            version = version + 1, updated_at = excluded.updated_at,
            next_attempt_at = excluded.next_attempt_at, attempts = 0, last_error = NULL
        WHERE body IS NOT excluded.body OR markup IS NOT excluded.markup
        """,
        (chat_id, ref, kind, body, markup_json, file_path, ts(now), ts(now), ts(now)),
    )
    return cursor.rowcount > 0
