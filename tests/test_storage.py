"""The SQLite store: migrations, the single-process lock, transactions and the outgoing message slots."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import TzInfo

from storage import db as db_module
from storage.db import Database, MigrationError, StorageError, bulk_work, migrate, parse_ts, ts
from storage.instants import ts_many
from storage.messages import put_message

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


async def test_migrations_create_every_table_and_are_recorded_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "a.db")
    tables = {row[0] for row in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in (
        "orders",
        "managers",
        "order_status_events",
        "ai_assignments",
        "checklist_answers",
        "artifacts",
        "ai_signals",
        "ai_decisions",
        "ai_sla_violations",
        "sla_timers",
        "postmortems",
        "crm_outbox",
        "sync_cursors",
        "tg_messages",
    ):
        assert table in tables
    applied = [
        row[0] for row in await db.fetchall("SELECT filename FROM schema_migrations ORDER BY filename")
    ]
    assert applied == sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert await migrate(db.conn) == []  # a second run applies nothing
    mode = await db.fetchone("PRAGMA journal_mode")
    assert mode is not None and mode[0] == "wal"
    await db.close()


async def test_an_applied_migration_edited_later_stops_start_up(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", migrations)
    db = await Database.open(tmp_path / "b.db", run_migrations=False)
    await migrate(db.conn, migrations)
    first = sorted(migrations.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(db.conn, migrations)
    await db.close()


async def test_a_second_process_on_the_same_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = await Database.open(path)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "main.py", "migrate"],
        cwd=ROOT,
        env={"DATABASE_PATH": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    await db.close()
    # Once the first process is gone, the database is free again.
    again = await Database.open(path)
    await again.close()


async def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot use the database"):
        await Database.open(path)


async def test_a_failed_unit_of_work_changes_nothing(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "d.db")
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO kv VALUES ('k', 'v')")
            raise RuntimeError("crash in the middle")
    assert await db.fetchone("SELECT * FROM kv") is None
    await db.close()


async def test_a_full_disk_fails_the_unit_of_work_with_its_own_error_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "d.db")
    row = await db.fetchone("PRAGMA page_count")
    assert row is not None
    pages = row[0]
    async with db.transaction() as conn, conn.execute(f"PRAGMA max_page_count = {pages}"):
        pass
    # SQLite rolls this transaction back by itself; the error is the full disk, not a failed second ROLLBACK.
    with pytest.raises(sqlite3.OperationalError, match="full"):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO kv VALUES ('big', zeroblob(100000))")
    async with db.transaction() as conn, conn.execute("PRAGMA max_page_count = 1073741823"):
        pass
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO kv VALUES ('big', zeroblob(100000))")
    assert await db.fetchone("SELECT key FROM kv") is not None
    await db.close()


async def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "d.db")
    async with db.transaction() as conn:
        await conn.execute(
            "CREATE TABLE child (parent TEXT REFERENCES kv(key) DEFERRABLE INITIALLY DEFERRED)"
        )
    # A deferred constraint is checked at COMMIT: the COMMIT fails and SQLite keeps the transaction open.
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO child VALUES ('nobody')")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO kv VALUES ('k', 'v')")
    assert await db.fetchone("SELECT * FROM child") is None
    assert await db.fetchone("SELECT value FROM kv") is not None
    await db.close()


async def test_a_big_commit_leaves_the_checkpoint_to_the_checkpointer_which_does_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_DELAY_SECONDS", 0.0)
    path = tmp_path / "d.db"
    db = await Database.open(path)
    try:
        size = path.stat().st_size
        async with db.transaction() as conn:  # ~6 MB: past the 1,000 WAL pages of SQLite's auto-checkpoint
            await conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                "INSERT INTO kv SELECT 'k' || i, hex(randomblob(1000)) FROM n"
            )
        assert path.stat().st_size == size, "the COMMIT copied the WAL back itself"
        for _ in range(3000):  # up to 30 s: the checkpointer's own thread writes the file
            if path.stat().st_size >= size + 5_000_000:
                break
            await asyncio.sleep(0.01)
        assert path.stat().st_size >= size + 5_000_000, "nothing checkpointed the WAL"
    finally:
        await db.close()


def test_bulk_work_tunes_the_interpreter_only_while_it_runs() -> None:
    usual = (sys.getswitchinterval(), gc.get_threshold())
    with bulk_work():
        with bulk_work():  # a dispatch pass inside a sync run
            assert sys.getswitchinterval() == pytest.approx(db_module.SWITCH_INTERVAL_SECONDS)
        assert gc.get_threshold() == db_module.BULK_GC_THRESHOLDS, "the outer job still runs"
    assert (sys.getswitchinterval(), gc.get_threshold()) == usual


async def test_message_slot_is_sent_once_and_edited_only_when_its_content_changes(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "e.db")
    async with db.transaction() as conn:
        assert await put_message(conn, chat_id=5, ref="order:1:card", body="New order", now=NOW)
        assert not await put_message(conn, chat_id=5, ref="order:1:card", body="New order", now=NOW)
    async with db.transaction() as conn:
        assert await put_message(
            conn, chat_id=5, ref="order:1:card", body="Accepted", now=NOW + timedelta(minutes=1)
        )
    rows = await db.fetchall("SELECT body, version, sent_version FROM tg_messages")
    assert [tuple(r) for r in rows] == [("Accepted", 2, 0)]
    await db.close()


def test_timestamps_sort_as_text_in_time_order() -> None:
    a = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    b = a + timedelta(microseconds=1)
    assert ts(a) < ts(b)
    assert parse_ts(ts(b)) == b
    with pytest.raises(ValueError):
        ts(datetime(2026, 1, 1))  # naive instants are refused


_ZONES = st.sampled_from(
    [UTC, TzInfo(0), TzInfo(3600), TzInfo(-19800), timezone(timedelta(seconds=-7)), ZoneInfo("Europe/Berlin")]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1900, 1, 1), timezones=_ZONES), max_size=20))
def test_many_timestamps_at_once_read_as_each_one_alone(instants: list[datetime]) -> None:
    assert ts_many(instants) == [ts(instant) for instant in instants]
    with pytest.raises(ValueError):
        ts_many([datetime(2026, 1, 1)])


async def test_a_read_never_sees_another_coroutines_open_transaction(tmp_path: Path) -> None:
    """One coroutine writes inside a transaction it later rolls back; another reads meanwhile, through the
    same Database. The reader must see only what was committed: the cursor's old value, never the new one."""
    db = await Database.open(tmp_path / "a.db")
    await db.write("INSERT INTO sync_cursors (name, value, updated_at) VALUES ('orders', 'committed', 'x')")
    written, read_done = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("UPDATE sync_cursors SET value = 'half-done' WHERE name = 'orders'")
                written.set()
                await read_done.wait()
                raise RuntimeError("roll back")

    async def reader() -> list[str]:
        await written.wait()
        seen = [row[0] for row in await db.fetchall("SELECT value FROM sync_cursors WHERE name = 'orders'")]
        row = await db.fetchone("SELECT value FROM sync_cursors WHERE name = 'orders'")
        seen.append(row[0] if row else "")
        read_done.set()
        return seen

    _, seen = await asyncio.gather(writer(), reader())
    assert seen == ["committed", "committed"]
    assert [r[0] for r in await db.fetchall("SELECT value FROM sync_cursors")] == ["committed"]
    await db.close()
