"""The owner's morning digest over 90 days of history (target: under 1 s including both charts).

Generates the history straight into a fresh SQLite file with executemany — orders with realistic status
histories (re-entries and cancellations included), their SLA visits, the violations of the breached ones, a
signal per violation and decisions with observed effects — then rebuilds the daily snapshots the running bot
would have taken (28 days: the trend and the install baseline; timed apart, a one-off), and times the digest:
KPIs over the last 24 h, yesterday and the baseline, the success criteria, signals, blockers, the 14-day chart
rendered to PNG and the message slots written, and since the circles (issue 14) the money section (net margin
vs yesterday and baseline, leaks, the top three with causes) with the margin chart. The history also carries
what the circles read: prices, payments (a few under-collected), compensations (8 %, some twice), disputes,
forecasts booked at acceptance. Every circle's KPIs over the last 24 h (`kpi --json`) are timed apart, and
over 90 days once, for the record.

    python benchmarks/bench_digest.py [--orders 100000 --events 1000000 --seed 1] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings
from bot.services import Services
from circles.kpi_json import all_kpis
from circles.sales_ops import charts  # noqa: F401  (imported before timing, as in the running bot)
from circles.sales_ops.digests import send_owner_digest, send_owner_digest_now
from circles.sales_ops.kpi import backfill_snapshots, compute_kpis, ensure_baseline, local_day
from domain.policy import Policy, calendar_for
from domain.statuses import STATUS_ORDER, Status
from storage.db import Database, ts
from testkit.clocks import ManualClock

TARGET_SECONDS = 1.0
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin: digest time
DAYS = 90
OWNER = 200
MANAGERS = 50

P, A, IN, W, R, T, D, C = STATUS_ORDER
# Minutes an order spends in each status (uniform range) and the SLA budget as elapsed minutes (working-time
# budgets stretched by nights and weekends, roughly).
STAY = {P: (2, 60), A: (30, 480), IN: (120, 2880), W: (60, 4320), R: (120, 2880), T: (1440, 14400)}
BUDGET = {P: 45, A: 720, IN: 2880, W: 2880, R: 2880, T: 14400}
SEVERITY = {P: "high", A: "medium", IN: "high", W: "medium", R: "high", T: "medium"}
CANCEL_SHARE = 0.08
_STAYED = {"moved_to": None, "minutes": 60}  # an action's effect: the order did not move


@dataclass
class Rows:
    orders: list[tuple[object, ...]] = field(default_factory=list)
    events: list[tuple[object, ...]] = field(default_factory=list)
    timers: list[tuple[object, ...]] = field(default_factory=list)
    violations: list[tuple[object, ...]] = field(default_factory=list)
    signals: list[tuple[object, ...]] = field(default_factory=list)
    decisions: list[tuple[object, ...]] = field(default_factory=list)


def _route(rng: random.Random, loop_share: float) -> list[Status]:
    """The statuses one order goes through: the chain, inspection <-> client loops, sometimes a cancel."""
    route = [P, A, IN]
    while rng.random() < loop_share:
        route += [W, IN]
    route += [W, R, T, D]
    if rng.random() < CANCEL_SHARE:
        route = [*route[: rng.randint(1, len(route) - 1)], C]
    return route


def generate(orders: int, events: int, seed: int) -> Rows:
    rng = random.Random(seed)
    # The base route has 7 events; loops of 2 make up the rest of the events per order on average. About a
    # tenth of the events never happen (cancelled, or still ahead at NOW): ask for that much more.
    extra_loops = max(events / orders / 0.9 - 7, 0) / 2
    loop_share = extra_loops / (1 + extra_loops)
    start = NOW - timedelta(days=DAYS)
    created = sorted(start + timedelta(seconds=rng.uniform(0, DAYS * 86400)) for _ in range(orders))
    rows = Rows()
    timer_id = 0
    for n, at in enumerate(created):
        order_id = f"o{n:06d}"
        manager = f"m{rng.randrange(MANAGERS):03d}"
        previous: Status | None = None
        status, since = P, at
        for step in _route(rng, loop_share):
            if at > NOW:
                break
            rows.events.append((order_id, previous, step, manager, "crm", ts(at)))
            status, since, previous = step, at, step
            if step in (D, C):
                break
            left = at + timedelta(minutes=rng.uniform(*STAY[step]))
            timer_id += 1
            breach = at + timedelta(minutes=BUDGET[step])
            closed = left if left <= NOW else None
            rows.timers.append(
                (
                    timer_id,
                    order_id,
                    step,
                    ts(at),
                    "bench",
                    BUDGET[step],
                    "calendar",
                    SEVERITY[step],
                    ts(at + (breach - at) * 0.8),
                    ts(breach),
                    ts(at + timedelta(hours=72)),
                    None if closed is None else ts(closed),
                )
            )
            if breach < NOW and (closed is None or closed > breach):
                detected = breach + timedelta(minutes=1)
                signal_id = len(rows.signals) + 1
                rows.violations.append(
                    (
                        timer_id,
                        "budget",
                        order_id,
                        step,
                        "bench",
                        BUDGET[step],
                        ts(at),
                        ts(breach),
                        ts(detected),
                        SEVERITY[step],
                        signal_id,
                    )
                )
                resolved = detected + timedelta(hours=rng.uniform(0.5, 6))
                done = resolved < NOW
                rows.signals.append(
                    (
                        signal_id,
                        "sla.breach",
                        SEVERITY[step],
                        "sales_ops",
                        order_id,
                        f"sla:{timer_id}",
                        "resolved" if done else "open",
                        10_000 + int(manager[1:]),
                        ts(detected + timedelta(hours=2)),
                        ts(detected),
                        "sla",
                        ts(resolved) if done else None,
                        "done" if done and rng.random() < 0.9 else None,
                        ts(detected),
                        "SLA breach",
                    )
                )
                if rng.random() < 0.5:
                    moved = rng.random() < 0.6
                    effect = json.dumps({"moved_to": step.value, "minutes": 20} if moved else _STAYED)
                    rows.decisions.append(
                        (signal_id, order_id, "auto", "remind", "system", "sla", effect, ts(detected))
                    )
            at = left
        owner = None if status is P and rng.random() < 0.5 else manager
        rows.orders.append((order_id, status, status, ts(created[n]), ts(since), ts(since), owner))
    return rows


def write(path: Path, rows: Rows) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO managers (id, name, telegram_id, capacity, updated_at) VALUES (?, ?, ?, 20, ?)",
            [(f"m{n:03d}", f"Manager {n}", 10_000 + n, ts(NOW)) for n in range(MANAGERS)],
        )
        conn.executemany(
            """INSERT INTO orders (id, status, crm_status, created_at, updated_at, status_since,
                                   assigned_manager_id) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            rows.orders,
        )
        conn.executemany(
            "INSERT INTO order_status_events (order_id, from_status, to_status, actor, source, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows.events,
        )
        conn.executemany(
            """INSERT INTO sla_timers (id, order_id, status, entered_at, policy_version, budget_minutes,
                                       clock, severity, reminder_at, breach_at, stuck_at, closed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows.timers,
        )
        conn.executemany(
            """INSERT INTO ai_sla_violations (timer_id, kind, order_id, status, policy_version,
                                              budget_minutes, entered_at, breach_at, detected_at, severity,
                                              signal_id)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows.violations,
        )
        conn.executemany(
            "INSERT INTO ai_signals (id, type, severity, circle, order_id, dedup_key, state, owner_person,"
            " deadline_at, raised_at, raised_by, resolved_at, resolution, last_seen_at, title)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows.signals,
        )
        conn.executemany(
            "INSERT INTO ai_decisions (signal_id, order_id, kind, action, actor, reason, effect, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows.decisions,
        )
        conn.execute(
            "INSERT INTO kv (key, value) VALUES ('installed_at', ?)", (ts(NOW - timedelta(days=30)),)
        )
    conn.execute("ANALYZE")
    conn.close()


def write_money(path: Path, rows: Rows, seed: int) -> None:
    """Prices for every order, a payment for each past pending_manager, and for delivered ones compensations,
    disputes and refunds now and then; forecasts booked on the prices (usual shipping 150)."""
    rng = random.Random(seed + 1)
    prices, payments, compensations, disputes, forecasts = [], [], [], [], []
    for order_id, status, _, created, since, _, _ in rows.orders:
        sale = float(rng.randrange(800, 6000, 10))
        purchase = round(sale * rng.uniform(0.66, 0.84), 2)
        shipping = float(
            rng.choice((49, 79, 119, 149, 149, 310) if rng.random() < 0.1 else (49, 79, 119, 149))
        )
        fees = round(sale * 0.029 + 0.35, 2)
        prices.append((sale, purchase, shipping, fees, f"seller {rng.randrange(3000)}", order_id))
        if status == P:
            continue
        forecasts.append((order_id, since, sale, purchase, fees, sale - purchase - 150 - fees))
        paid = sale if rng.random() > 0.04 else round(sale * 0.9, 2)
        payments.append((order_id, "p1", paid, "payment", created))
        if status != D:
            continue
        if rng.random() < 0.08:
            for n in range(2 if rng.random() < 0.2 else 1):
                compensations.append((order_id, f"c{n}", float(rng.choice((60, 120, 250))), "scratch", since))
        if rng.random() < 0.04:
            disputes.append((order_id, "d1", since))
            payments.append((order_id, "r1", round(sale * 0.2, 2), "refund", since))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "UPDATE orders SET sale_eur = ?, purchase_eur = ?, shipping_eur = ?, fees_eur = ?, seller = ?,"
            " bike_brand = 'Canyon', bike_model = 'Spectral' WHERE id = ?",
            prices,
        )
        conn.executemany("INSERT INTO order_payments VALUES (?, ?, ?, ?, ?)", payments)
        conn.executemany("INSERT INTO order_compensations VALUES (?, ?, ?, ?, ?)", compensations)
        conn.executemany("INSERT INTO order_disputes VALUES (?, ?, ?, NULL, NULL)", disputes)
        conn.executemany("INSERT INTO margin_forecasts VALUES (?, ?, 'accepted', ?, ?, 150, ?, ?)", forecasts)
    conn.execute("ANALYZE")
    conn.close()


def services_for(db: Database, folder: Path) -> Services:
    settings = load_settings(
        _env_file=None,
        DATABASE_PATH=db.path,
        ARTIFACTS_DIR=folder / "artifacts",
        OWNER_ID=OWNER,
        TIMEZONE="Europe/Berlin",
        DIGEST_TIME="09:00",
    )
    policy = Policy.default()
    return Services(settings, db, ManualClock(NOW), policy, calendar_for(policy, settings.timezone))


async def run(args: argparse.Namespace, folder: Path) -> bool:
    path = folder / "digest.db"
    if args.db is not None and args.db.exists():
        shutil.copy(args.db, path)
        print(f"history: reused {args.db}")
    else:
        db = await Database.open(path)  # the schema
        await db.close()
        started = time.perf_counter()
        rows = generate(args.orders, args.events, args.seed)
        write(path, rows)
        write_money(path, rows, args.seed)
        print(
            f"history: {len(rows.orders):,} orders, {len(rows.events):,} events, {len(rows.timers):,} SLA "
            f"visits, {len(rows.violations):,} violations, {len(rows.signals):,} signals, "
            f"{len(rows.decisions):,} decisions over {DAYS} days; generated and written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        if args.db is not None:
            shutil.copy(path, args.db)

    db = await Database.open(path)
    services = services_for(db, folder)
    started = time.perf_counter()
    today = local_day(NOW, services)
    days = [today - timedelta(days=n) for n in range(1, 31)]
    rebuilt = await backfill_snapshots(services, days, NOW)
    baseline = await ensure_baseline(services, NOW)
    print(
        f"setup (one-off): {rebuilt} daily snapshots rebuilt from history and the {baseline.source} baseline "
        f"in {time.perf_counter() - started:.2f} s"
    )

    circle_kpis = []
    for n in range(args.runs):
        started = time.perf_counter()
        every = await all_kpis(services, NOW + timedelta(minutes=n))
        circle_kpis.append(time.perf_counter() - started)
    started = time.perf_counter()
    quarter = await all_kpis(services, NOW, days=DAYS)
    quarter_s = time.perf_counter() - started
    kpis = []
    for n in range(args.runs):
        started = time.perf_counter()
        await compute_kpis(services, NOW + timedelta(minutes=n))
        kpis.append(time.perf_counter() - started)
    started = time.perf_counter()
    (scheduled,) = await send_owner_digest(services, NOW)
    first = time.perf_counter() - started
    on_demand = []
    for n in range(args.runs):
        started = time.perf_counter()
        await send_owner_digest_now(services, OWNER, NOW + timedelta(minutes=n + 1))
        on_demand.append(time.perf_counter() - started)
    await db.close()

    # Judged on the median of every digest run (the scheduled one included): one run on a shared machine can
    # land on a full garbage collection or a busy CPU; the worst run is printed as well.
    runs = [first, *on_demand]
    typical, worst = statistics.median(runs), max(runs)
    print(f"KPIs over the last 24 h alone: median {statistics.median(kpis) * 1000:.0f} ms")
    money = every["unit_economics"]
    typical_kpis, worst_kpis = statistics.median(circle_kpis) * 1000, max(circle_kpis) * 1000
    label = "every circle's KPIs over the last 24 h (kpi --json)"
    print(f"{label}: median {typical_kpis:.0f} ms, max {worst_kpis:.0f} ms")
    print(
        f"  {money['delivered_orders']} delivered, net margin {money['net_margin_eur']} EUR,"
        f" {money['margin_leak_count']} leaks"
    )
    print(
        f"every circle's KPIs over {DAYS} days (kpi --json --days {DAYS}): {quarter_s:.2f} s"
        f" ({quarter['unit_economics']['delivered_orders']} delivered)"
    )
    print(f"morning digest (scheduled: snapshot + digest + chart + slots): {first * 1000:.0f} ms")
    print(
        f"morning digest on demand, {args.runs} runs: median {statistics.median(on_demand) * 1000:.0f} ms, "
        f"max {max(on_demand) * 1000:.0f} ms"
    )
    print(f"chart: {scheduled.chart.stat().st_size / 1024:.0f} KB PNG")
    ok = typical < TARGET_SECONDS
    print(
        f"{'PASS' if ok else 'FAIL'}: median {typical * 1000:.0f} ms (worst {worst * 1000:.0f} ms) "
        f"vs target {TARGET_SECONDS * 1000:.0f} ms"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="reuse the history kept in this file (or keep it there for next time)",
    )
    parser.add_argument("--small", action="store_true", help="a CI smoke run: 5,000 orders, 50,000 events")
    args = parser.parse_args()
    if args.small:
        args.orders, args.events, args.runs = 5_000, 50_000, 2
    with tempfile.TemporaryDirectory() as folder:
        ok = asyncio.run(run(args, Path(folder)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
