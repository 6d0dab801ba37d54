"""Every circle's KPIs as one JSON object (SPEC §14; `python main.py kpi --json [--days N]`) and the daily
snapshot of them (kpi_snapshots rows named `<circle>.<kpi>`).

One mapping, `CIRCLE_KPIS`, says where each circle's KPIs come from: circle name → an async function taking a
`KpiContext` (services, the window) and returning a JSON-ready dict with SPEC §14's names."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.services import Services
from circles.governance.kpi import governance_kpis
from circles.quality.kpi import quality_json
from circles.reliability.kpi import reliability_kpis
from circles.revenue.kpi import revenue_kpis
from circles.sales_ops.kpi import digest_instant, local_day, open_orders
from circles.sales_ops.scorecards import scorecards_json
from circles.unit_economics.kpi import unit_economics_json
from domain.kpi import OPEN_IN_ORDER, Window, kpi_report
from storage import kpi as store


@dataclass(frozen=True)
class KpiContext:
    services: Services
    window: Window  # [now − N days, now)

    @property
    def now(self) -> datetime:
        return self.window.end


KpiFunction = Callable[[KpiContext], Awaitable[dict[str, Any]]]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


async def sales_ops_json(ctx: KpiContext) -> dict[str, Any]:
    """SPEC §7 (names as in docs/kpi.md) over the window, plus one scorecard per manager."""
    services, window = ctx.services, ctx.window
    db = services.db
    orders, moves, timed, escalations = await asyncio.gather(
        open_orders(services, window.end),
        store.finished_visits(db, window),
        store.timed_visits(db, window),
        store.resolved_escalations(db, window),
    )
    report = kpi_report(
        at=window.end,
        window=window,
        open_orders=orders,
        moves=moves,
        timed_visits=timed,
        escalations=escalations,
        stuck_hours=services.policy.stuck_hours,
    )
    return {
        "pending_manager_orders": report.pending_manager,
        "open_orders": report.open_orders,
        "stuck_share": _round(report.stuck.value),
        "owner_coverage": None if report.coverage is None else _round(report.coverage.value),
        "breach_rate_critical": _round(report.critical_breach_rate.value),
        "breaches": report.breaches,
        "throughput": _round(report.throughput_total),
        "escalation_completeness": _round(report.completeness.value),
        "time_to_next_status_median": {
            s.value: _round(report.time_to_next[s].median_minutes, 1) for s in OPEN_IN_ORDER
        },
        "time_to_next_status_p90": {
            s.value: _round(report.time_to_next[s].p90_minutes, 1) for s in OPEN_IN_ORDER
        },
        "breach_rate": {s.value: _round(report.breach_rates[s].value) for s in OPEN_IN_ORDER},
        "throughput_per_manager": {m: _round(v) for m, v in report.throughput.items()},
        "scorecards": await scorecards_json(services, window, moves),
    }


async def unit_economics(ctx: KpiContext) -> dict[str, Any]:
    return await unit_economics_json(ctx.services.db, ctx.services.policy, ctx.window)


async def quality(ctx: KpiContext) -> dict[str, Any]:
    return await quality_json(ctx.services.db, ctx.services.policy, ctx.window)


async def revenue(ctx: KpiContext) -> dict[str, Any]:
    return await revenue_kpis(ctx.services.db.reader, (ctx.window.start, ctx.window.end))


async def reliability(ctx: KpiContext) -> dict[str, Any]:
    return await reliability_kpis(ctx.services.db.reader, (ctx.window.start, ctx.window.end))


async def governance(ctx: KpiContext) -> dict[str, Any]:
    return await governance_kpis(ctx.services.db.reader, (ctx.window.start, ctx.window.end))


# circle name -> its KPI function (`async def f(ctx: KpiContext) -> dict`).
CIRCLE_KPIS: dict[str, KpiFunction] = {
    "sales_ops": sales_ops_json,
    "unit_economics": unit_economics,
    "quality": quality,
    "revenue": revenue,
    "reliability": reliability,
    "governance": governance,
}


async def all_kpis(services: Services, now: datetime, days: float = 1.0) -> dict[str, Any]:
    """One object keyed by circle, over the `days` ending at `now`."""
    ctx = KpiContext(services, Window.ending(now, timedelta(days=days)))
    values = [await function(ctx) for function in CIRCLE_KPIS.values()]
    return {
        "at": now.isoformat(),
        "window_days": days,
        **dict(zip(CIRCLE_KPIS, values, strict=True)),
    }


def flatten(
    kpis: dict[str, Any], circles: Sequence[str] = tuple(CIRCLE_KPIS)
) -> dict[tuple[str, str], float]:
    """The numbers of every circle as (metric, scope) rows for kpi_snapshots: `<circle>.<kpi>` with scope ''
    for a number, the key for a mapping of numbers (per status, manager, seller…). Nulls are kept as None."""
    rows: dict[tuple[str, str], Any] = {}
    for circle in circles:
        values = kpis.get(circle)
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            metric = f"{circle}.{name}"
            if value is None or isinstance(value, int | float):
                rows[(metric, "")] = value
            elif isinstance(value, dict):
                for scope, inner in value.items():
                    if inner is None or isinstance(inner, int | float):
                        rows[(metric, str(scope))] = inner
    return rows


SNAPSHOT_MARK = "unit_economics.delivered_orders"  # present once a day's circle rows are stored


async def take_circle_snapshot(services: Services, now: datetime) -> bool:
    """Once a day, at or after the digest time: every circle's KPIs over the 24 h ending now into that day's
    snapshot (`<circle>.<kpi>` rows beside sales_ops' own), so a 90-day trend is a read of a few rows.
    True when stored."""
    day = local_day(now, services)
    if now < digest_instant(day, services) or await store.has_metric(services.db, day, SNAPSHOT_MARK):
        return False
    kpis = await all_kpis(services, now)
    rows = flatten(kpis, [circle for circle in CIRCLE_KPIS if circle != "sales_ops"])
    async with services.db.transaction() as conn:
        await store.add_snapshot_rows(conn, day, rows)
    return True


def dumps(kpis: dict[str, Any]) -> str:
    return json.dumps(kpis, ensure_ascii=False, indent=2, sort_keys=False)
