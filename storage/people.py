"""People and chats on the Telegram side (users, chats, link_codes) and the manager <-> Telegram id link.

Reads take a `Database` or a connection inside a transaction (`db_or_conn`). A person's own writes (seen,
language) take either the connection of the caller's transaction or the Database, for a one-statement unit of
work on the per-update path; the other writes take the caller's connection.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite

from storage.db import Database, parse_ts, parse_ts_opt, ts

Source = Database | aiosqlite.Connection

LINK_CODE_TTL = timedelta(hours=24)
# No 0/O or 1/I: a code is read off one screen and typed on another.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 8
_LANGUAGES = ("ru", "en")


async def _fetchone(source: Source, sql: str, params: tuple[object, ...]) -> aiosqlite.Row | None:
    # One round trip to the database thread (execute, fetch and close in one call): these run on every update.
    conn = source.conn if isinstance(source, Database) else source
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


@dataclass(frozen=True)
class Person:
    """What the bot knows about a Telegram user: their stored language and the manager linked to them."""

    telegram_id: int
    lang: str | None
    first_name: str | None
    last_seen: datetime | None
    manager: aiosqlite.Row | None  # `manager_id` and `active` of the linked manager; None if there is none

    @property
    def manager_id(self) -> str | None:
        return None if self.manager is None else str(self.manager["manager_id"])


async def lookup_person(source: Source, telegram_id: int) -> Person:
    """One query for everything the per-update middleware needs."""
    row = await _fetchone(
        source,
        """
        SELECT u.lang, u.first_name, u.last_seen, m.id AS manager_id, m.active
        FROM (SELECT ? AS tid) AS q
        LEFT JOIN users u ON u.telegram_id = q.tid
        LEFT JOIN managers m ON m.telegram_id = q.tid
        """,
        (telegram_id,),
    )
    assert row is not None  # the sub-select always yields one row
    return Person(
        telegram_id=telegram_id,
        lang=row["lang"],
        first_name=row["first_name"],
        last_seen=parse_ts_opt(row["last_seen"]),
        manager=row if row["manager_id"] is not None else None,
    )


async def manager_by_telegram_id(source: Source, telegram_id: int) -> aiosqlite.Row | None:
    return await _fetchone(source, "SELECT * FROM managers WHERE telegram_id = ?", (telegram_id,))


async def manager_by_id(source: Source, manager_id: str) -> aiosqlite.Row | None:
    return await _fetchone(source, "SELECT * FROM managers WHERE id = ?", (manager_id,))


async def linked_managers(db: Database) -> list[aiosqlite.Row]:
    """Active managers with a Telegram id (they get the manager command menu)."""
    return await db.fetchall(
        "SELECT * FROM managers WHERE telegram_id IS NOT NULL AND active = 1 ORDER BY id"
    )


async def _write(target: Source, sql: str, params: tuple[object, ...]) -> int:
    """A write inside the caller's transaction (a connection), or one statement on its own (a Database)."""
    if isinstance(target, Database):
        return await target.write(sql, params)
    cursor = await target.execute(sql, params)
    return cursor.rowcount


async def touch_user(target: Source, *, telegram_id: int, first_name: str | None, now: datetime) -> None:
    """Record that a person was seen (first and last seen, their display name)."""
    await _write(
        target,
        """
        INSERT INTO users (telegram_id, first_name, first_seen, last_seen) VALUES (?, ?, ?, ?)
        ON CONFLICT (telegram_id) DO UPDATE SET
            first_name = excluded.first_name, last_seen = excluded.last_seen
        """,
        (telegram_id, first_name, ts(now), ts(now)),
    )


async def set_language(target: Source, *, telegram_id: int, lang: str, now: datetime) -> None:
    if lang not in _LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; use one of {', '.join(_LANGUAGES)}")
    await _write(
        target,
        """
        INSERT INTO users (telegram_id, lang, first_seen, last_seen) VALUES (?, ?, ?, ?)
        ON CONFLICT (telegram_id) DO UPDATE SET lang = excluded.lang
        """,
        (telegram_id, lang, ts(now), ts(now)),
    )


async def chat_language(source: Source, chat_id: int, default: str) -> str:
    """The language to write to a chat in: the person's choice for a private chat, `default` for groups."""
    if chat_id < 0:
        return default
    row = await _fetchone(source, "SELECT lang FROM users WHERE telegram_id = ?", (chat_id,))
    lang = row["lang"] if row is not None else None
    return lang if lang in _LANGUAGES else default


async def chat_languages(conn: aiosqlite.Connection, chat_ids: Iterable[int], default: str) -> dict[int, str]:
    """`chat_language` of many chats in one query (a dispatch pass writes to every manager at once)."""
    chats = set(chat_ids)
    rows = await conn.execute_fetchall(
        "SELECT telegram_id, lang FROM users WHERE telegram_id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(c for c in chats if c > 0)),),  # groups (negative ids) take the default
    )
    chosen = {chat: lang for chat, lang in rows if lang in _LANGUAGES}
    return {chat: chosen.get(chat, default) for chat in chats}


# --- chats


async def mark_chat_blocked(conn: aiosqlite.Connection, chat_id: int, *, now: datetime) -> bool:
    """Record that the bot was blocked in (or removed from) a chat; True if it was not marked before."""
    cursor = await conn.execute(
        """
        INSERT INTO chats (chat_id, blocked_at) VALUES (?, ?)
        ON CONFLICT (chat_id) DO UPDATE SET blocked_at = excluded.blocked_at WHERE blocked_at IS NULL
        """,
        (chat_id, ts(now)),
    )
    return cursor.rowcount > 0


async def mark_chat_unblocked(conn: aiosqlite.Connection, chat_id: int) -> bool:
    """The person unblocked the bot (or wrote to it again); True if the chat was marked blocked."""
    cursor = await conn.execute(
        "UPDATE chats SET blocked_at = NULL WHERE chat_id = ? AND blocked_at IS NOT NULL", (chat_id,)
    )
    return cursor.rowcount > 0


async def is_chat_blocked(source: Source, chat_id: int) -> bool:
    row = await _fetchone(source, "SELECT blocked_at FROM chats WHERE chat_id = ?", (chat_id,))
    return row is not None and row["blocked_at"] is not None


async def blocked_chats(conn: aiosqlite.Connection) -> set[int]:
    rows = await conn.execute_fetchall("SELECT chat_id FROM chats WHERE blocked_at IS NOT NULL")
    return {int(row["chat_id"]) for row in rows}


async def record_chat_migration(conn: aiosqlite.Connection, old_chat_id: int, new_chat_id: int) -> None:
    """A group became a supergroup with a new id; messages for the old id go to the new one from now on."""
    await conn.execute(
        """
        INSERT INTO chats (chat_id, migrated_to) VALUES (?, ?)
        ON CONFLICT (chat_id) DO UPDATE SET migrated_to = excluded.migrated_to
        """,
        (old_chat_id, new_chat_id),
    )


async def current_chat_id(source: Source, chat_id: int) -> int:
    """The id a chat has now, after recorded migrations (a migrated group's configured id keeps working)."""
    seen = {chat_id}
    while True:
        row = await _fetchone(source, "SELECT migrated_to FROM chats WHERE chat_id = ?", (chat_id,))
        if row is None or row["migrated_to"] is None or row["migrated_to"] in seen:
            return chat_id
        chat_id = row["migrated_to"]
        seen.add(chat_id)


# --- linking a manager's Telegram id with a one-time code


class LinkError(ValueError):
    """A link code that cannot be created or used; `reason` says why (the handler turns it into a text)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # unknown_manager | unknown_code | expired | used | telegram_taken
        super().__init__(reason)


def normalize_code(text: str) -> str:
    return text.strip().upper()


async def create_link_code(
    conn: aiosqlite.Connection,
    *,
    manager_id: str,
    created_by: int,
    now: datetime,
    ttl: timedelta = LINK_CODE_TTL,
) -> tuple[str, datetime]:
    """A new one-time code linking whoever uses it to `manager_id`; returns the code and its expiry."""
    if await manager_by_id(conn, manager_id) is None:
        raise LinkError("unknown_manager")
    expires_at = now + ttl
    while True:
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        cursor = await conn.execute(
            """
            INSERT OR IGNORE INTO link_codes (code, manager_id, created_by, created_at, expires_at)
            VALUES (?, ?, ?, ?, ?)
            """,
            (code, manager_id, created_by, ts(now), ts(expires_at)),
        )
        if cursor.rowcount > 0:
            return code, expires_at


async def use_link_code(conn: aiosqlite.Connection, *, code: str, telegram_id: int, now: datetime) -> str:
    """Link `telegram_id` to the code's manager and spend the code; returns the manager id."""
    row = await _fetchone(conn, "SELECT * FROM link_codes WHERE code = ?", (normalize_code(code),))
    if row is None:
        raise LinkError("unknown_code")
    if row["used_at"] is not None:
        raise LinkError("used")
    if parse_ts(row["expires_at"]) <= now:
        raise LinkError("expired")
    holder = await manager_by_telegram_id(conn, telegram_id)
    if holder is not None and holder["id"] != row["manager_id"]:
        raise LinkError("telegram_taken")
    await conn.execute(
        "UPDATE managers SET telegram_id = ?, updated_at = ? WHERE id = ?",
        (telegram_id, ts(now), row["manager_id"]),
    )
    await conn.execute(
        "UPDATE link_codes SET used_by = ?, used_at = ? WHERE code = ?", (telegram_id, ts(now), row["code"])
    )
    return str(row["manager_id"])
