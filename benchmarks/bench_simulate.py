"""How long `main.py simulate` takes: both policies over N days × orders/day × managers (target: 14 × 40 × 6
in under 10 s), the engine alone and with the report (charts) as the CLI writes it.

    python benchmarks/bench_simulate.py [--days 14 --orders-per-day 40 --managers 6 --seed 1] [--small]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import report
from demo.simulate import charts, criteria_table, figures_table
from demo.simulation import ArrivalProfile, SimParams, default_team, simulate
from domain import kpi
from domain.policy import Policy, calendar_for

TARGET_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--orders-per-day", type=float, default=40)
    parser.add_argument("--managers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--small", action="store_true", help="a CI smoke run: 3 days x 10 orders/day x 3 managers"
    )
    args = parser.parse_args()
    if args.small:
        args.days, args.orders_per_day, args.managers = 3, 10, 3

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
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
