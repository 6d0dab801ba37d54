"""`main.py simulate`: read the parameters (flags, an optional profile file, an optional CRM history to
replay), run demo.simulation for "as today" and the bot, print the success criteria and write an HTML report.

Bad parameters get one line on stderr and exit code 2; a run prints the exact command that repeats it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings
from demo import report
from demo.backtest import (
    BOUND,
    HEADLINE,
    Backtest,
    HistoryData,
    Spread,
    backtest,
    read_history,
    spread,
    team_of,
)
from demo.calibration import Fitted, fit
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
from storage.db import StorageError

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


def _read_history(path: Path, flag: str) -> HistoryData:
    if not path.is_file():
        raise BadArguments(f"{flag} {path}: no such database file")
    try:
        history = asyncio.run(read_history(str(path)))
    except sqlite3.Error as exc:
        raise BadArguments(f"{flag} {path}: not a bot database ({exc})") from None
    if not history.timelines:
        raise BadArguments(f"{flag} {path}: the database has no orders to replay")
    return history


def _fit_all(history: HistoryData, calendar: WorkingCalendar) -> Fitted | None:
    """People and time fitted to the whole history; None when it has too little to fit (no accepted order)."""
    last = max(
        (at for t in history.timelines for _, at, _ in t.steps), default=history.timelines[-1].created_at
    )
    try:
        until = last + timedelta(microseconds=1)
        return fit(history.timelines, history.managers, history.signals, calendar, until, history.offers)
    except ValueError:
        return None


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
    fitted: Fitted | None = None
    if args.replay is not None:
        records = _read_history(args.replay, "--replay")
        history = sorted(t.created_at for t in records.timelines)
        start = history[-1].astimezone(calendar.tz).date() - timedelta(days=args.days - 1)
        first = datetime.combine(start, datetime.min.time(), tzinfo=calendar.tz)
        rate = max(1.0, sum(1 for at in history if at >= first) / args.days)
        replay = tuple(history)
        fitted = _fit_all(records, calendar)
    team = _team(data["managers"], profile_path) if "managers" in data else None
    if team is None and fitted is not None:
        team = team_of(fitted)
    return SimParams(
        seed=args.seed,
        days=args.days,
        start=start,
        arrivals=arrivals,
        managers=team or default_team(args.managers, rate, args.capacity),
        warmup_days=args.warmup_days,
        replay=replay,
        fitted=fitted,
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
        *([f"manager {m.manager_id}", _manager_model(params, m)] for m in params.managers),
        ["policy", f"version {result.policy_version} ({policy_source})"],
        ["time zone", result.timezone],
    ]
    return report.Table("Parameters", ["parameter", "value"], rows)


def _manager_model(params: SimParams, manager: ManagerProfile) -> str:
    if params.fitted is None:
        return f"{manager.habit}, capacity {manager.capacity}"
    name = next(
        (m.name for m in params.fitted.managers if m.manager_id == manager.manager_id), manager.manager_id
    )
    return (
        f"{name}: fitted to the history (pick-up, stage times); capacity {manager.capacity}; "
        f"ignores, declines and heeds reminders as the '{manager.habit}' habit (no history of the bot)"
    )


def repeat_command(params: SimParams, args: argparse.Namespace) -> str:
    parts = [
        "python main.py simulate",
        f"--days {params.days}",
        f"--orders-per-day {args.orders_per_day:g}",
        f"--managers {args.managers}",
        f"--seed {params.seed}",
        f"--warmup-days {params.warmup_days}",
        f"--seeds {args.seeds}",
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


def seed_runs(
    params: SimParams, seeds: int, policy: Policy, calendar: WorkingCalendar
) -> list[SimulationResult]:
    """The same parameters under the `seeds - 1` seeds after params.seed (the first result is params' own)."""
    return [simulate(replace(params, seed=params.seed + k), policy, calendar) for k in range(1, seeds)]


def _range(metric: str, s: Spread) -> str:
    return f"{_value(metric, s.median)} ({_value(metric, s.low)}–{_value(metric, s.high)})"


def uncertainty_table(results: Sequence[SimulationResult]) -> report.Table:
    """Each criterion's median over the seeds with its 10th–90th percentile range, and whether the two
    policies' ranges overlap (then the seeds alone could swap their order: the difference is not shown)."""
    rows = []
    for rule in kpi.CRITERIA:
        key = (rule.metric, "")
        today = spread([r.outcomes["as_today"].metrics[key] for r in results])
        bot = spread([r.outcomes["bot"].metrics[key] for r in results])
        overlap = "—"
        if None not in (today.low, today.high, bot.low, bot.high):
            assert (
                today.low is not None
                and today.high is not None
                and bot.low is not None
                and bot.high is not None
            )
            overlap = "yes: not told apart" if today.low <= bot.high and bot.low <= today.high else "no"
        rows.append([LABELS[rule.key], _range(rule.metric, today), _range(rule.metric, bot), overlap])
    title = f"Across {len(results)} seeds: median (10th–90th percentile)"
    return report.Table(title, ["criterion", "as today", "bot", "ranges overlap"], rows)


def _progress(name: PolicyName, done: int, total: int) -> None:
    print(f"\rsimulating {POLICY_LABELS[name]:<8} day {done:>3}/{total}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def _fitted_text(params: SimParams, args: argparse.Namespace) -> report.Text | None:
    if args.replay is None:
        return None
    if params.fitted is None:
        return report.Text(
            ["The history has no accepted orders to fit people to: the built-in habits are used."]
        )
    return report.Text(params.fitted.lines())


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """`main.py simulate`: exit 0 with the criteria printed and the report written; 2 on bad arguments."""
    policy_path = args.policy if args.policy is not None else settings.policy_file
    policy: Policy = load_policy(policy_path)  # a PolicyError reaches main(), which exits 2 with its message
    calendar = calendar_for(policy, settings.timezone)
    if args.backtest is not None:
        return run_backtest(args, policy, calendar)
    try:
        if not 1 <= args.seeds <= 100:
            raise BadArguments("--seeds must be between 1 and 100")
        params = build_params(args, calendar)
    except (BadArguments, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    started = time.perf_counter()
    result = simulate(params, policy, calendar, _progress)
    results = [result, *seed_runs(params, args.seeds, policy, calendar)]
    print(f"simulated in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    policy_source = str(policy_path) if policy_path is not None else "built-in default"
    tables = [
        criteria_table(result),
        uncertainty_table(results),
        figures_table(result),
        parameters_table(result, args, policy_source),
    ]
    fitted = _fitted_text(params, args)
    for table in tables:
        print(f"\n{table.title}\n{report.text_table(table.headers, table.rows)}")
    if fitted is not None:
        print("\nFitted to the history (people and time)\n" + "\n".join(fitted.lines))
    command = repeat_command(params, args)
    print(f"\nrepeat with: {command}")
    sections: list[report.Section] = [tables[0], tables[1], *charts(result), tables[2], tables[3]]
    if fitted is not None:
        sections.append(fitted)
    path = report.write(
        args.out / REPORT_NAME,
        "BikeWerk: what the bot's policy would have done to the queues",
        [*sections, report.Text([f"Repeat with: {command}"])],
    )
    print(f"report: {path}")
    return EXIT_OK


# --- the backtest -------------------------------------------------------------------------------------------

BACKTEST_REPORT = "backtest.html"


def _figure(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key in ("critical_breach_rate", "stuck_share"):
        return f"{value:.1%}"
    return f"{value:.2f}" if key == "pending_manager" else _hours(value)


def backtest_table(result: Backtest) -> report.Table:
    rows = []
    for key, actual in result.actual.items():
        s, error = result.predicted[key], result.errors[key]
        mark = "" if key not in HEADLINE else (" ✓" if error is not None and abs(error) <= BOUND else " ✗")
        rows.append(
            [
                key,
                _figure(key, actual),
                f"{_figure(key, s.median)} ({_figure(key, s.low)}–{_figure(key, s.high)})",
                ("—" if error is None else f"{error:+.0%}") + mark,
            ]
        )
    start, days = result.holdout
    title = (
        f"Backtest: the last {days} days from {start.isoformat()} under '{POLICY_LABELS[result.policy]}', "
        f"{len(result.seeds)} seeds (✓ within ±{BOUND:.0%})"
    )
    return report.Table(title, ["figure", "what happened", "predicted (10th–90th pct)", "error"], rows)


def run_backtest(args: argparse.Namespace, policy: Policy, calendar: WorkingCalendar) -> int:
    """`simulate --backtest DATABASE`: exit 0 with the comparison printed (JSON with --json); 2 on bad
    arguments or a history too short for the hold-out."""
    try:
        if not 1 <= args.holdout_days <= 90:
            raise BadArguments("--holdout-days must be between 1 and 90")
        if not 1 <= args.seeds <= 100:
            raise BadArguments("--seeds must be between 1 and 100")
        history = _read_history(args.backtest, "--backtest")
        seeds = tuple(range(args.seed, args.seed + args.seeds))
        try:
            result = backtest(history, policy, calendar, holdout_days=args.holdout_days, seeds=seeds)
        except ValueError as exc:
            raise BadArguments(f"--backtest {args.backtest}: {exc}") from None
    except (BadArguments, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
        return EXIT_OK
    table = backtest_table(result)
    fitted = report.Text(result.fitted.lines())
    print(f"\n{table.title}\n{report.text_table(table.headers, table.rows)}")
    print("\nFitted on the days before the hold-out\n" + "\n".join(fitted.lines))
    verdict = (
        "The headline figures are within the bound: the model reproduces this history's recent past."
        if not result.failures()
        else f"Outside the bound: {', '.join(result.failures())}. Do not trust a prediction of these figures."
    )
    print(f"\n{verdict}")
    path = report.write(
        args.out / BACKTEST_REPORT,
        "BikeWerk: does the simulation reproduce the past?",
        [table, fitted, report.Text([verdict])],
    )
    print(f"report: {path}")
    return EXIT_OK
