"""`/crisis TEXT`, and continuing a postmortem put off with /cancel. `/crisis`: anyone with a role
(manager, lead, owner, admin) raises a critical signal by hand; it goes to the crisis chat and the owner
with a playbook (backbone/crisis.py)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from pydantic import ValidationError

from backbone.crisis import crisis_by_hand
from backbone.postmortems import continue_postmortem
from bot.roles import Caller
from bot.services import Services
from keyboards import outcomes
from keyboards import signals as cards


async def cmd_crisis(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not caller.is_known:
        await message.answer(outcomes.crisis_no_role())
        return
    text = (command.args or "").strip()
    if not text:
        await message.answer(outcomes.crisis_usage())
        return
    name = message.from_user.full_name if message.from_user is not None else str(caller.user_id)
    signal_id = await crisis_by_hand(
        services, user_id=caller.user_id, name=name, text=text, now=services.clock.now()
    )
    await message.answer(outcomes.crisis_raised(signal_id))


async def on_continue_postmortem(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    try:
        data = outcomes.PostmortemContinue.unpack(callback.data or "")
    except (ValueError, TypeError, ValidationError):
        await callback.answer(outcomes.nothing_to_continue(), show_alert=True)
        return
    result = await continue_postmortem(services, caller.user_id, data.s, services.clock.now())
    if result is None or result.signal is None or result.next_step in (None, "done"):
        await callback.answer(outcomes.nothing_to_continue(), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(cards.postmortem_question(str(result.next_step), result.signal))


def router() -> Router:
    r = Router(name="crisis")
    r.message.register(cmd_crisis, Command("crisis"))
    r.callback_query.register(
        on_continue_postmortem, F.data.startswith(f"{outcomes.PostmortemContinue.__prefix__}:")
    )
    return r
