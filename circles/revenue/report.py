"""`/funnel [days N]` (the owner and admins): the funnel over the last N days (default 7) in one message,
per channel and per stage, with a chart of each channel's daily lead → order conversion. The text and the
chart go through the sender like the digest (slots `funnel:<at>` and `funnel:<at>:chart`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot.i18n import in_locale
from bot.services import Services
from circles.revenue.charts import ChannelSeries, render_funnel_chart
from circles.revenue.kpi import facts, revenue_kpis
from domain import funnel
from keyboards import circle_views as texts
from storage import revenue as store
from storage.messages import put_message
from storage.people import chat_language

MAX_DAYS = 90


class BadDays(ValueError):
    """`/funnel` arguments that are not `days N` (1..90)."""


def parse_days(args: str | None, default: int = 7) -> int:
    """`""` → default; `"14"` or `"days 14"` → 14; anything else, or outside 1..90, raises BadDays."""
    words = (args or "").split()
    if words and words[0].casefold() in ("days", "дней", "дни"):
        words = words[1:]
    if not words:
        return default
    if len(words) != 1 or not words[0].isdigit() or not 1 <= int(words[0]) <= MAX_DAYS:
        raise BadDays(args)
    return int(words[0])


@dataclass(frozen=True)
class FunnelView:
    days: int
    start: date
    end: date  # the last day included
    kpis: dict[str, Any]
    series: list[ChannelSeries]


async def funnel_view(services: Services, days: int, now: datetime) -> FunnelView:
    tz = services.settings.tz
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=tz)
    kpis = await revenue_kpis(services.db.reader, (start, now))
    leads = facts(await store.leads_created(services.db.reader, start, now))
    dates = [first + timedelta(days=k) for k in range(days)]
    series = []
    for channel in funnel.by_channel(leads):
        daily = funnel.daily_rates(leads, tz, "conversion", channel=channel)
        series.append(ChannelSeries(channel, [daily[d].value if d in daily else None for d in dates]))
    return FunnelView(days, first, today, kpis, series)


async def send_funnel(services: Services, chat_id: int, days: int, now: datetime) -> Path:
    view = await funnel_view(services, days, now)
    lang = await chat_language(services.db, chat_id, services.settings.default_language)
    with in_locale(lang):
        text, labels, caption = texts.funnel_text(view.kpis, view.days), texts.funnel_chart_labels(), ""
        caption = texts.funnel_chart_caption(view.start, view.end)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    path = services.settings.artifacts_dir / "charts" / f"funnel-{chat_id}-{stamp}-{lang}.png"
    dates = [view.start + timedelta(days=k) for k in range(view.days)]
    await asyncio.to_thread(render_funnel_chart, dates, view.series, labels, path)
    ref = f"funnel:{stamp}"
    async with services.db.transaction() as conn:
        await put_message(conn, chat_id=chat_id, ref=ref, body=text, now=now)
        await put_message(
            conn,
            chat_id=chat_id,
            ref=f"{ref}:chart",
            body=caption,
            kind="photo",
            file_path=str(path),
            now=now,
        )
    services.wake_sender()
    return path
