"""Handing orders over and paying compensations, for leads, admins and the owner:
- `/reassign ORDER MANAGER [reason]`: the order moves to the manager at once (circles/sales_ops/handover.py);
- `/reassign_all MANAGER [reason]`: a request to hand every open order of a manager over, for an admin;
- `/compensate ORDER AMOUNT REASON`: a request to pay a client, for an admin to approve
  (circles/sales_ops/compensation.py).
Approving or rejecting is `/decide ID approve|reject` or the buttons on the request's ping."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.compensation import parse_amount, request_compensation
from circles.sales_ops.handover import reassign_order, request_bulk_reassign
from circles.sales_ops.orders import ActionRefused
from keyboards import outcomes


async def cmd_reassign(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not _staff(caller):
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
    await message.answer(outcomes.reassign_done(handover.order.id, handover.from_name, handover.to_name))


async def cmd_reassign_all(
    message: Message, command: CommandObject, services: Services, caller: Caller
) -> None:
    if not _staff(caller):
        await message.answer(outcomes.reassign_forbidden())
        return
    parts = (command.args or "").split(maxsplit=1)
    if not parts:
        await message.answer(outcomes.bulk_usage())
        return
    reason = parts[1].strip()[:500] if len(parts) > 1 else ""
    try:
        signal_id, count = await request_bulk_reassign(
            services,
            manager_id=parts[0],
            reason=reason,
            requested_by=caller.user_id,
            now=services.clock.now(),
        )
    except ActionRefused as refused:
        await message.answer(outcomes.request_refused(refused.code, refused.facts))
        return
    await message.answer(outcomes.bulk_requested(signal_id, parts[0], count))


async def cmd_compensate(
    message: Message, command: CommandObject, services: Services, caller: Caller
) -> None:
    if not _staff(caller):
        await message.answer(outcomes.reassign_forbidden())
        return
    parts = (command.args or "").split(maxsplit=2)
    if len(parts) < 2:
        await message.answer(outcomes.compensation_usage())
        return
    try:
        amount = parse_amount(parts[1])
        request = await request_compensation(
            services,
            order_id=parts[0],
            amount_eur=amount,
            reason=parts[2] if len(parts) > 2 else "",
            requested_by=caller.user_id,
            now=services.clock.now(),
        )
    except ActionRefused as refused:
        await message.answer(outcomes.request_refused(refused.code, refused.facts))
        return
    await message.answer(outcomes.compensation_requested(request.signal_id, str(amount), parts[0]))


def _staff(caller: Caller) -> bool:
    return caller.is_lead or caller.is_admin or caller.is_owner


def router() -> Router:
    r = Router(name="reassign")
    r.message.register(cmd_reassign, Command("reassign"))
    r.message.register(cmd_reassign_all, Command("reassign_all"))
    r.message.register(cmd_compensate, Command("compensate"))
    return r
