"""The Strategy circle's daily run (after the morning digest): the autopilot's review (switch back what mostly
did not help), then the AI-CEO summary to the owner (the admins without an owner), once per local day."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from circles.sales_ops.digests import owner_chats
from circles.sales_ops.kpi import local_day
from circles.strategy.autopilot import review
from circles.strategy.ceo import ceo_summary
from keyboards import ceo as texts
from storage.kpi import message_queued
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)


async def run_daily(services: Services, now: datetime) -> list[int]:
    """Returns the chats the summary went to (none when today's was sent already)."""
    await review(services, now)
    ref = f"ceo:{local_day(now, services).isoformat()}"
    chats = [c for c in owner_chats(services) if not await message_queued(services.db, c, ref)]
    if not chats:
        return []
    bodies = {}
    for chat in chats:
        # KPI labels are written in the reader's language when the circles report: one summary per chat.
        with in_locale(await chat_language(services.db, chat, services.settings.default_language)):
            summary = await ceo_summary(services, now)
            bodies[chat] = texts.ceo_text(summary, services.settings.tz, services.web_url)
    async with services.db.transaction() as conn:
        for chat, text in bodies.items():
            await put_message(conn, chat_id=chat, ref=ref, body=text, markup=None, now=now)
    services.wake_sender()
    log_event(log, "ceo.summary", chats=chats)
    return chats
