"""A read-only view of the database for tools that run beside the bot (`main.py kpi --json`): no process lock,
no migrations, no writes; SQLite's WAL lets it read the last committed state while `run` writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.db import Database, StorageError, open_reader


async def open_readonly(path: Path | str) -> Database:
    """The database at `path`, opened read-only (mode=ro); StorageError when it does not exist or cannot be
    read. Writing through it fails with sqlite3.OperationalError ("attempt to write a readonly database")."""
    path = Path(path)
    if not path.exists():
        raise StorageError(f"the database {path} does not exist; run `python main.py migrate` first")
    try:
        conn = await open_reader(path)
        await conn.execute("SELECT 1 FROM schema_migrations LIMIT 1")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the database {path} read-only: {exc}") from exc
    return Database(path, conn, None, conn)
