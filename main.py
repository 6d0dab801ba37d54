"""Command line of the BikeWerk operations bot: `python main.py run | demo | simulate | migrate | sync |
simulator | check-config | backup | restore` (each with --help). Exit code 0 on success, 2 on bad
configuration or arguments (or a `restore` onto a database in use)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from domain.policy import PolicyError, load_policy
from storage.db import StorageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the bot process (Telegram, scheduler, sync, senders)")
    commands.add_parser("migrate", help="create or upgrade the SQLite database at DATABASE_PATH")
    commands.add_parser("check-config", help="check the configuration and the policy file, then exit")

    sync = commands.add_parser("sync", help="sync orders, events and managers from the BikeWerk API")
    sync.add_argument("--once", action="store_true", help="one full pass, then exit (default: keep syncing)")

    backup = commands.add_parser("backup", help="copy the database to FILE while the bot runs (consistent)")
    backup.add_argument("file", type=Path, help="where the copy goes (replaced if it exists)")
    restore = commands.add_parser(
        "restore", help="replace the database with a backup (the bot must be stopped)"
    )
    restore.add_argument("file", type=Path, help="a copy made by `backup` or the nightly job")
    baseline = commands.add_parser("baseline", help="import the KPI baseline from a CSV or JSON file")
    baseline.add_argument("file", type=Path, help="metric,scope,value rows (CSV) or the same as JSON")

    kpi = commands.add_parser("kpi", help="every circle's KPIs (SPEC §14); reads the database read-only")
    kpi.add_argument(
        "--json", action="store_true", required=True, help="print one JSON object keyed by circle"
    )
    kpi.add_argument("--days", type=_positive_days, default=1.0, help="window length in days (default 1)")
    _add_sanctions_parser(commands)

    simulator = commands.add_parser("simulator", help="serve the BikeWerk API simulator")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8081)
    simulator.add_argument("--seed", type=int, default=1)
    simulator.add_argument("--orders", type=int, default=200, help="orders in the seeded data set")
    simulator.add_argument("--managers", type=int, default=6, help="managers in the seeded data set")

    demo = commands.add_parser("demo", help="the whole system on this machine, with simulated people")
    demo.add_argument("--speed", type=float, default=None, help="simulated seconds per real second")
    demo.add_argument("--days", type=float, default=None, help="simulated working days to run")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="folder for the report and database"
    )
    demo.add_argument(
        "--no-wait", action="store_true", help="exit at the end even in a terminal (the panel goes down)"
    )

    simulate = commands.add_parser(
        "simulate", help="compare 'as today' with the bot's policy, without Telegram"
    )
    simulate.add_argument("--days", type=int, default=14)
    simulate.add_argument("--orders-per-day", type=float, default=40)
    simulate.add_argument("--managers", type=int, default=6)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument(
        "--policy", type=Path, default=None, help="a policy TOML to try instead of POLICY_FILE"
    )
    simulate.add_argument(
        "--out", type=Path, default=Path("simulate-output"), help="folder for the HTML report"
    )
    simulate.add_argument("--start", type=date.fromisoformat, default=None, help="first measured day")
    simulate.add_argument("--warmup-days", type=int, default=7, help="simulated before --start, not measured")
    simulate.add_argument("--capacity", type=int, default=None, help="each manager's capacity")
    simulate.add_argument("--profile", type=Path, default=None, help="TOML: weekday/hour weights, managers")
    simulate.add_argument(
        "--replay", type=Path, default=None, help="a bot database: replay its orders, fit its people and time"
    )
    simulate.add_argument("--seeds", type=int, default=5, help="seeds to run for the ranges (from --seed on)")
    simulate.add_argument(
        "--backtest",
        type=Path,
        default=None,
        help="a bot database: predict its last days from the ones before",
    )
    simulate.add_argument("--holdout-days", type=int, default=14, help="--backtest: days held out")
    simulate.add_argument("--json", action="store_true", help="--backtest: print JSON only")
    return parser


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < days <= 3660:
        raise argparse.ArgumentTypeError("days must be > 0 and at most 3660")
    return days


async def _kpi_json(settings: Settings, days: float) -> int:
    from datetime import UTC, datetime

    from bot.clock import SystemClock
    from bot.services import Services
    from circles.kpi_json import all_kpis, dumps
    from domain.policy import calendar_for
    from storage.readonly import open_readonly

    policy = load_policy(settings.policy_file)
    db = await open_readonly(settings.database_path)
    try:
        services = Services(settings, db, SystemClock(), policy, calendar_for(policy, settings.timezone))
        print(dumps(await all_kpis(services, datetime.now(UTC), days)))
    finally:
        await db.close()
    return EXIT_OK


def _add_sanctions_parser(commands: Any) -> None:
    sanctions = commands.add_parser("sanctions", help="sanctions lists (governance)")
    actions = sanctions.add_subparsers(dest="sanctions_command", required=True, metavar="ACTION")
    load = actions.add_parser(
        "import", help="put a list in OpenSanctions targets.simple.csv format in force; re-screen open orders"
    )
    load.add_argument("file", type=Path, help="targets.simple.csv (id, schema, name, aliases, ...)")


async def _migrate(settings: Settings) -> int:
    from storage.db import Database

    db = await Database.open(settings.database_path)
    await db.close()
    print(f"database {settings.database_path} is up to date")
    return EXIT_OK


async def _import_baseline(settings: Settings, path: Path) -> int:
    from datetime import UTC, datetime

    from circles.sales_ops.kpi import BaselineError, import_baseline
    from storage.db import Database

    db = await Database.open(settings.database_path)
    try:
        stored = await import_baseline(db, path, datetime.now(UTC))
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    finally:
        await db.close()
    print(f"baseline: {stored} values imported from {path}")
    return EXIT_OK


def _backup(settings: Settings, path: Path) -> int:
    from storage.backup import backup_database

    backup_database(settings.database_path, path)
    print(f"backup of {settings.database_path} written to {path}")
    return EXIT_OK


def _restore(settings: Settings, path: Path) -> int:
    from storage.backup import restore_database

    restore_database(path, settings.database_path)
    print(f"database {settings.database_path} restored from {path}")
    return EXIT_OK


def _check_config(settings: Settings) -> int:
    policy = load_policy(settings.policy_file)
    print(f"configuration is valid; policy version {policy.version}")
    if settings.bot_token is None:
        print("BOT_TOKEN is not set: `run` needs it; `demo` runs without it")
    return EXIT_OK


def _run_async(factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(factory())
    except KeyboardInterrupt:
        return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "check-config":
            return _check_config(settings)
        if args.command == "migrate":
            return _run_async(lambda: _migrate(settings))
        if args.command == "kpi":
            return _run_async(lambda: _kpi_json(settings, args.days))
        if args.command == "baseline":
            return _run_async(lambda: _import_baseline(settings, args.file))
        if args.command == "backup":
            return _backup(settings, args.file)
        if args.command == "restore":
            return _restore(settings, args.file)
        if args.command == "sanctions":
            from circles.governance.sanctions import run_import_command

            return _run_async(lambda: run_import_command(settings, args.file))
        if args.command == "run":
            from bot.app import run_bot

            return _run_async(lambda: run_bot(settings))
        if args.command == "sync":
            from bikewerk.sync_command import run_sync_command

            return _run_async(lambda: run_sync_command(settings, once=args.once))
        if args.command == "simulator":
            from testkit.simulator import serve_simulator

            return _run_async(
                lambda: serve_simulator(
                    args.host, args.port, seed=args.seed, orders=args.orders, managers=args.managers
                )
            )
        if args.command == "demo":
            from demo.run import run_demo

            return _run_async(lambda: run_demo(args))
        if args.command == "simulate":
            from demo.simulate import run_simulate

            return run_simulate(args, settings)
    except (ConfigError, PolicyError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
