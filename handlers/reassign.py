"""`/reassign ORDER MANAGER [reason]` for leads, admins and the owner: the order moves to the manager
(circles/sales_ops/handover.py); both managers see it on their cards, the CRM gets the assignment."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.handover import reassign_order
from circles.sales_ops.orders import ActionRefused
from keyboards import outcomes


async def cmd_reassign(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not (caller.is_lead or caller.is_admin or caller.is_owner):
        await message.answer(outcomes.reassign_forbidden())
        return
    parts = (command.args or "").split(maxsplit=2)
    if len(parts) < 2:
        await message.answer(outcomes.reassign_usage())
        return
    order_id, manager_id = parts[0], parts[1]
    reason = parts[2].strip() if len(parts) > 2 else ""
    try:
        handover = await reassign_order(
            services,
            order_id,
            manager_id,
            actor_telegram_id=caller.user_id,
            reason=reason[:500],
            now=services.clock.now(),
        )
    except ActionRefused as refused:
        await message.answer(outcomes.reassign_refused(refused.code, refused.facts))
        return
    await message.answer(
        outcomes.reassign_done(handover.order.id, handover.from_manager, handover.to_manager)
    )


def router() -> Router:
    r = Router(name="reassign")
    r.message.register(cmd_reassign, Command("reassign"))
    return r
