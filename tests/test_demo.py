"""`main.py demo`: a shortened run through the same code path (simulator, emulator, the real bot, simulated
people over HTTP), then the files it leaves: the digest, the report, a database where every order agrees with
itself across the tables."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from demo.run import JobClock, inconsistencies, run_demo
from storage.db import Database
from storage.history import OrderLedger, order_ledgers


async def test_a_short_demo_ends_consistent_with_digest_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-output"
    args = argparse.Namespace(speed=1500.0, days=0.5, seed=3, out=out)
    assert await run_demo(args) == 0
    printed = capsys.readouterr().out

    # The transcript: orders came from the CRM, people talked to the bot, and the run ended with the digest.
    assert "CRM: new order BW-000001" in printed
    assert "wrote: /start" in printed and "bot → " in printed
    digest = printed.split("== the owner's digest ==", 1)[1]
    assert "Morning digest" in digest.split("==", 1)[0]
    assert "== KPIs over the last 24 h ==" in printed
    assert "every order is consistent" in printed
    # It ends with the admin panel's address and a sign-in link, and exits by itself (no terminal here).
    panel = printed.split("== the admin panel ==", 1)[1]
    assert "http://127.0.0.1:" in panel and "/login/" in panel

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Morning digest" in page and "KPIs over the last 24 h" in page
    assert page.count("data:image/png;base64,iVBORw0KGgo") >= 2  # the pipeline chart and the digest's chart

    db = await Database.open(out / "demo.db", exclusive=False)
    try:
        ledgers = await order_ledgers(db)
    finally:
        await db.close()
    created = {line.split()[5] for line in printed.splitlines() if "CRM: new order" in line}
    assert created and created <= {ledger.order_id for ledger in ledgers}  # the bot synced every order
    assert all(ledger.events for ledger in ledgers)
    assert inconsistencies(ledgers) == []


async def test_bad_demo_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for speed, days in ((0.0, 1.0), (540.0, 0.0), (540.0, 99.0)):
        args = argparse.Namespace(speed=speed, days=days, seed=1, out=tmp_path)
        assert await run_demo(args) == 2
        assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "demo.db").exists()


def test_the_consistency_check_names_what_disagrees() -> None:
    good = OrderLedger(
        "A",
        "inspection",
        "m1",
        ["pending_manager", "accepted", "inspection"],
        ["inspection"],
        [("expired", "m2"), ("accepted", "m1")],
    )
    assert inconsistencies([good]) == []
    wrong_event = OrderLedger(
        "B", "inspection", "m1", ["pending_manager", "accepted"], ["inspection"], [("accepted", "m1")]
    )
    two_visits = OrderLedger(
        "C", "delivered", "m1", ["pending_manager", "delivered"], ["in_transit"], [("accepted", "m1")]
    )
    double = OrderLedger(
        "D",
        "accepted",
        "m1",
        ["pending_manager", "accepted"],
        ["accepted"],
        [("accepted", "m1"), ("accepted", "m2")],
    )
    problems = inconsistencies([wrong_event, two_visits, double])
    assert any(p.startswith("B: status inspection but the last event") for p in problems)
    assert any(p.startswith("C: status delivered but open SLA visits") for p in problems)
    assert any(p.startswith("D: 2 accepted") for p in problems)


async def test_jobs_run_on_the_simulated_clock() -> None:
    runs: list[str] = []

    async def job(name: str) -> None:
        runs.append(name)

    scheduler = AsyncIOScheduler(timezone="Europe/Berlin")
    scheduler.add_job(job, IntervalTrigger(minutes=1), args=["minute"], id="minute")
    scheduler.add_job(
        job, CronTrigger(hour=9, minute=0, timezone="Europe/Berlin"), args=["digest"], id="digest"
    )
    start = datetime(2026, 11, 23, 7, 58, tzinfo=UTC)  # 08:58 in Berlin
    clock = JobClock(scheduler.get_jobs(), start)
    for minute in range(4):
        await clock.run_due(start + timedelta(minutes=minute))
    assert runs.count("minute") == 4 and runs.count("digest") == 1
    # A skipped night folds into one run of each job, as APScheduler's coalesce does.
    runs.clear()
    await clock.run_due(start + timedelta(days=1, minutes=5))
    assert runs == ["minute", "digest"]
