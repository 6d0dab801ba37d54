"""Backups of the one SQLite file (and the artifacts folder), and restoring one.

`backup_database` copies a live database with SQLite's online backup API: it reads one consistent snapshot
(WAL: the writer carries on meanwhile) and never takes the process lock, so it runs beside `main.py run`.
The copy is written next to its destination and renamed into place, so a half-written backup never has the
final name. `restore_database` takes the process lock first and refuses (AlreadyRunning) while the bot or
another command holds the database. `dated_backup` is the scheduled job's part: a dated folder with the
database and the artifacts, keeping the newest `keep`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from storage.db import ProcessLock, StorageError

BACKUP_PREFIX = "bikewerk-"
DATABASE_NAME = "bot.db"
ARTIFACTS_NAME = "artifacts"


def backup_database(source: Path, destination: Path) -> None:
    """An online, consistent copy of `source` at `destination` (replaced if it exists); checked with
    `PRAGMA integrity_check`. Raises StorageError when the source cannot be read or the copy is damaged."""
    if not source.exists():
        raise StorageError(f"no database at {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)
        check_database(partial)
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot back up {source} to {destination}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def check_database(path: Path) -> None:
    """Raise StorageError unless `path` is an SQLite database that passes `PRAGMA integrity_check`."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        raise StorageError(f"{path} is not a readable SQLite database: {exc}") from exc
    if result != ["ok"]:
        raise StorageError(f"{path} fails the integrity check: {'; '.join(map(str, result[:3]))}")


def restore_database(backup: Path, database: Path) -> None:
    """Replace `database` with the copy at `backup`. Raises AlreadyRunning while the database's process lock
    is held (the bot runs on it), StorageError when the backup is not a sound database."""
    check_database(backup)
    lock = ProcessLock(database)
    lock.acquire()
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(database)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        check_database(database)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot restore {backup} into {database}: {exc}") from exc
    finally:
        lock.release()


def dated_backup(database: Path, artifacts: Path, folder: Path, *, keep: int, now: datetime) -> Path:
    """`folder/bikewerk-YYYYMMDD-HHMMSS/` with `bot.db` and a copy of the artifacts folder; older dated
    copies beyond the newest `keep` are removed. Returns the new copy's folder."""
    target = folder / f"{BACKUP_PREFIX}{now:%Y%m%d-%H%M%S}"
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    backup_database(database, partial / DATABASE_NAME)
    if artifacts.is_dir():
        shutil.copytree(artifacts, partial / ARTIFACTS_NAME)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    copies = sorted(
        p for p in folder.glob(f"{BACKUP_PREFIX}*") if p.is_dir() and not p.name.endswith(".partial")
    )
    for old in copies[: max(len(copies) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return target
