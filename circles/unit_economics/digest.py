"""What the AI-CFO adds to the owner's morning digest: net margin over the last 24 h vs yesterday and vs the
baseline days (the same days the sales KPIs' baseline uses: the 14 after install, or before it while those
have not passed), the leaks in EUR, the three largest with their causes, and the 14 days of the chart."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.services import Services
from circles.sales_ops.kpi import BASELINE_DAYS, TREND_DAYS, digest_instant, local_day
from circles.unit_economics.kpi import MoneySection, money_section
from storage import kpi as kpi_store


async def owner_money(services: Services, now: datetime) -> MoneySection:
    today = local_day(now, services)
    days = [today - timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    ends = [(day, digest_instant(day, services)) for day in days[:-1]] + [(today, now)]
    installed = await kpi_store.installed_at(services.db) or now
    install_day = local_day(installed, services)
    after = [install_day + timedelta(days=n) for n in range(1, BASELINE_DAYS + 1)]
    if now < digest_instant(after[-1], services):
        after = [install_day - timedelta(days=n) for n in range(BASELINE_DAYS, 0, -1)]
    baseline = [digest_instant(day, services) for day in after]
    return await money_section(services.db, services.policy, ends, baseline)
