"""How long `main.py simulate` takes: both policies over N days × orders/day × managers (target: 14 × 40 × 6
in under 10 s), the engine alone and with the report (charts) as the CLI writes it; and `simulate --backtest`
on a history of H days × orders/day made by testkit/history.py (target: 60 × 40 in under 30 s: reading the
database, fitting, and predicting the 14-day hold-out over 5 seeds), with the backtest's errors.

    python benchmarks/bench_simulate.py [--days 14 --orders-per-day 40 --managers 6 --seed 1]
        [--history-days 60 --seeds 5] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import report
from demo.backtest import BOUND, HEADLINE, backtest, read_history
from demo.simulate import charts, criteria_table, figures_table
from demo.simulation import ArrivalProfile, SimParams, default_team, simulate
from domain import kpi
from domain.calendar import WorkingCalendar
from domain.policy import Policy, calendar_for
from testkit.history import generate_history, write_history

TARGET_SECONDS = 10.0
BACKTEST_TARGET_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--orders-per-day", type=float, default=40)
    parser.add_argument("--managers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--history-days", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--small", action="store_true", help="a CI smoke run: 3 days x 10 orders/day x 3 managers"
    )
    args = parser.parse_args()
    if args.small:
        args.days, args.orders_per_day, args.managers = 3, 10, 3
        args.history_days, args.seeds = 21, 2

    policy = Policy.default()
    calendar = calendar_for(policy, "Europe/Berlin")
    params = SimParams(
        seed=args.seed,
        days=args.days,
        start=date(2026, 11, 23),
        arrivals=ArrivalProfile(args.orders_per_day),
        managers=default_team(args.managers, args.orders_per_day),
    )
    started = time.perf_counter()
    result = simulate(params, policy, calendar)
    engine = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        sections: list[report.Section] = [criteria_table(result), *charts(result), figures_table(result)]
        report.write(Path(folder) / "simulate.html", "bench", sections)
    total = time.perf_counter() - started

    orders = result.outcomes["bot"].counts["orders"]
    print(
        f"simulate: {args.days} days (+{params.warmup_days} warm-up) x {args.orders_per_day:g} orders/day x "
        f"{args.managers} managers, seed {args.seed}: {orders} orders, both policies"
    )
    print(f"  engine         {engine:7.2f} s  ({2 * orders / engine:,.0f} orders simulated/s)")
    print(f"  with report    {total:7.2f} s  (target < {TARGET_SECONDS:g} s)")
    for name, outcome in result.outcomes.items():
        values = ", ".join(
            f"{rule.key}={'—' if c.today is None else f'{c.today:.3f}'}"
            for rule, c in zip(kpi.CRITERIA, outcome.criteria, strict=True)
        )
        print(f"  {name:<9} {values}")
    passed = total < TARGET_SECONDS
    passed = bench_backtest(args, policy, calendar) and passed
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def bench_backtest(args: argparse.Namespace, policy: Policy, calendar: WorkingCalendar) -> bool:
    holdout = 14 if args.history_days >= 28 else 7
    history = generate_history(seed=args.seed, days=args.history_days, orders_per_day=args.orders_per_day)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.sqlite"
        asyncio.run(write_history(path, history))
        started = time.perf_counter()
        data = asyncio.run(read_history(str(path)))
        result = backtest(data, policy, calendar, holdout_days=holdout, seeds=range(1, args.seeds + 1))
        took = time.perf_counter() - started
    print(
        f"backtest: {args.history_days} days x {args.orders_per_day:g} orders/day "
        f"({len(history.orders)} orders, {len(history.events)} events), "
        f"{holdout}-day hold-out, {args.seeds} seeds"
    )
    print(f"  read + fit + predict {took:7.2f} s  (target < {BACKTEST_TARGET_SECONDS:g} s)")
    for key in HEADLINE:
        error = result.errors[key]
        print(f"  {key:<24} error {'—' if error is None else f'{error:+.1%}'} (bound ±{BOUND:.0%})")
    return took < BACKTEST_TARGET_SECONDS


if __name__ == "__main__":
    sys.exit(main())
