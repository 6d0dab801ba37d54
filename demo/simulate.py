"""`main.py simulate`: read the parameters (flags, an optional profile file, an optional CRM history to
replay), run demo.simulation for "as today" and the bot, print the success criteria and write an HTML report.

Bad parameters get one line on stderr and exit code 2; a run prints the exact command that repeats it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import sys
import time
import tomllib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings
from demo import report
from demo.simulation import (
    HABITS,
    ArrivalProfile,
    ManagerProfile,
    PolicyName,
    SimParams,
    SimulationResult,
    default_team,
    simulate,
)
from domain import kpi
from domain.calendar import WorkingCalendar
from domain.policy import Policy, calendar_for, load_policy
from storage.db import Database, StorageError
from storage.history import order_arrivals

EXIT_OK = 0
EXIT_BAD_ARGS = 2
DEFAULT_START = date(2026, 11, 23)  # a fixed Monday: a run without --start repeats exactly on any day
REPORT_NAME = "simulate.html"
POLICY_LABELS: dict[PolicyName, str] = {"as_today": "as today", "bot": "bot"}

LABELS: dict[str, str] = {
    "pending_manager": "orders waiting for a manager (pending_manager)",
    "stuck_share": "open orders stuck > 72 h",
    "critical_breach_rate": "SLA breach rate, critical stages",
    "owner_coverage": "owner coverage",
    "escalation_completeness": "escalation completeness",
}
PERCENT_METRICS = frozenset({kpi.STUCK, kpi.CRITICAL_BREACH_RATE, kpi.COVERAGE, kpi.COMPLETENESS})


class BadArguments(ValueError):
    """A parameter the simulation cannot use; the message is the one line the operator sees."""


# --- parameters ---------------------------------------------------------------------------------------------


def _profile(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadArguments(f"profile file {path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadArguments(f"profile file {path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"weekday_weights", "hour_weights", "managers"})
    if unknown:
        raise BadArguments(f"profile file {path}: unknown keys {', '.join(unknown)}")
    return data


def _team(data: object, path: Path) -> tuple[ManagerProfile, ...]:
    if not isinstance(data, list) or not data:
        raise BadArguments(f"profile file {path}: managers must be a non-empty list of [[managers]] tables")
    team = []
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or set(entry) - {"id", "habit", "capacity"}:
            raise BadArguments(f"profile file {path}: manager {index} takes only id, habit and capacity")
        manager_id, habit, capacity = entry.get("id", f"m{index}"), entry.get("habit"), entry.get("capacity")
        if not isinstance(manager_id, str) or not isinstance(habit, str) or type(capacity) is not int:
            raise BadArguments(
                f"profile file {path}: manager {index} needs id (text), habit (one of {', '.join(HABITS)}) "
                "and capacity (a whole number)"
            )
        try:
            team.append(ManagerProfile(manager_id, habit, capacity))
        except ValueError as exc:
            raise BadArguments(f"profile file {path}: {exc}") from None
    return tuple(team)


def _weights(data: dict[str, Any], key: str, default: tuple[float, ...], path: Path) -> tuple[float, ...]:
    value = data.get(key, default)
    if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
        raise BadArguments(f"profile file {path}: {key} must be a list of numbers")
    return tuple(float(v) for v in value)


async def _read_history(path: Path) -> list[datetime]:
    db = await Database.open(path, exclusive=False, run_migrations=False)
    try:
        return await order_arrivals(db)
    except sqlite3.Error as exc:
        raise BadArguments(f"--replay {path}: not a bot database ({exc})") from None
    finally:
        await db.close()


def build_params(args: argparse.Namespace, calendar: WorkingCalendar) -> SimParams:
    """The simulation's parameters from the command line; BadArguments names what is wrong."""
    if not 1 <= args.days <= 366:
        raise BadArguments("--days must be between 1 and 366")
    if not 0 <= args.warmup_days <= 60:
        raise BadArguments("--warmup-days must be between 0 and 60")
    if not (math.isfinite(args.orders_per_day) and 0 < args.orders_per_day <= 5000):
        raise BadArguments("--orders-per-day must be above 0 and at most 5000")
    if not 1 <= args.managers <= 500:
        raise BadArguments("--managers must be between 1 and 500")
    if args.capacity is not None and not 1 <= args.capacity <= 10_000:
        raise BadArguments("--capacity must be between 1 and 10000")
    data = _profile(args.profile) if args.profile is not None else {}
    profile_path = args.profile or Path()
    try:
        arrivals = ArrivalProfile(
            args.orders_per_day,
            _weights(data, "weekday_weights", ArrivalProfile.weekday_weights, profile_path),
            _weights(data, "hour_weights", ArrivalProfile.hour_weights, profile_path),
        )
    except ValueError as exc:
        raise BadArguments(f"profile file {profile_path}: {exc}" if data else str(exc)) from None
    start: date = args.start or DEFAULT_START
    replay: tuple[datetime, ...] = ()
    rate: float = args.orders_per_day
    if args.replay is not None:
        if not args.replay.is_file():
            raise BadArguments(f"--replay {args.replay}: no such database file")
        history = asyncio.run(_read_history(args.replay))
        if not history:
            raise BadArguments(f"--replay {args.replay}: the database has no orders to replay")
        start = history[-1].astimezone(calendar.tz).date() - timedelta(days=args.days - 1)
        first = datetime.combine(start, datetime.min.time(), tzinfo=calendar.tz)
        rate = max(1.0, sum(1 for at in history if at >= first) / args.days)
        replay = tuple(history)
    team = _team(data["managers"], profile_path) if "managers" in data else None
    return SimParams(
        seed=args.seed,
        days=args.days,
        start=start,
        arrivals=arrivals,
        managers=team or default_team(args.managers, rate, args.capacity),
        warmup_days=args.warmup_days,
        replay=replay,
    )


# --- output -------------------------------------------------------------------------------------------------


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if metric in PERCENT_METRICS else f"{value:.2f}"


def _target(rule: kpi.CriterionRule) -> str:
    if rule.kind == "reduce":
        return f"−{rule.amount:.0%} vs as today"
    return f"< {rule.amount:.0%}" if rule.kind == "below" else f"≥ {rule.amount:.0%}"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "NO")


def criteria_table(result: SimulationResult) -> report.Table:
    today, bot = result.outcomes["as_today"], result.outcomes["bot"]
    rows = []
    for mine, theirs in zip(bot.criteria, today.criteria, strict=True):
        rule = mine.rule
        relative = mine.change.relative
        rows.append(
            [
                LABELS[rule.key],
                _target(rule),
                _value(rule.metric, theirs.today),
                _value(rule.metric, mine.today),
                "—" if relative is None else f"{relative:+.0%}",
                "—" if rule.kind == "reduce" else _met(theirs.met),
                _met(mine.met),
            ]
        )
    headers = ["criterion (SPEC §8)", "target", "as today", "bot", "change", "met as today", "met by bot"]
    return report.Table("Success criteria over the measured days", headers, rows)


def _hours(minutes: float | None) -> str:
    return "—" if minutes is None else f"{minutes / 60:.1f} h"


COUNT_LABELS: dict[str, str] = {
    "orders": "orders arrived",
    "accepted": "orders accepted",
    "delivered": "orders delivered",
    "cancelled": "orders cancelled",
    "offers": "order cards sent",
    "misses": "cards expired unanswered",
    "declines": "cards declined",
    "reminders": "reminders at the budget's reminder share",
    "escalated_up": "signals escalated a rung (deadline missed)",
    "complaints": "client complaints chased by a lead",
}


def _count_label(key: str) -> str:
    kind, _, signal = key.partition(":")
    return f"signals {signal}" if kind == "signals" else COUNT_LABELS.get(key, key)


def figures_table(result: SimulationResult) -> report.Table:
    outcomes = [result.outcomes[name] for name in POLICY_LABELS]
    keys = [*COUNT_LABELS, *sorted({k for o in outcomes for k in o.counts if k not in COUNT_LABELS})]
    rows = [
        ["time to accept, median", *(_hours(o.accept.median_minutes) for o in outcomes)],
        ["time to accept, p90", *(_hours(o.accept.p90_minutes) for o in outcomes)],
        ["delivered in the measured days", *(str(sum(d.delivered for d in o.days)) for o in outcomes)],
        *([_count_label(key), *(str(o.counts.get(key, 0)) for o in outcomes)] for key in keys),
    ]
    title = "Other figures (times over the measured days; counts include the warm-up)"
    return report.Table(title, ["figure", *POLICY_LABELS.values()], rows)


def parameters_table(result: SimulationResult, args: argparse.Namespace, policy_source: str) -> report.Table:
    params = result.params
    arrivals = f"{params.arrivals.orders_per_day:g} orders/day, profile {args.profile or 'built-in'}"
    if params.replay:
        arrivals = f"replay of {len(params.replay)} orders from {args.replay}"
    rows = [
        ["seed", str(params.seed)],
        [
            "measured days",
            f"{params.days} from {params.start.isoformat()} (+{params.warmup_days} warm-up days)",
        ],
        ["arrivals", arrivals],
        *([f"manager {m.manager_id}", f"{m.habit}, capacity {m.capacity}"] for m in params.managers),
        ["policy", f"version {result.policy_version} ({policy_source})"],
        ["time zone", result.timezone],
    ]
    return report.Table("Parameters", ["parameter", "value"], rows)


def repeat_command(params: SimParams, args: argparse.Namespace) -> str:
    parts = [
        "python main.py simulate",
        f"--days {params.days}",
        f"--orders-per-day {args.orders_per_day:g}",
        f"--managers {args.managers}",
        f"--seed {params.seed}",
        f"--warmup-days {params.warmup_days}",
    ]
    if not params.replay:
        parts.append(f"--start {params.start.isoformat()}")
    optional = {
        "--capacity": args.capacity,
        "--policy": args.policy,
        "--profile": args.profile,
        "--replay": args.replay,
    }
    for flag, value in optional.items():
        if value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def charts(result: SimulationResult) -> list[report.Chart]:
    labels = [day.day.strftime("%a %d.%m") for day in result.outcomes["bot"].days]
    named = {POLICY_LABELS[name]: outcome for name, outcome in result.outcomes.items()}

    def series(metric: str) -> dict[str, Sequence[float | None]]:
        return {label: [d.metrics[(metric, "")] for d in o.days] for label, o in named.items()}

    breaches = {label: [float(d.breaches) for d in o.days] for label, o in named.items()}
    return [
        report.line_chart(
            "Orders waiting for a manager (mean over working hours)",
            labels,
            series(kpi.PENDING),
            ylabel="orders",
        ),
        report.line_chart("SLA breaches on critical stages per day", labels, breaches, ylabel="breaches"),
        report.line_chart(
            "Open orders stuck > 72 h", labels, series(kpi.STUCK), ylabel="share", percent=True
        ),
    ]


def _progress(name: PolicyName, done: int, total: int) -> None:
    print(f"\rsimulating {POLICY_LABELS[name]:<8} day {done:>3}/{total}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """`main.py simulate`: exit 0 with the criteria printed and the report written; 2 on bad arguments."""
    policy_path = args.policy if args.policy is not None else settings.policy_file
    policy: Policy = load_policy(policy_path)  # a PolicyError reaches main(), which exits 2 with its message
    calendar = calendar_for(policy, settings.timezone)
    try:
        params = build_params(args, calendar)
    except (BadArguments, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    started = time.perf_counter()
    result = simulate(params, policy, calendar, _progress)
    print(f"simulated in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    policy_source = str(policy_path) if policy_path is not None else "built-in default"
    tables = [criteria_table(result), figures_table(result), parameters_table(result, args, policy_source)]
    for table in tables:
        print(f"\n{table.title}\n{report.text_table(table.headers, table.rows)}")
    command = repeat_command(params, args)
    print(f"\nrepeat with: {command}")
    path = report.write(
        args.out / REPORT_NAME,
        "BikeWerk: what the bot's policy would have done to the queues",
        [tables[0], *charts(result), tables[1], tables[2], report.Text([f"Repeat with: {command}"])],
    )
    print(f"report: {path}")
    return EXIT_OK
