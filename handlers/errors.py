"""The errors router: any update whose handling failed is logged once (with its update id and the trace), and
a failed button press is answered with a short text, so the person's client stops spinning and knows to try
again. The failure itself is not retried here: what the use case did not commit did not happen.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

from bot.i18n import LANGUAGES, _, in_locale
from bot.services import Services

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="errors")
    r.errors.register(on_error)
    return r


async def on_error(event: ErrorEvent, bot: Bot, services: Services) -> bool:
    update = event.update
    query = update.callback_query
    user = update.event.from_user if hasattr(update.event, "from_user") else None
    log.error(
        "update.failed",
        exc_info=event.exception,
        extra={
            "fields": {
                "update_id": update.update_id,
                "kind": update.event_type,
                "user_id": None if user is None else user.id,
                "error": repr(event.exception),
            }
        },
    )
    if query is not None:
        # The store may be what failed: the language comes from the person's client, not from the store.
        code = (query.from_user.language_code or "").split("-")[0].lower()
        with in_locale(code if code in LANGUAGES else services.settings.default_language):
            text = _("Something went wrong on our side. Please try again in a minute.")
        with contextlib.suppress(TelegramAPIError):
            await bot.answer_callback_query(query.id, text=text)
    return True
