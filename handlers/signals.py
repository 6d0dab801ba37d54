"""Signal ping buttons (in the leads and crisis chats and in private chats) and the "still on it?" buttons.

Callback data is never trusted: every press is parsed by domain.signals, re-authorised against the stored
signal (leads, admins, the owner, and the person who owns the signal) and always answered, with a short
explanation when refused.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from pydantic import ValidationError

from backbone.commands import act
from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.checkins import answer_checkin
from circles.sales_ops.handover import reassign_choices
from domain.actors import Actor
from domain.signals import DecideAction, permitted
from keyboards import signals as cards
from keyboards.signal_input import ParseError, parse_signal_callback

CALLBACK_ANSWER_LIMIT = 200


def short(text: str) -> str:
    """A callback answer shows at most 200 characters."""
    return text if len(text) <= CALLBACK_ANSWER_LIMIT else text[: CALLBACK_ANSWER_LIMIT - 1] + "…"


def actor_of_caller(caller: Caller) -> Actor:
    return Actor(
        user_id=caller.user_id,
        staff=caller.is_lead or caller.is_admin or caller.is_owner,
        approver=caller.is_admin or caller.is_owner,
    )


async def on_signal_button(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    command = parse_signal_callback(callback.data)
    if isinstance(command, ParseError):
        await callback.answer(short(cards.parse_error_text(command)), show_alert=True)
        return
    actor = actor_of_caller(caller)
    if command.action is DecideAction.REASSIGN and command.manager_id is None:
        # The picker: only staff reassign; the press itself changes nothing.
        if not permitted(command.action, actor, None):
            await callback.answer(short(cards.refusal_text("forbidden", command)), show_alert=True)
            return
        managers = await reassign_choices(services, services.clock.now())
        if not managers:
            await callback.answer(short(cards.no_managers_text()), show_alert=True)
            return
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.answer(
                cards.pick_manager_text(command.signal_id),
                reply_markup=cards.reassign_keyboard(command.signal_id, managers),
            )
        return
    outcome = await act(services, command, actor, services.clock.now())
    if not outcome.ok or outcome.signal is None:
        await callback.answer(
            short(cards.refusal_text(outcome.refusal or "not_found", command)), show_alert=True
        )
        return
    text = cards.done_text(outcome.signal, command, services.settings.tz)
    text += cards.notes_text(outcome.notes)
    await callback.answer(short(text))
    if command.action is DecideAction.REASSIGN and isinstance(callback.message, Message):
        # The picker has done its job: drop its buttons.
        await callback.message.edit_reply_markup(reply_markup=cards.no_buttons())


async def on_checkin_button(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    try:
        data = cards.CheckinCallback.unpack(callback.data or "")
    except (ValueError, TypeError, ValidationError):
        await callback.answer(short(cards.checkin_answer_text("not_found")), show_alert=True)
        return
    result = await answer_checkin(services, data.t, caller.user_id, services.clock.now())
    await callback.answer(short(cards.checkin_answer_text(result)), show_alert=result != "done")


def router() -> Router:
    r = Router(name="signals")
    r.callback_query.register(on_signal_button, F.data.startswith(f"{cards.SignalCallback.__prefix__}:"))
    r.callback_query.register(on_checkin_button, F.data.startswith(f"{cards.CheckinCallback.__prefix__}:"))
    return r
