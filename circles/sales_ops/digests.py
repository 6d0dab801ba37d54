"""The digests (SPEC §8): the owner's morning digest (KPIs vs yesterday and baseline, success criteria, open
critical/high signals, top blockers, and the 14-day chart as a photo), the leads' daily operations digest, the
weekly retrospective, and the detail messages behind their buttons.

Digests go out through the message slots (storage.messages.put_message), so the sender paces them; a scheduled
digest goes to each chat once per day (once per week for the retrospective): its ref names the day, and a slot
that exists already is not written again, also after a restart or a repeated job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import aiosqlite
from aiogram.types import InlineKeyboardMarkup

from backbone.signals import Routing
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from circles.digest_sections import circle_news
from circles.sales_ops.charts import prune_charts, render_trend_chart
from circles.sales_ops.kpi import (
    KpiOverview,
    KpiReport,
    kpi_overview,
    local_day,
    open_orders,
    stuck_since,
    take_daily_snapshot,
    trend,
)
from circles.sales_ops.scorecards import leads_rom
from circles.unit_economics.charts import render_margin_chart
from circles.unit_economics.digest import owner_money
from domain.dispatch import ManagerSnapshot, score
from domain.kpi import Queue, Window, queues, retro_helped, retrospective
from domain.statuses import Status
from keyboards import circle_views
from keyboards import circles as money_texts
from keyboards import digest as texts
from storage import kpi as store
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)

DIGEST_LINES = 3  # signals and blockers in a digest; the rest behind a button
DETAIL_LINES = 30  # lines in a detail message
_OWNER_SEVERITIES = ("critical", "high")
_LIVE = ("open", "acknowledged")

Rendered = tuple[str, InlineKeyboardMarkup | None]


def owner_chats(services: Services) -> list[int]:
    """The owner's private chat; without an owner configured, the admins."""
    settings = services.settings
    return (
        [settings.owner_id]
        if settings.owner_id is not None
        else Routing.from_settings(settings).contacts.admins()
    )


def leads_chats(services: Services) -> list[int]:
    return Routing.from_settings(services.settings).contacts.leads()


def _markup(keyboard: InlineKeyboardMarkup | None) -> dict[str, object] | None:
    return keyboard.model_dump(exclude_none=True) if keyboard is not None else None


async def _lang(conn: aiosqlite.Connection, services: Services, chat_id: int) -> str:
    return await chat_language(conn, chat_id, services.settings.default_language)


async def _put_text(
    conn: aiosqlite.Connection,
    services: Services,
    chat_id: int,
    ref: str,
    now: datetime,
    render: Callable[[], Rendered],
) -> None:
    """Write a text rendered in the chat's language into its slot."""
    with in_locale(await _lang(conn, services, chat_id)):
        text, keyboard = render()
    await put_message(conn, chat_id=chat_id, ref=ref, body=text, markup=_markup(keyboard), now=now)


async def _without_slot(services: Services, chats: list[int], ref: str) -> list[int]:
    """The chats that have no message `ref` yet: a once-per-period digest skips the others."""
    return [chat for chat in chats if not await store.message_queued(services.db, chat, ref)]


async def _put_texts(
    services: Services, chats: list[int], ref: str, now: datetime, render: Callable[[], Rendered]
) -> None:
    """The same text, each in its chat's language, into every chat's slot `ref`; then wake the sender."""
    async with services.db.transaction() as conn:
        for chat in chats:
            await _put_text(conn, services, chat, ref, now, render)
    services.wake_sender()


async def open_queues(services: Services, now: datetime) -> dict[Status, Queue]:
    return queues(await open_orders(services, now), now, services.policy.stuck_hours)


def _stalled(by_status: dict[Status, Queue]) -> int:
    return sum(queue.stalled for queue in by_status.values())


# --- the owner's morning digest ---------------------------------------------------------------------------


async def owner_digest_view(
    services: Services, now: datetime, report: KpiReport | None = None
) -> texts.OwnerDigestView:
    db = services.db
    overview = await kpi_overview(services, now, report)
    signals, signals_total = await store.live_signals(
        db, severities=_OWNER_SEVERITIES, states=_LIVE, limit=DIGEST_LINES
    )
    return texts.OwnerDigestView(
        overview=overview,
        signals=signals,
        signals_total=signals_total,
        blockers=await store.blockers(
            db, now=now, stuck_since=stuck_since(services, now), limit=DIGEST_LINES
        ),
        blockers_total=_stalled(overview.report.queues),
        tz=services.settings.tz,
    )


@dataclass(frozen=True)
class DigestSent:
    chat_id: int
    ref: str
    chart: Path


async def _send_owner_digest(
    services: Services,
    chats: list[int],
    now: datetime,
    ref: str,
    *,
    once: bool,
    report: KpiReport | None = None,
) -> list[DigestSent]:
    """The digest text and its chart into each chat's slots `ref` and `ref:chart`; with `once`, chats that
    have the slot already are skipped."""
    db = services.db
    if once:
        chats = await _without_slot(services, chats, ref)
    if not chats:
        return []
    view = await owner_digest_view(services, now, report)
    news = await circle_news(services, now)
    points = await trend(services, view.overview)
    money = await owner_money(services, now)
    day = local_day(now, services)
    charts_dir = services.settings.artifacts_dir / "charts"
    sent = []
    for chat in chats:
        lang = await chat_language(db, chat, services.settings.default_language)
        with in_locale(lang):
            text, keyboard = texts.owner_digest_text(view), texts.owner_digest_keyboard()
            text += "\n\n" + "\n".join(
                money_texts.money_section(money.today, money.yesterday, money.baseline_per_day, money.leaks)
            )
            text += circle_views.circle_news_text(news)  # governance, reliability, revenue (issue 15)
            labels, caption = texts.chart_labels(), texts.chart_caption(day)
            margin_title = money_texts.margin_chart_title()
        name = ref.replace(":", "-") + f"-{lang}.png"
        # The renders take a fifth of a second of CPU each: off the event loop, so updates keep flowing.
        path, margin_path = await asyncio.gather(
            asyncio.to_thread(render_trend_chart, points, labels, charts_dir / name),
            asyncio.to_thread(render_margin_chart, money.days, margin_title, charts_dir / f"margin-{name}"),
        )
        await asyncio.to_thread(prune_charts, charts_dir)
        async with db.transaction() as conn:
            if once and await store.message_queued(conn, chat, ref):
                continue  # another run got here first
            await put_message(conn, chat_id=chat, ref=ref, body=text, markup=_markup(keyboard), now=now)
            await put_message(
                conn,
                chat_id=chat,
                ref=f"{ref}:chart",
                body=caption,
                kind="photo",
                file_path=str(path),
                now=now,
            )
            await put_message(
                conn,
                chat_id=chat,
                ref=f"{ref}:margin",
                body=margin_title,
                kind="photo",
                file_path=str(margin_path),
                now=now,
            )
        sent.append(DigestSent(chat, ref, path))
    services.wake_sender()
    log_event(log, "digest.owner", chats=[s.chat_id for s in sent], ref=ref)
    return sent


async def send_owner_digest(services: Services, now: datetime) -> list[DigestSent]:
    """The scheduled morning digest: today's KPI snapshot first, then the digest, once per day per chat."""
    report = await take_daily_snapshot(services, now)
    ref = f"digest:owner:{local_day(now, services).isoformat()}"
    return await _send_owner_digest(services, owner_chats(services), now, ref, once=True, report=report)


async def send_owner_digest_now(services: Services, chat_id: int, now: datetime) -> DigestSent:
    """/digest: the same digest on demand into `chat_id` (a new message each minute it is asked for)."""
    minute = now.astimezone(services.settings.tz).strftime("%Y-%m-%dT%H%M")
    sent = await _send_owner_digest(services, [chat_id], now, f"digest:now:{minute}", once=False)
    return sent[0]


# --- the leads' operations digest -------------------------------------------------------------------------


async def manager_load_lines(services: Services, *, overloaded_only: bool) -> list[texts.LoadLine]:
    """Active managers with their load; `overloaded_only`: at capacity, or weighted load of 100 % or more."""
    loads = [m for m in await store.manager_loads(services.db) if m.active]
    snapshots = [
        ManagerSnapshot(m.manager_id, m.active, m.on_leave, m.capacity, True, m.open_orders_by_status, None)
        for m in loads
    ]
    lines = []
    for load, candidate in zip(loads, score(snapshots, services.policy.load_weights), strict=True):
        if overloaded_only and candidate.open_orders < candidate.capacity and candidate.load < 1:
            continue
        lines.append(texts.LoadLine(load.name, candidate.open_orders, candidate.capacity, candidate.load))
    lines.sort(key=lambda line: (-line.load, line.name))
    return lines


async def leads_digest_view(services: Services, now: datetime) -> texts.LeadsDigestView:
    db = services.db
    by_status = await open_queues(services, now)
    unacked, unacked_total = await store.live_signals(
        db, severities=("critical", "high", "medium", "low"), states=("open",), limit=DIGEST_LINES + 2
    )
    return texts.LeadsDigestView(
        at=now,
        queues=by_status,
        blockers=await store.blockers(
            db, now=now, stuck_since=stuck_since(services, now), limit=DIGEST_LINES + 2
        ),
        blockers_total=_stalled(by_status),
        overloaded=await manager_load_lines(services, overloaded_only=True),
        unacknowledged=unacked,
        unacknowledged_total=unacked_total,
        tz=services.settings.tz,
    )


async def send_leads_digest(services: Services, now: datetime) -> list[int]:
    """The daily operations digest to the leads chat, once per day; returns the chats written to."""
    ref = f"digest:leads:{local_day(now, services).isoformat()}"
    chats = await _without_slot(services, leads_chats(services), ref)
    if not chats:
        return []
    view = await leads_digest_view(services, now)
    outliers, reasons = await leads_rom(services, now)
    news = await circle_news(services, now)

    def render() -> Rendered:
        rom = ["", *money_texts.outlier_lines(outliers), *money_texts.failure_reason_lines(reasons)]
        text = texts.leads_digest_text(view) + "\n".join(rom) + circle_views.circle_news_text(news)
        return text, texts.leads_digest_keyboard()

    await _put_texts(services, chats, ref, now, render)
    log_event(log, "digest.leads", chats=chats, ref=ref)
    return chats


# --- the weekly retrospective -----------------------------------------------------------------------------


def retro_window(services: Services, week_start: date) -> Window:
    tz = services.settings.tz
    start = datetime.combine(week_start, datetime.min.time(), tzinfo=tz)
    return Window(start, datetime.combine(week_start + timedelta(days=7), datetime.min.time(), tzinfo=tz))


def last_week(services: Services, now: datetime) -> date:
    """The Monday of the last complete local week before `now`."""
    today = local_day(now, services)
    return today - timedelta(days=today.weekday() + 7)


async def retro_view(services: Services, week_start: date) -> texts.RetroView:
    window = retro_window(services, week_start)
    groups = retrospective(await store.week_signals(services.db, window))
    return texts.RetroView(window, groups, retro_helped(groups), services.settings.tz)


async def send_weekly_retro(services: Services, now: datetime) -> list[int]:
    """Last week's retrospective to the owner, once per week; returns the chats written to."""
    week = last_week(services, now)
    ref = f"digest:retro:{week.isoformat()}"
    chats = await _without_slot(services, owner_chats(services), ref)
    if not chats:
        return []
    view = await retro_view(services, week)
    await _put_texts(services, chats, ref, now, lambda: (texts.retro_text(view), texts.retro_keyboard(view)))
    log_event(log, "digest.retro", chats=chats, week=week.isoformat())
    return chats


# --- details behind the buttons ---------------------------------------------------------------------------


class UnknownSection(ValueError):
    """A detail button whose section or week does not parse (forged or outdated callback data)."""


def parse_week(code: str | None) -> date:
    try:
        return datetime.strptime(code or "", "%Y%m%d").date()
    except ValueError:
        raise UnknownSection(f"bad week {code!r}") from None


async def _details(
    services: Services, section: str, week: str | None, now: datetime
) -> Callable[[], Rendered]:
    """What a detail button shows: the data is read now, the text rendered later in the chat's language."""
    db, tz = services.db, services.settings.tz
    if section in ("k", "c"):
        overview: KpiOverview = await kpi_overview(services, now)
        if section == "k":
            return lambda: (texts.kpi_table_text(overview, tz), None)
        return lambda: (texts.criteria_text(overview), None)
    if section in ("s", "u"):
        severities = _OWNER_SEVERITIES if section == "s" else ("critical", "high", "medium", "low")
        states = _LIVE if section == "s" else ("open",)
        lines, total = await store.live_signals(db, severities=severities, states=states, limit=DETAIL_LINES)
        title = texts.open_signals_title if section == "s" else texts.unacknowledged_title
        return lambda: (texts.signals_text(title(), lines, total, now, tz), None)
    if section == "b":
        since = stuck_since(services, now)
        blockers = await store.blockers(db, now=now, stuck_since=since, limit=DETAIL_LINES)
        count = _stalled(await open_queues(services, now))
        return lambda: (texts.blockers_text(blockers, count, now, tz), None)
    if section == "m":
        loads = await manager_load_lines(services, overloaded_only=False)
        return lambda: (texts.managers_text(loads), None)
    if section == "r":
        view = await retro_view(services, parse_week(week))
        return lambda: (texts.retro_details_text(view), None)
    raise UnknownSection(f"unknown section {section!r}")


async def send_details(
    services: Services, chat_id: int, section: str, now: datetime, *, week: str | None = None
) -> None:
    """A detail button's message into `chat_id` (pressing it again within a minute changes nothing).
    Raises UnknownSection for a section or week that does not exist."""
    render = await _details(services, section, week, now)
    minute = now.astimezone(services.settings.tz).strftime("%Y-%m-%dT%H%M")
    async with services.db.transaction() as conn:
        await _put_text(
            conn, services, chat_id, f"digest:detail:{section}:{week or ''}:{minute}", now, render
        )
    services.wake_sender()
