"""Benchmark: one SLA watchdog sweep over a large store (issue 6).

A fresh SQLite file gets 100,000 open orders, 1,000,000 status events and one SLA visit per event (the open
one per order plus the closed history), written directly with executemany. Then:

- "nothing due": a sweep when no visit has anything due (target < 5 ms);
- "1 % breach": a sweep when 1 % of the open visits breach at once: a violation, a signal and a ping each,
  written a few statements per batch of visits (target < 1 s);
- the sweep right after, with nothing left to do.

Prints the best and the median of --repeat runs, and PASS/FAIL on the medians; exits 1 on FAIL.
`--small` runs the same on 2,000 orders and 20,000 events (a CI smoke run: it checks that the sweep works and
prints the figures, but does not fail on them).
Usage: python benchmarks/bench_sla.py [--small] [--orders N] [--events-per-order K] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings
from bot.services import Services
from circles.sales_ops.sla import sweep
from domain.policy import Policy, calendar_for
from domain.statuses import OPEN_STATUSES, STATUS_ORDER
from storage.db import Database, ts
from testkit.clocks import ManualClock

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 4, 14, 0, tzinfo=TZ)  # a Wednesday afternoon: working time
MANAGERS = 60
LEADS_CHAT = -1001
_OPEN = sorted(OPEN_STATUSES, key=STATUS_ORDER.__getitem__)
_BATCH = 50_000
Row = tuple[object, ...]


def _chunks(rows: Sequence[Row], size: int = _BATCH) -> list[Sequence[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def populate(db: Database, orders: int, events_per_order: int, rng: random.Random) -> None:
    """Managers, orders, their status history and SLA visits; no open visit is due at NOW."""
    now = NOW
    conn = db.conn
    await conn.execute("BEGIN")
    await conn.executemany(
        "INSERT INTO managers (id, name, telegram_id, capacity, updated_at) VALUES (?, ?, ?, 2000, ?)",
        [(f"M{m}", f"Manager {m}", 10_000 + m, ts(now)) for m in range(MANAGERS)],
    )
    await conn.executemany(
        "INSERT INTO users (telegram_id, lang, first_seen, last_seen) VALUES (?, 'ru', ?, ?)",
        [(10_000 + m, ts(now), ts(now)) for m in range(MANAGERS)],
    )
    order_rows: list[Row] = []
    event_rows: list[Row] = []
    timer_rows: list[Row] = []
    for n in range(orders):
        order_id = f"BW-{n:07d}"
        status = rng.choice(_OPEN)
        created = now - timedelta(days=rng.uniform(1, 60))
        since = now - timedelta(minutes=rng.uniform(1, 120))
        manager = f"M{rng.randrange(MANAGERS)}"
        order_rows.append(
            (
                order_id,
                status.value,
                status.value,
                ts(created),
                ts(since),
                ts(since),
                "Client",
                "Berlin",
                "Canyon",
                "Spectral",
                2500.0,
                manager,
            )
        )
        # History: events spread between creation and the current status; one closed visit per event.
        steps = sorted(created + (since - created) * rng.random() for _ in range(events_per_order - 1))
        previous: str | None = None
        for at in [*steps, since]:
            to = status.value if at == since else rng.choice(_OPEN).value
            event_rows.append((order_id, previous, to, manager, ts(at)))
            previous = to
        for start, end in zip(steps, [*steps[1:], since], strict=True):
            timer_rows.append(
                (
                    order_id,
                    "accepted",
                    ts(start),
                    "bench-1",
                    240,
                    "working",
                    "medium",
                    ts(start),
                    ts(start),
                    ts(start),
                    ts(end),
                    None,
                )
            )
        reminder = now + timedelta(minutes=rng.uniform(30, 600))
        timer_rows.append(
            (
                order_id,
                status.value,
                ts(since),
                "bench-1",
                240,
                "working",
                "medium",
                ts(reminder),
                ts(reminder + timedelta(minutes=60)),
                ts(since + timedelta(hours=72)),
                None,
                ts(reminder),
            )
        )
    for chunk in _chunks(order_rows):
        await conn.executemany(
            """
            INSERT INTO orders (id, status, crm_status, created_at, updated_at, status_since, client_name,
                                client_city, bike_brand, bike_model, price_eur, assigned_manager_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            chunk,
        )
    for chunk in _chunks(event_rows):
        await conn.executemany(
            "INSERT INTO order_status_events (order_id, from_status, to_status, actor, source, at)"
            " VALUES (?, ?, ?, ?, 'crm', ?)",
            chunk,
        )
    for chunk in _chunks(timer_rows):
        await conn.executemany(
            """
            INSERT INTO sla_timers (order_id, status, entered_at, policy_version, budget_minutes, clock,
                                    severity, reminder_at, breach_at, stuck_at, closed_at, next_due_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            chunk,
        )
    await conn.execute("COMMIT")


async def make_due(db: Database, share: float, rng: random.Random) -> int:
    """Let `share` of the open visits reach their breach (their reminder already went out)."""
    rows = await db.fetchall("SELECT id FROM sla_timers WHERE closed_at IS NULL AND breached_at IS NULL")
    chosen = rng.sample([r["id"] for r in rows], max(1, round(len(rows) * share)))
    breach_at = ts(NOW - timedelta(minutes=1))
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE sla_timers SET reminded_at = ?, breach_at = ?, next_due_at = ?, severity = ?"
            " WHERE id = ?",
            [
                (
                    ts(NOW - timedelta(minutes=20)),
                    breach_at,
                    breach_at,
                    rng.choice(["high", "medium"]),
                    timer_id,
                )
                for timer_id in chosen
            ],
        )
    return len(chosen)


async def timed_sweep(services: Services) -> tuple[float, int]:
    started = time.perf_counter()
    report = await sweep(services, NOW)
    return time.perf_counter() - started, report.breaches


async def run(orders: int, events_per_order: int, repeat: int) -> bool:
    rng = random.Random(6)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        db = await Database.open(path)
        started = time.perf_counter()
        await populate(db, orders, events_per_order, rng)
        built = time.perf_counter() - started
        counts = {
            table: (await db.fetchall(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"]
            for table in ("orders", "order_status_events", "sla_timers")
        }
        print(
            f"store: {counts['orders']:,} open orders, {counts['order_status_events']:,} status events, "
            f"{counts['sla_timers']:,} SLA visits; "
            f"built in {built:.1f} s, {path.stat().st_size / 2**20:.0f} MiB"
        )

        settings = load_settings(
            DATABASE_PATH=str(path),
            LEADS_CHAT_ID=str(LEADS_CHAT),
            LEAD_IDS="800",
            OWNER_ID="900",
            TIMEZONE="Europe/Berlin",
        )
        policy = Policy.default()
        services = Services(settings, db, ManualClock(NOW), policy, calendar_for(policy, settings.timezone))

        idle = [await timed_sweep(services) for _ in range(repeat)]
        assert all(breaches == 0 for _, breaches in idle)
        idle_median = statistics.median(t for t, _ in idle)
        print(
            f"sweep, nothing due:      median {idle_median * 1000:8.1f} ms "
            f"(best {min(t for t, _ in idle) * 1000:.1f} ms, max {max(t for t, _ in idle) * 1000:.1f} ms, "
            f"{repeat} runs; target < 5 ms)"
        )

        busy = []
        for _ in range(repeat):
            due = await make_due(db, 0.01, rng)
            seconds, breaches = await timed_sweep(services)
            assert breaches == due, (breaches, due)
            busy.append(seconds)
        busy_median = statistics.median(busy)
        print(
            f"sweep, 1 % breach:       median {busy_median * 1000:8.1f} ms "
            f"(best {min(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms, {due:,} breaches a run, "
            f"{repeat} runs; target < 1000 ms)"
        )

        after, breaches = await timed_sweep(services)
        assert breaches == 0
        signals = (await db.fetchall("SELECT COUNT(*) AS n FROM ai_signals"))[0]["n"]
        print(f"sweep right after:       {after * 1000:8.1f} ms ({signals:,} signals in the store)")
        await db.close()
    ok = idle_median < 0.005 and busy_median < 1.0
    print(f"{'PASS' if ok else 'FAIL'}: sweep with nothing due < 5 ms, with 1 % breaching < 1 s (medians)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="2,000 orders, 20,000 events (CI smoke run)")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--events-per-order", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    orders = 2_000 if args.small else args.orders
    ok = asyncio.run(run(orders, args.events_per_order, args.repeat))
    return 0 if ok or args.small else 1


if __name__ == "__main__":
    sys.exit(main())
