"""The circles' minute: after the sync has brought what changed, the AI-CFO books forecasts and checks
deliveries for leaks, the Head of Quality looks for disputes and repeat incidents, and AI-РОМ for managers
slipping; once a day the circles' KPIs join the daily snapshot. One scheduler job (`circles.watch`) calls
`run`."""

from __future__ import annotations

from datetime import datetime

from bot.services import Services
from circles.kpi_json import take_circle_snapshot
from circles.quality import watch as quality
from circles.sales_ops import scorecards
from circles.unit_economics import cfo


async def run(services: Services, now: datetime) -> None:
    await cfo.after_sync(services, now)
    await quality.watch(services, now)
    await scorecards.watch(services, now)
    await take_circle_snapshot(services, now)
