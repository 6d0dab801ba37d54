"""The admin panel's pages over a large decision log (target: every page's median under 500 ms).

Fills a fresh SQLite file with signals (a share still open, the rest resolved) and two decisions each, signs
in through a one-time link like a browser would, then times the pages over HTTP: the circles panel with the
AI-CEO summary, the decision log (unfiltered and filtered), one order's history, a signal page and the
retrospective. Prints best and median per page, then PASS or FAIL (exit 1 on FAIL at full size).

    python benchmarks/bench_panel.py [--signals 20000 --open-share 0.1 --repeat 5] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bot.config import load_settings
from bot.services import Services
from domain.policy import Policy, Severity, calendar_for
from domain.signals import Ladder
from storage.db import Database
from storage.signals import NewSignal, insert_decision, insert_signals, update_signal
from testkit.clocks import ManualClock
from web import setup_panel
from web.auth import issue_link

TARGET_MS = 500.0
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ADMIN = 100
TYPES = ("sla.breach", "order.stuck_72h", "order.unassigned", "order.no_progress", "quality.severe_defect")
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


async def fill(db: Database, signals: int, open_share: float, seed: int) -> None:
    rng = random.Random(seed)
    ladder = Ladder.of(Policy.default().signals)
    async with db.transaction() as conn:
        batch = []
        for n in range(signals):
            raised = NOW - timedelta(minutes=rng.randrange(60 * 24 * 90))
            batch.append(
                NewSignal(
                    type=rng.choice(TYPES),
                    severity=rng.choice(SEVERITIES),
                    circle="sales_ops" if n % 5 else "quality",
                    order_id=f"BW-{n % (signals // 3 + 1):06d}",
                    dedup_key=f"bench:{n}",
                    owner_person=ADMIN,
                    escalation_level=1,
                    needs_decision=False,
                    deadline_at=raised + timedelta(hours=2),
                    raised_at=raised,
                    raised_by="system",
                    title=f"bench {n}",
                    details={},
                    ping_chats=(-1001,),
                    ladder=ladder,
                    contacts=None,
                )
            )
        stored = await insert_signals(conn, batch)
        for signal in stored:
            for action in ("escalate", "resolve"):
                await insert_decision(
                    conn,
                    kind="auto" if action == "escalate" else "human",
                    action=action,
                    actor="system" if action == "escalate" else str(ADMIN),
                    reason=f"bench {action}",
                    now=signal.raised_at + timedelta(minutes=30),
                    signal_id=signal.id,
                    order_id=signal.order_id,
                )
            if rng.random() >= open_share:
                await update_signal(
                    conn,
                    signal.id,
                    state="resolved",
                    resolved_at=signal.raised_at + timedelta(hours=1),
                    resolved_by=ADMIN,
                    resolution="done",
                )


async def run(signals: int, open_share: float, repeat: int, seed: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            _env_file=None,
            DATABASE_PATH=str(Path(tmp) / "bench.db"),
            ADMIN_IDS=str(ADMIN),
            TIMEZONE="Europe/Berlin",
            DEFAULT_LANGUAGE="en",
        )
        policy = Policy.default()
        db = await Database.open(settings.database_path)
        services = Services(settings, db, ManualClock(NOW), policy, calendar_for(policy, settings.timezone))
        started = time.perf_counter()
        await fill(db, signals, open_share, seed)
        print(f"filled {signals} signals in {time.perf_counter() - started:.1f} s")
        app = web.Application()
        setup_panel(app, services)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        pages = {
            "circles": "/",
            "log": "/log",
            "log high+order": "/log?severity=high&order=BW-000001",
            "order": "/orders/BW-000001",
            "signal": "/signals/1",
            "retro": "/retro?week=2026-11-16",
        }
        timings: dict[str, list[float]] = {name: [] for name in pages}
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                link = await issue_link(services, ADMIN, NOW, base)
                async with http.get(link) as response:
                    assert response.status == 200, response.status
                for _ in range(repeat):
                    for name, path in pages.items():
                        t0 = time.perf_counter()
                        async with http.get(base + path) as response:
                            await response.read()
                            assert response.status == 200, (path, response.status)
                        timings[name].append((time.perf_counter() - t0) * 1000)
        finally:
            await runner.cleanup()
            await db.close()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=20_000)
    parser.add_argument("--open-share", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="a quick smoke run (500 signals)")
    args = parser.parse_args()
    signals, repeat = (500, 2) if args.small else (args.signals, args.repeat)
    timings = asyncio.run(run(signals, args.open_share, repeat, args.seed))
    worst = 0.0
    for name, values in timings.items():
        median = statistics.median(values)
        worst = max(worst, median)
        print(f"{name:16} best {min(values):7.1f} ms  median {median:7.1f} ms")
    ok = worst < TARGET_MS
    print(f"{'PASS' if ok else 'FAIL'}: slowest page median {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 0 if ok or args.small else 1


if __name__ == "__main__":
    sys.exit(main())
