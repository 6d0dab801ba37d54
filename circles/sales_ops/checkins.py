"""Order check-ins: the manager answers "still on it?" for an accepted order that shows no progress."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from backbone.decisions import actor_of, record_decision
from backbone.signals import Routing, put_rendered
from bot.services import Services
from keyboards import signals as cards
from storage import signals as store

log = logging.getLogger(__name__)

CheckinAnswer = Literal["done", "not_found", "forbidden", "too_late"]


async def answer_checkin(services: Services, timer_id: int, user_id: int, now: datetime) -> CheckinAnswer:
    """The manager answers "still on it?" for an accepted order; only they can, and only before the leads
    were told (order.no_progress)."""
    routing = Routing.from_settings(services.settings)
    async with services.db.transaction() as conn:
        checkin = await store.get_checkin(conn, timer_id)
        if checkin is None:
            return "not_found"
        if checkin.telegram_id != user_id:
            return "forbidden"
        if not await store.answer_checkin(conn, timer_id, now):
            return "too_late"
        await put_rendered(
            conn,
            routing,
            user_id,
            f"checkin:{timer_id}",
            now,
            lambda: (cards.checkin_answered_text(checkin.order_id), cards.no_buttons()),
        )
        await record_decision(
            conn,
            kind="human",
            action="still_on_it",
            actor=actor_of(user_id),
            reason="still on it",
            now=now,
            order_id=checkin.order_id,
            details={"timer": timer_id},
        )
    services.wake_sender()
    return "done"
