"""The revenue circle's watch (AI-CRO, AI-Traffic): each channel's daily lead → order conversion and each
funnel stage's daily drop-off against its normal band, learned from the last weeks (policy `[revenue]`):
the rate of the last band_weeks weeks pooled, ± band_sigmas binomial standard deviations for the day's
number of people at the stage's start (at least ± band_min_width). Days with fewer than min_leads at the
stage's start are neither judged nor learned from.

`watch_funnel(services, now)` judges yesterday (local time; the day's leads have had the night to move) and
tells the owner when a rate left its band on the bad side (a conversion below it, a drop-off above it):
`revenue.channel_conversion` (per channel) or `revenue.stage_drop_off` (per stage), with the value, the
band, by how much and since when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from backbone.signals import raise_signal
from bot.logs import log_event
from bot.services import Services
from circles.revenue.kpi import facts
from domain import funnel
from storage import revenue as store

log = logging.getLogger(__name__)


@dataclass
class FunnelWatch:
    day: str
    excursions: list[tuple[str, str, funnel.Excursion]] = field(default_factory=list)  # (type, subject, ...)


async def watch_funnel(services: Services, now: datetime) -> FunnelWatch:
    policy = services.policy.revenue
    tz = services.settings.tz
    day = (now.astimezone(tz) - timedelta(days=1)).date()
    history = policy.band_weeks * 7
    start = datetime.combine(day - timedelta(days=history), time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    leads = facts(await store.leads_created(services.db.reader, start, end))

    def judge(series: dict[date, funnel.Daily], bad: Literal["below", "above"]) -> funnel.Excursion | None:
        return funnel.judge(
            series,
            day,
            bad=bad,
            history_days=history,
            sigmas=policy.band_sigmas,
            min_width=policy.band_min_width,
            min_days=policy.band_min_days,
            min_leads=policy.min_leads,
        )

    watch = FunnelWatch(day.isoformat())
    for channel in funnel.by_channel(leads):
        series = funnel.daily_rates(leads, tz, "conversion", channel=channel)
        found = judge(series, "below")
        if found is not None:
            watch.excursions.append(("revenue.channel_conversion", channel, found))
    for stage in funnel.STAGES:
        series = funnel.daily_rates(leads, tz, stage)
        found = judge(series, "above")
        if found is not None:
            watch.excursions.append(("revenue.stage_drop_off", stage, found))
    if not watch.excursions:
        return watch
    owner = services.settings.owner_id
    async with services.db.transaction() as conn:
        for kind, subject, found in watch.excursions:
            await raise_signal(
                conn,
                type=kind,
                dedup_key=f"{kind}:{subject}",
                now=now,
                details={
                    "channel" if kind == "revenue.channel_conversion" else "stage": subject,
                    "day": found.day.isoformat(),
                    "value": found.value,
                    "band": f"{found.band.low:.3f}–{found.band.high:.3f}",
                    "mean": found.band.mean,
                    "by": found.by,
                    "since": found.since.isoformat(),
                    "base": found.base,
                    "learned_from_days": found.band.days,
                },
                raised_by="revenue",
                owner_person=owner,
                settings=services.settings,
                notify=[owner] if owner is not None else [],
            )
    services.wake_sender()
    log_event(log, "revenue.out_of_band", day=watch.day, excursions=len(watch.excursions))
    return watch
