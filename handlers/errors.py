"""The errors router: any update whose handling failed is logged once (with its update id and the trace), and
a failed button press is answered with a short text, so the person's client stops spinning and knows to try
again. The failure itself is not retried here: what the use case did not commit did not happen.

One failure is not the update's: Telegram refusing the answer to a press as too old. The press was handled
(every use case checks the state it acts on, so a press handled late or twice changes nothing the second
time); only its answer came too late to show: a backlog after downtime, or Telegram delivering an update
again whose query was answered the first time. That is one warning line, not a failed update.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import ErrorEvent

from bot.i18n import LANGUAGES, _, in_locale
from bot.logs import log_event
from bot.services import Services

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="errors")
    r.errors.register(on_late_answer, answer_too_old)
    r.errors.register(on_error)
    return r


def answer_too_old(event: ErrorEvent) -> bool:
    exc = event.exception
    return (
        isinstance(exc, TelegramBadRequest)
        and isinstance(exc.method, AnswerCallbackQuery)
        and "query is too old" in exc.message
    )


async def on_late_answer(event: ErrorEvent) -> bool:
    query = event.update.callback_query
    log_event(
        log,
        "callback.answer_too_old",
        logging.WARNING,
        update_id=event.update.update_id,
        user_id=None if query is None else query.from_user.id,
    )
    return True


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
