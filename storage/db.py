"""The SQLite database: connection settings, the single-process lock, the migration runner, time encoding."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import hashlib
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# See `bulk_work`: how soon a thread waiting for the interpreter lock gets it while the loop computes, and how
# often the cyclic garbage collector runs (allocations before a young pass, young passes before an older one).
SWITCH_INTERVAL_SECONDS = 0.0005
BULK_GC_THRESHOLDS = (30_000, 20, 100)
# SQLite copies the WAL back into the database file (a checkpoint, with an fsync) inside the COMMIT that
# makes the WAL pass 1,000 pages: a dispatch pass or a sync page paid that on the event loop's path
# (bench_dispatch: 55 of 330 ms). A connection of its own checkpoints instead, in its own thread, at most
# once a second after writes.
CHECKPOINT_DELAY_SECONDS = 1.0


class StorageError(Exception):
    """A problem with the database that stops start-up; the message is meant for the operator."""


class AlreadyRunning(StorageError):
    pass


class MigrationError(StorageError):
    pass


def ts(instant: datetime) -> str:
    """Encode an aware instant as fixed-width UTC text, so that SQL string order is time order."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: every instant in the store is timezone-aware")
    # Always YYYY-MM-DDTHH:MM:SS.ffffffZ; isoformat is about three times as fast as strftime for it.
    text = instant.isoformat(timespec="microseconds")
    if not text.endswith("+00:00"):
        text = instant.astimezone(UTC).isoformat(timespec="microseconds")
    return text[:26] + "Z"


def parse_ts(text: str) -> datetime:
    # fromisoformat reads ts()'s form (the Z makes it UTC-aware) about 40x faster than strptime.
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError(f"stored instant without a time zone: {text!r}")
    return instant


def parse_ts_opt(text: str | None) -> datetime | None:
    return None if text is None else parse_ts(text)


def from_json_rows(columns: int, *more: str) -> str:
    """`SELECT <each element of a row>, <more> FROM json_each(?1)`: rows come as one JSON array of arrays.

    A whole batch is one statement that SQLite runs without coming back to Python: `executemany` binds
    every row from Python, and each bind waits for the interpreter lock, which the event loop's thread holds
    while it works (the sync decoding the next page, a dispatch pass rendering the next batch); one statement
    per batch keeps the two working side by side.
    """
    fields = [f"json_extract(value, '$[{k}]')" for k in range(columns)]
    return f"SELECT {', '.join([*fields, *more])} FROM json_each(?1)"


_bulk_jobs = 0  # bulk jobs running now (`bulk_work`)
_usual_switch_interval = sys.getswitchinterval()
_usual_gc_thresholds = gc.get_threshold()


@contextmanager
def bulk_work() -> Iterator[None]:
    """The interpreter tuned for a bulk job over the store (a dispatch pass, a sync run), for its length only:

    - it computes on the event loop's thread while SQLite works on its own (a dispatch pass picks the next
      batch while the last one is written). SQLite's thread needs the interpreter lock for a moment after
      every statement, and Python hands it over after 5 ms by default, so each statement would leave SQLite
      idle for up to 5 ms; at 0.5 ms the two work side by side (bench_dispatch: 0.46 -> 0.35 s; a first
      sync 11.5 -> 10.5 s). Elsewhere the quicker hand-over costs CPU (the update pipeline: +10 %);
    - it allocates millions of short-lived objects (a page of validated records, rows, tuples) that reference
      counting frees, while the collector's young generations, run every 700 allocations, walk the page
      still in use each time: run rarely, a first sync takes 8.9 s instead of 10.5 (BULK_GC_THRESHOLDS)."""
    global _bulk_jobs, _usual_switch_interval, _usual_gc_thresholds
    if _bulk_jobs == 0:
        _usual_switch_interval, _usual_gc_thresholds = sys.getswitchinterval(), gc.get_threshold()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        gc.set_threshold(*BULK_GC_THRESHOLDS)
    _bulk_jobs += 1
    try:
        yield
    finally:
        _bulk_jobs -= 1
        if _bulk_jobs == 0:
            sys.setswitchinterval(_usual_switch_interval)
            gc.set_threshold(*_usual_gc_thresholds)


class ProcessLock:
    """An advisory lock next to the database file: a second process on the same database refuses to start.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock behind.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(
                f"the database {self.path.with_suffix('')} is already in use by {holder}; "
                "stop it first or point DATABASE_PATH elsewhere"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _migration_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if p.name[:3].isdigit())


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


async def migrate(conn: aiosqlite.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the numbered SQL files not applied yet, in order; refuse if an applied file was edited."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " filename TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    async with conn.execute("SELECT filename, checksum FROM schema_migrations") as cursor:
        applied = {row[0]: row[1] for row in await cursor.fetchall()}
    files = await asyncio.to_thread(_migration_files, directory)
    for name in applied:
        if name not in {p.name for p in files}:
            raise MigrationError(
                f"migration {name} was applied to this database but is missing from {directory}"
            )
    done: list[str] = []
    for path in files:
        sql = await asyncio.to_thread(path.read_text, encoding="utf-8")
        if path.name in applied:
            if applied[path.name] != _checksum(sql):
                raise MigrationError(
                    f"migration {path.name} was edited after it was applied; add a new migration instead"
                )
            continue
        # executescript commits first; the whole file plus its record then go in one transaction.
        await conn.executescript(
            "BEGIN;\n"
            + sql
            + "\nINSERT INTO schema_migrations VALUES ("
            + ", ".join(_sql_literal(v) for v in (path.name, _checksum(sql), ts(datetime.now(UTC))))
            + ");\nCOMMIT;"
        )
        done.append(path.name)
    return done


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _readonly_uri(path: Path) -> str:
    return f"{path.absolute().as_uri()}?mode=ro"


async def open_reader(path: Path) -> aiosqlite.Connection:
    """A read-only connection to the database at `path` (WAL: reads never wait for the writer)."""
    reader = await aiosqlite.connect(_readonly_uri(path), uri=True, isolation_level=None)
    reader.row_factory = aiosqlite.Row
    await reader.execute("PRAGMA busy_timeout=5000")
    await reader.execute("PRAGMA query_only=ON")
    await reader.execute("PRAGMA cache_size=-32768")
    return reader


class Database:
    """The process's database: one writer connection with one transaction at a time, and one read-only
    connection for plain reads.

    aiosqlite runs every statement of a connection on one thread; the write lock keeps two coroutines from
    interleaving statements inside each other's transactions. Plain reads (`fetchall`, `fetchone`, `reader`)
    go to a second connection: in WAL mode each of its statements sees the last committed state, never the
    half-done transaction another coroutine holds open on the writer (which may still roll back).
    """

    def __init__(
        self, path: Path, conn: aiosqlite.Connection, lock: ProcessLock | None, reader: aiosqlite.Connection
    ) -> None:
        self.path = path
        self.conn = conn
        self.reader = reader
        self._process_lock = lock
        self._write_lock = asyncio.Lock()
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path | str, *, exclusive: bool = True, run_migrations: bool = True) -> Database:
        path = Path(path)
        lock = ProcessLock(path) if exclusive else None
        if lock is not None:
            lock.acquire()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            if lock is not None:
                lock.release()
            raise StorageError(f"cannot open the database {path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        db = cls(path, conn, lock, conn)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            # 32 MB of page cache (default 2 MB): a sync page touches index pages all over a large table.
            await conn.execute("PRAGMA cache_size=-32768")
            await conn.execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_DELAY_SECONDS
            if run_migrations:
                await migrate(conn)
            db.reader = await open_reader(path)
            db._checkpointer = await aiosqlite.connect(path, isolation_level=None)
            await db._checkpointer.execute("PRAGMA busy_timeout=5000")
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise StorageError(f"cannot use the database {path}: {exc}") from exc
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        if self._checkpoint is not None:
            self._checkpoint.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpoint
        if self._checkpointer is not None:
            await self._checkpointer.close()
        if self.reader is not self.conn:
            await self.reader.close()
        await self.conn.close()  # the last connection to close checkpoints what is left
        if self._process_lock is not None:
            self._process_lock.release()
            self._process_lock = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One unit of work: everything inside commits together or not at all."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self._rollback()
                raise
            try:
                await self.conn.execute("COMMIT")
            except sqlite3.Error:
                # A failed COMMIT leaves the transaction open: every later BEGIN would fail.
                await self._rollback()
                raise
            self._wrote()

    async def _rollback(self) -> None:
        # SQLite rolls a transaction back by itself after some errors (SQLITE_FULL, SQLITE_IOERR, ...): a
        # second ROLLBACK would fail with "no transaction is active" and hide the error that matters.
        if self.conn.in_transaction:
            await self.conn.execute("ROLLBACK")

    async def write(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One statement as its own unit of work (SQLite commits a lone statement atomically): one round trip
        to the database thread instead of three. Returns the rows changed. For hot paths (every update)."""
        async with self._write_lock:
            cursor = await self.conn.execute(sql, params)
        self._wrote()
        return cursor.rowcount

    def _wrote(self) -> None:
        """Committed writes are in the WAL: checkpoint them soon, unless a checkpoint is already coming."""
        if self._checkpointer is not None and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = asyncio.ensure_future(self._checkpoint_soon(self._checkpointer))

    @staticmethod
    async def _checkpoint_soon(checkpointer: aiosqlite.Connection) -> None:
        await asyncio.sleep(CHECKPOINT_DELAY_SECONDS)  # the writes of the next second share this one
        try:
            # PASSIVE: copies what no reader still needs, never waits for the writer or blocks it.
            await checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # a full disk, say: the WAL keeps everything; the next write retries
            log.warning("db.checkpoint_failed", extra={"fields": {"error": str(exc)}})

    async def fetchall(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> list[aiosqlite.Row]:
        async with self.reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> aiosqlite.Row | None:
        async with self.reader.execute(sql, params) as cursor:
            return await cursor.fetchone()
