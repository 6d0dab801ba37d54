"""Backups while the bot holds the database, and a restore that refuses a database in use."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.backup import backup_database, dated_backup
from storage.db import Database

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def cli(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    env["DATABASE_PATH"] = str(database)
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


async def add_order(db: Database, n: int) -> None:
    stamp = NOW.isoformat()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO orders (id, status, crm_status, created_at, updated_at, status_since)"
            " VALUES (?, 'new', 'new', ?, ?, ?)",
            (f"ORD-{n:05d}", stamp, stamp, stamp),
        )


def orders_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM orders")}


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def test_backup_while_the_database_is_held_and_written_is_consistent(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db")  # holds the process lock, as `run` does
    written = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await add_order(db, written)
            written += 1
            await asyncio.sleep(0)

    try:
        for n in range(200):
            await add_order(db, 100_000 + n)
        task = asyncio.create_task(writer())
        await asyncio.sleep(0.05)
        # In a thread as the scheduled job does it, and by the command line, both mid-write.
        await asyncio.to_thread(backup_database, tmp_path / "bot.db", tmp_path / "during.db")
        done = await asyncio.to_thread(cli, "backup", str(tmp_path / "cli.db"), database=tmp_path / "bot.db")
        stop.set()
        await task
        assert done.returncode == 0, done.stderr
        for copy in ("during.db", "cli.db"):
            assert integrity(tmp_path / copy) == "ok"
            taken = orders_in(tmp_path / copy)
            # A snapshot: every order written before it, in order, and none half-written.
            live = {i for i in range(written) if f"ORD-{i:05d}" in taken}
            assert live == set(range(len(live)))
            assert {f"ORD-{100_000 + n:05d}" for n in range(200)} <= taken
        assert written > 0
        backup_database(tmp_path / "bot.db", tmp_path / "after.db")
        assert orders_in(tmp_path / "after.db") == {
            str(r["id"]) for r in await db.fetchall("SELECT id FROM orders")
        }
    finally:
        stop.set()
        await db.close()


async def test_restore_refuses_a_database_in_use_and_restores_one_that_is_not(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db")
    for n in range(3):
        await add_order(db, n)
    backup_database(tmp_path / "bot.db", tmp_path / "copy.db")
    await add_order(db, 99)  # after the backup: the restore takes it away

    refused = await asyncio.to_thread(cli, "restore", str(tmp_path / "copy.db"), database=tmp_path / "bot.db")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "in use" in refused.stderr
    assert "ORD-00099" in {str(r["id"]) for r in await db.fetchall("SELECT id FROM orders")}
    await db.close()

    restored = await asyncio.to_thread(
        cli, "restore", str(tmp_path / "copy.db"), database=tmp_path / "bot.db"
    )
    assert restored.returncode == 0, restored.stderr
    db = await Database.open(tmp_path / "bot.db")
    try:
        assert {str(r["id"]) for r in await db.fetchall("SELECT id FROM orders")} == {
            "ORD-00000",
            "ORD-00001",
            "ORD-00002",
        }
    finally:
        await db.close()


async def test_dated_backups_keep_the_newest_and_copy_the_artifacts(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db")
    artifacts = tmp_path / "artifacts"
    (artifacts / "ORD-1").mkdir(parents=True)
    (artifacts / "ORD-1" / "photo.jpg").write_bytes(b"jpeg")
    try:
        await add_order(db, 1)
        folders = [
            dated_backup(
                tmp_path / "bot.db", artifacts, tmp_path / "backups", keep=2, now=NOW + timedelta(days=d)
            )
            for d in range(4)
        ]
    finally:
        await db.close()
    kept = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert (
        kept == [folders[2].name, folders[3].name] == ["bikewerk-20261125-090000", "bikewerk-20261126-090000"]
    )
    assert orders_in(folders[3] / "bot.db") == {"ORD-00001"}
    assert (folders[3] / "artifacts" / "ORD-1" / "photo.jpg").read_bytes() == b"jpeg"
