"""Sales operations' KPIs for the circles panel and the AI-CEO summary: the owner digest's headline KPIs
with their goal (the release criteria), baseline, yesterday and 14 daily snapshots."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.services import Services
from circles.sales_ops.kpi import TREND_DAYS, kpi_overview, local_day
from domain.circles import CircleKpi, CircleReport
from domain.kpi import Criterion
from keyboards import digest as texts
from storage import kpi as store

_GOAL_SIGN = {"reduce": "≤", "below": "<", "at_least": "≥"}


def _goal(criterion: Criterion | None, kind: texts.Kind) -> tuple[float | None, str | None, bool | None]:
    if criterion is None or criterion.target is None:
        return None, None, None
    sign = _GOAL_SIGN[criterion.rule.kind]
    return criterion.target, f"{sign} {texts.value_text(criterion.target, kind)}", criterion.met


async def report(services: Services, now: datetime) -> CircleReport:
    overview = await kpi_overview(services, now)
    today = local_day(now, services)
    first = today - timedelta(days=TREND_DAYS - 1)
    lines = texts.headline_kpis(overview.report.stuck_hours)
    stored = await store.snapshots(services.db, first, today, metrics=tuple({key[0] for _, key, _ in lines}))
    stored[today] = overview.today
    criteria = {c.rule.metric: c for c in overview.criteria}
    kpis = []
    for label, key, kind in lines:
        series = tuple(stored.get(first + timedelta(days=n), {}).get(key) for n in range(TREND_DAYS))
        goal, goal_text, met = _goal(criteria.get(key[0]) if key[1] == "" else None, kind)
        kpis.append(
            CircleKpi(
                key=":".join(k for k in key if k),
                label=label,
                kind=kind,
                value=overview.today.get(key),
                goal=goal,
                goal_text=goal_text,
                met=met,
                baseline=overview.baseline.values.get(key),
                yesterday=overview.yesterday.get(key),
                series=series,
            )
        )
    return CircleReport("sales_ops", "lead", tuple(kpis))
