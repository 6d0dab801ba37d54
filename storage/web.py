"""The admin panel's sign-in rows: one-time links and sessions (hashes of their secrets only), and the
generated cookie-signing secret kept in kv when the environment gives none."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage.db import Database, parse_ts, ts

SECRET_KEY = "web.secret"


async def stored_secret(db: Database, candidate: str) -> str:
    """The panel's generated secret: `candidate` the first time, the stored one ever after."""
    async with db.transaction() as conn:
        await conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (SECRET_KEY, candidate))
        async with conn.execute("SELECT value FROM kv WHERE key = ?", (SECRET_KEY,)) as cursor:
            row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def insert_link(
    conn: aiosqlite.Connection, token_hash: str, user_id: int, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO web_login_links (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash, user_id, ts(now), ts(expires_at)),
    )


async def use_link(conn: aiosqlite.Connection, token_hash: str, now: datetime) -> int | None:
    """Spend a link: its user id when it exists, is unused and has not expired (then it is used up)."""
    async with conn.execute(
        "SELECT user_id, expires_at, used_at FROM web_login_links WHERE token_hash = ?", (token_hash,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row["used_at"] is not None or parse_ts(row["expires_at"]) <= now:
        return None
    cursor = await conn.execute(
        "UPDATE web_login_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        (ts(now), token_hash),
    )
    return int(row["user_id"]) if cursor.rowcount == 1 else None


async def insert_session(
    conn: aiosqlite.Connection, session_hash: str, user_id: int, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO web_sessions (session_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (session_hash, user_id, ts(now), ts(expires_at)),
    )


async def session_user(db: Database, session_hash: str, now: datetime) -> int | None:
    """The user of a live session (not ended, not expired), else None."""
    row = await db.fetchone(
        "SELECT user_id, expires_at FROM web_sessions WHERE session_hash = ? AND ended_at IS NULL",
        (session_hash,),
    )
    if row is None or parse_ts(row["expires_at"]) <= now:
        return None
    return int(row["user_id"])


async def end_session(conn: aiosqlite.Connection, session_hash: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE web_sessions SET ended_at = ? WHERE session_hash = ? AND ended_at IS NULL",
        (ts(now), session_hash),
    )


async def forget_expired(conn: aiosqlite.Connection, now: datetime) -> None:
    """Drop links and sessions that can no longer be used (kept small; called when a link is made)."""
    await conn.execute("DELETE FROM web_login_links WHERE expires_at <= ?", (ts(now),))
    await conn.execute("DELETE FROM web_sessions WHERE expires_at <= ? OR ended_at IS NOT NULL", (ts(now),))
