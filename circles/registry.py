"""The circles the panel and the AI-CEO summary read: circle name -> a function giving its KPIs (value, goal,
baseline, yesterday and a daily series for a sparkline) and its owner role.

sales_ops has its own report (the digest's headline KPIs with goals from the release criteria); every other
circle of `circles.kpi_json.CIRCLE_KPIS` (the `kpi --json` functions) is read generically: its numeric KPIs
over the last 24 h, yesterday's and 14 days of daily snapshots (`<circle>.<kpi>` rows). A circle with a
report of its own (goals, labels) replaces its generic line in `_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.services import Services
from circles.kpi_json import CIRCLE_KPIS, KpiContext
from circles.sales_ops import panel as sales_ops_panel
from circles.sales_ops.kpi import TREND_DAYS, local_day
from domain.circles import CircleKpi, CircleReport, Kind
from domain.kpi import DAY, Window
from storage import kpi as store

CircleSource = Callable[[Services, datetime], Awaitable[CircleReport]]

_SHARE_HINTS = (
    "_pct",
    "_share",
    "_rate",
    "conversion",
    "coverage",
    "realized_vs_booked",
    "accuracy",
    "health",
)


def _kind(name: str) -> Kind:
    if name.endswith("_min"):
        return "time"
    return "share" if any(hint in name for hint in _SHARE_HINTS) else "count"


def _generic(circle: str) -> CircleSource:
    """A circle read through its `kpi --json` function: every number of it, with yesterday and 14 days."""

    async def report(services: Services, now: datetime) -> CircleReport:
        values = await CIRCLE_KPIS[circle](KpiContext(services, Window.ending(now, DAY)))
        names = [
            n
            for n, v in values.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
        ]
        today = local_day(now, services)
        first = today - timedelta(days=TREND_DAYS - 1)
        stored = await store.snapshots(
            services.db, first, today, metrics=tuple(f"{circle}.{n}" for n in names)
        )
        kpis = []
        for name in names:
            key = (f"{circle}.{name}", "")
            series = [stored.get(first + timedelta(days=n), {}).get(key) for n in range(TREND_DAYS - 1)]
            kpis.append(
                CircleKpi(
                    key=name,
                    label=name.replace("_", " "),
                    kind=_kind(name),
                    value=values[name],
                    yesterday=stored.get(today - timedelta(days=1), {}).get(key),
                    series=(*series, values[name]),
                )
            )
        return CircleReport(circle, OWNER_ROLES.get(circle, "owner"), tuple(kpis))

    return report


_SOURCES: dict[str, CircleSource] = {
    "sales_ops": sales_ops_panel.report,
    **{circle: _generic(circle) for circle in CIRCLE_KPIS if circle != "sales_ops"},
}

# SPEC §12: every circle's owner role, also for circles whose KPIs are not in the registry yet.
OWNER_ROLES: dict[str, str] = {
    "sales_ops": "lead",
    "unit_economics": "owner",
    "quality": "lead",
    "revenue": "owner",
    "reliability": "admin",
    "governance": "admin",
    "strategy": "owner",
}


def circle_names() -> list[str]:
    return list(_SOURCES)


async def circle_reports(services: Services, now: datetime) -> list[CircleReport]:
    """Every registered circle's report, in registry order."""
    return [await source(services, now) for source in _SOURCES.values()]
