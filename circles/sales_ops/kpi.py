"""KPI use cases: the store's rows fed to the formulas of domain/kpi.py, the daily snapshot (kpi_snapshots),
the rebuilding of missed days from history, and the baseline the success criteria compare with.

A day's snapshot holds the KPIs of the 24 h that end at that day's digest time (settings.digest_time, local),
so "vs yesterday" compares two windows of equal length 24 h apart. The baseline, in order of preference:
imported from a CSV/JSON file (`import_baseline`); the first 14 days after install (kv 'installed_at')
averaged; until those days have passed, the 14 days before install rebuilt from the CRM history in the store.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from bot.logs import log_event
from bot.services import Services
from domain.kpi import (
    BREACHES,
    KNOWN_METRICS,
    PENDING,
    RATIO_METRICS,
    Criterion,
    KpiReport,
    MetricKey,
    Metrics,
    OpenOrder,
    Visit,
    Window,
    average_days,
    kpi_report,
    success_criteria,
)
from domain.sla import plan_visit
from domain.statuses import Status
from storage import kpi as store
from storage.db import Database

log = logging.getLogger(__name__)

BASELINE_DAYS = 14
TREND_DAYS = 14

# live: now, from the orders table (ownership known). rebuilt: a past instant, open orders rebuilt from the
# status events, breaches from the SLA timers. history: before the bot watched SLAs, so breach deadlines are
# planned with the current policy.
Mode = Literal["live", "rebuilt", "history"]


def local_day(instant: datetime, services: Services) -> date:
    return instant.astimezone(services.settings.tz).date()


def digest_instant(day: date, services: Services) -> datetime:
    """The digest time of a local day: where that day's snapshot window ends."""
    return datetime.combine(
        day, time.fromisoformat(services.settings.digest_time), tzinfo=services.settings.tz
    )


def _planned(visit: Visit, services: Services) -> Visit:
    deadlines = plan_visit(visit.status, visit.entered_at, services.policy, services.calendar)
    return Visit(
        visit.order_id,
        visit.status,
        visit.entered_at,
        visit.left_at,
        visit.next_status,
        None if deadlines is None else deadlines.breach_at,
        visit.manager_id,
    )


def _planned_visits(
    moves: Sequence[Visit], open_orders: Sequence[OpenOrder], services: Services
) -> list[Visit]:
    # Without SLA timers the visits come from the events: the ones that ended in the window and the ones still
    # running at its end (they may have breached inside it).
    running = (Visit(o.order_id, o.status, o.status_since) for o in open_orders)
    return [_planned(visit, services) for visit in (*moves, *running)]


def stuck_since(services: Services, now: datetime) -> datetime:
    """Orders without a status change since then are stuck (policy.stuck_hours, 72 h by default)."""
    return now - timedelta(hours=services.policy.stuck_hours)


async def open_orders(services: Services, at: datetime, mode: Mode = "live") -> list[OpenOrder]:
    if mode == "live":
        return await store.open_orders_now(services.db, now=at, stuck_since=stuck_since(services, at))
    return await store.open_orders_at(services.db, at)


async def compute_kpis(services: Services, at: datetime, *, mode: Mode = "live") -> KpiReport:
    """Every KPI over the 24 h ending at `at` (`mode` "live" means `at` is now)."""
    db = services.db
    window = Window.ending(at)
    # Independent reads, gathered: turning one's rows into values overlaps the SQL of the next.
    orders, moves, timed, escalations = await asyncio.gather(
        open_orders(services, at, mode),
        store.finished_visits(db, window),
        store.timed_visits(db, window),
        store.resolved_escalations(db, window),
    )
    if mode == "history":
        timed = _planned_visits(moves, orders, services)
    return kpi_report(
        at=at,
        window=window,
        open_orders=orders,
        moves=moves,
        timed_visits=timed,
        escalations=escalations,
        stuck_hours=services.policy.stuck_hours,
    )


async def mark_installed(db: Database, now: datetime) -> datetime:
    """The install time (set on the first call)."""
    async with db.transaction() as conn:
        await store.mark_installed(conn, now)
    installed = await store.installed_at(db)
    assert installed is not None
    return installed


async def take_daily_snapshot(services: Services, now: datetime) -> KpiReport | None:
    """Store today's KPIs (the 24 h ending now) unless today has a snapshot already; returns the report stored
    (None when the day had one), so a digest built right after need not compute it again."""
    await mark_installed(services.db, now)
    day = local_day(now, services)
    if await store.snapshot_days(services.db, day, day):
        return None
    report = await compute_kpis(services, now)
    async with services.db.transaction() as conn:
        if not await store.write_snapshot(conn, day, report.metrics()):
            return None
    log_event(log, "kpi.snapshot", day=day.isoformat(), pending=report.pending_manager)
    return report


async def backfill_snapshots(services: Services, days: Iterable[date], now: datetime) -> int:
    """Rebuild the snapshots of past `days` that have none (missed runs, or history before install) from the
    store; days whose digest time is still ahead, or before the first status event, are skipped."""
    days = sorted(set(days))
    if not days:
        return 0
    installed = await mark_installed(services.db, now)
    first_event = await store.first_event_at(services.db)
    have = await store.snapshot_days(services.db, days[0], days[-1])
    written = 0
    for day in days:
        at = digest_instant(day, services)
        if day in have or at > now or first_event is None or at <= first_event:
            continue
        report = await compute_kpis(services, at, mode="rebuilt" if at >= installed else "history")
        async with services.db.transaction() as conn:
            written += await store.write_snapshot(conn, day, report.metrics())
    if written:
        log_event(log, "kpi.backfill", days=written)
    return written


def _days_before(day: date, count: int) -> list[date]:
    return [day - timedelta(days=n) for n in range(count, 0, -1)]


async def run_daily(services: Services, now: datetime) -> None:
    """The daily KPI job: today's snapshot, any missed day of the trend window, and the baseline when due."""
    await take_daily_snapshot(services, now)
    await backfill_snapshots(services, _days_before(local_day(now, services), TREND_DAYS), now)
    await ensure_baseline(services, now)


async def ensure_baseline(services: Services, now: datetime) -> store.Baseline:
    """Set the baseline when it is due (see the module docstring); an imported one is never replaced."""
    db = services.db
    current = await store.baseline(db)
    if current.source in ("import", "install"):
        return current
    installed = await mark_installed(db, now)
    install_day = local_day(installed, services)
    after_install = [install_day + timedelta(days=n) for n in range(1, BASELINE_DAYS + 1)]
    if now >= digest_instant(after_install[-1], services):
        return await _set_baseline(services, after_install, "install", now)
    first_event = await store.first_event_at(db)
    # History counts once it holds at least one whole day before install.
    if current.source is None and first_event is not None and first_event < installed - timedelta(days=1):
        before_install = _days_before(install_day, BASELINE_DAYS)
        await backfill_snapshots(services, before_install, now)
        return await _set_baseline(services, before_install, "history", now)
    return current


async def _set_baseline(services: Services, days: list[date], source: str, now: datetime) -> store.Baseline:
    snapshots = await store.snapshots(services.db, days[0], days[-1])
    values = average_days(snapshots.values())
    async with services.db.transaction() as conn:
        await store.replace_baseline(conn, values, source=source, now=now)
    log_event(log, "kpi.baseline", source=source, days=len(snapshots))
    return await store.baseline(services.db)


# --- importing a baseline -----------------------------------------------------------------------------------


_STATUS_NAMES = frozenset(status.value for status in Status)


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message is one line saying what is wrong and where."""


def _value(raw: Any, where: str) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip() in ("", "-", "—")):
        return None
    if isinstance(raw, bool):
        raise BaselineError(f"{where}: expected a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BaselineError(f"{where}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise BaselineError(f"{where}: expected a number >= 0, got {raw!r}")
    return value


def _entry(metric: Any, scope: Any, raw: Any, where: str) -> tuple[MetricKey, float | None]:
    if not isinstance(metric, str) or metric not in KNOWN_METRICS:
        raise BaselineError(f"{where}: unknown metric {metric!r}; known: {', '.join(sorted(KNOWN_METRICS))}")
    scope = "" if scope is None else str(scope).strip()
    kind = KNOWN_METRICS[metric]
    if scope and not kind:
        raise BaselineError(f"{where}: {metric} takes no scope, got {scope!r}")
    if kind == "status" and scope not in _STATUS_NAMES:
        raise BaselineError(f"{where}: {metric} needs a status as its scope, got {scope!r}")
    value = _value(raw, where)
    if value is not None and metric in RATIO_METRICS and value > 1:
        raise BaselineError(f"{where}: {metric} is a share between 0 and 1, got {raw!r}")
    return (metric, scope), value


def parse_baseline(text: str, fmt: Literal["csv", "json"]) -> dict[MetricKey, float | None]:
    """A baseline from CSV (header: metric,value[,scope]) or JSON ({"metric": value}, {"metric": {scope:
    value}} or [{"metric": .., "scope": .., "value": ..}]). Raises BaselineError; ratios are shares (0..1)."""
    entries: list[tuple[MetricKey, float | None]] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"metric", "value"} <= set(reader.fieldnames):
            raise BaselineError(
                "CSV: the first line must name the columns metric,value (and optionally scope)"
            )
        for line, row in enumerate(reader, start=2):
            entries.append(_entry(row["metric"], row.get("scope"), row["value"], f"line {line}"))
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"JSON: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            for metric, value in data.items():
                if isinstance(value, dict):
                    entries += [_entry(metric, scope, v, f"{metric}.{scope}") for scope, v in value.items()]
                else:
                    entries.append(_entry(metric, "", value, metric))
        elif isinstance(data, list):
            for n, item in enumerate(data):
                if not isinstance(item, dict):
                    raise BaselineError(f"item {n}: expected an object with metric and value")
                entries.append(_entry(item.get("metric"), item.get("scope"), item.get("value"), f"item {n}"))
        else:
            raise BaselineError("JSON: expected an object or a list")
    if not entries:
        raise BaselineError("the file holds no baseline values")
    return dict(entries)


async def import_baseline(db: Database, path: Path, now: datetime) -> int:
    """Replace the baseline with the values of a CSV or JSON file; returns how many were stored. A bad file
    raises BaselineError and changes nothing."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise BaselineError(f"{path}: use a .csv or .json file")
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read: {exc}") from None
    try:
        values = parse_baseline(text, "csv" if suffix == ".csv" else "json")
    except BaselineError as exc:
        raise BaselineError(f"{path}: {exc}") from None
    async with db.transaction() as conn:
        await store.replace_baseline(conn, values, source="import", now=now)
    log_event(log, "kpi.baseline", source="import", values=len(values))
    return len(values)


# --- what /kpi and the digests show -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    day: date
    queue: float | None
    breaches: float | None


@dataclass(frozen=True)
class KpiOverview:
    report: KpiReport
    today: dict[MetricKey, float | None]
    yesterday: Metrics
    baseline: store.Baseline
    criteria: list[Criterion]
    manager_names: dict[str, str]


async def kpi_overview(services: Services, now: datetime, report: KpiReport | None = None) -> KpiOverview:
    """The KPIs now (`report`, if computed already), with yesterday's snapshot, the baseline and the success
    criteria."""
    report = report if report is not None else await compute_kpis(services, now)
    today = report.metrics()
    yesterday_day = local_day(now, services) - timedelta(days=1)
    yesterday = (await store.snapshots(services.db, yesterday_day, yesterday_day)).get(yesterday_day, {})
    baseline = await store.baseline(services.db)
    return KpiOverview(
        report=report,
        today=today,
        yesterday=yesterday,
        baseline=baseline,
        criteria=success_criteria(today, baseline.values),
        manager_names=await store.manager_names(services.db),
    )


async def trend(services: Services, overview: KpiOverview, days: int = TREND_DAYS) -> list[TrendPoint]:
    """Queue size and breaches per day over the last `days` days from the snapshots; today's point is the live
    value when today has no snapshot yet."""
    today = local_day(overview.report.at, services)
    first = today - timedelta(days=days - 1)
    stored = await store.snapshots(services.db, first, today, metrics=(PENDING, BREACHES))
    stored.setdefault(today, overview.today)
    points = []
    for n in range(days):
        day = first + timedelta(days=n)
        values = stored.get(day, {})
        points.append(TrendPoint(day, values.get((PENDING, "")), values.get((BREACHES, ""))))
    return points
