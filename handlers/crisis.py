"""`/crisis TEXT`: anyone with a role (manager, lead, owner, admin) raises a critical signal by hand; it
goes to the crisis chat and the owner with a playbook (backbone/crisis.py)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from backbone.crisis import crisis_by_hand
from bot.roles import Caller
from bot.services import Services
from keyboards import outcomes


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


def router() -> Router:
    r = Router(name="crisis")
    r.message.register(cmd_crisis, Command("crisis"))
    return r
