"""Managers' side of an order: Accept / Decline on the order card, the status buttons, the tracking number
typed after "Shipped", /my, /order ID and /shift on|off; for admins /capacity MANAGER N and
/leave MANAGER on|off.

Handlers parse, check the caller's role, call one use case and answer. Callback data is never trusted: it is
unpacked defensively and every use case re-checks who may do what; every callback query is answered.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message
from pydantic import ValidationError

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops import dispatcher, orders
from circles.sales_ops.checklist import open_checklist
from circles.sales_ops.orders import ActionRefused
from domain.orders import STEP_ACTIONS
from keyboards.orders import (
    MyOrder,
    OfferCallback,
    StepCallback,
    done_text,
    my_orders_text,
    order_details_text,
    refusal_text,
    shift_text,
    status_label,
    usage_text,
)
from storage.awaiting import Awaited

CallbackT = TypeVar("CallbackT", bound=CallbackData)


def unpack_callback(factory: type[CallbackT], data: str | None) -> CallbackT | None:
    """Callback data of `factory`, or None when it does not parse (forged, or from an older version)."""
    try:
        return factory.unpack(data or "")
    except (ValueError, TypeError, ValidationError):
        return None


def refused(exc: ActionRefused) -> str:
    return refusal_text(exc.code, **exc.facts)


# --- the offer


async def on_offer_button(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    data = unpack_callback(OfferCallback, callback.data)
    if data is None or data.act not in ("acc", "dec", "why", "back"):
        await callback.answer(refusal_text("stale_button"), show_alert=True)
        return
    now = services.clock.now()
    try:
        if data.act == "acc":
            accepted = await dispatcher.accept_offer(
                services, data.a, actor_telegram_id=caller.user_id, now=now
            )
            code = "accepted_before" if accepted.repeated else "accepted"
            await callback.answer(done_text(code, order=accepted.order.id))
        elif data.act == "why":
            await dispatcher.decline_offer(
                services, data.a, data.r or "", actor_telegram_id=caller.user_id, now=now
            )
            await callback.answer(done_text("declined"))
        else:
            await dispatcher.show_decline_reasons(
                services, data.a, actor_telegram_id=caller.user_id, now=now, asking=data.act == "dec"
            )
            await callback.answer()
    except ActionRefused as exc:
        await callback.answer(refused(exc), show_alert=True)


# --- status buttons


async def _step(services: Services, caller: Caller, data: StepCallback) -> str | None:
    """Run the button's use case; the text to answer with (None: a plain answer)."""
    now = services.clock.now()
    order_id = await orders.order_id_of_handle(services, data.h)
    who = caller.user_id
    if data.act in STEP_ACTIONS:
        order = await orders.change_status(
            services, order_id, STEP_ACTIONS[data.act], actor_telegram_id=who, now=now
        )
        return done_text("status", order=order.id, status=status_label(order.status))
    if data.act == "cx":
        done = await orders.cancel_order(services, order_id, actor_telegram_id=who, now=now, reason=data.r)
        if done.requested:
            return done_text("cancel_requested", order=done.order.id)
        return done_text("status", order=done.order.id, status=status_label(done.order.status))
    if data.act == "chk":
        await open_checklist(services, order_id, actor_telegram_id=who, now=now)
        return done_text("checklist_opened", order=order_id)
    modes: dict[str, Any] = {"cxl": "cancel", "ship": "tracking", "back": "normal"}
    if data.act not in modes:
        raise ActionRefused("stale_button")
    await orders.show_card_mode(services, order_id, modes[data.act], actor_telegram_id=who, now=now)
    return None


async def on_step_button(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    data = unpack_callback(StepCallback, callback.data)
    if data is None:
        await callback.answer(refusal_text("stale_button"), show_alert=True)
        return
    try:
        text = await _step(services, caller, data)
    except ActionRefused as exc:
        await callback.answer(refused(exc), show_alert=True)
        return
    await callback.answer(text)


async def awaits_tracking(message: Message, awaited: Awaited | None = None) -> bool:
    """Filter: the sender's next message answers the tracking number question (storage.awaiting, looked up
    once per message by the caller middleware)."""
    return awaited is not None and awaited.kind == "tracking"


async def on_tracking_number(message: Message, services: Services, caller: Caller) -> None:
    try:
        order = await orders.answer_tracking(
            services, telegram_id=caller.user_id, text=message.text or "", now=services.clock.now()
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    if order is not None:
        await message.answer(done_text("shipped", order=order.id, tracking=order.tracking_number or ""))


# --- commands


async def cmd_my(message: Message, services: Services, caller: Caller) -> None:
    if not caller.is_manager:
        await message.answer(usage_text("managers_only"))
        return
    try:
        items: list[MyOrder] = await orders.my_orders(services, telegram_id=caller.user_id)
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    await message.answer(my_orders_text(items, services.calendar.tz))


async def cmd_order(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    order_id = (command.args or "").strip()
    if not order_id or len(order_id.split()) != 1:
        await message.answer(usage_text("order"))
        return
    try:
        details = await orders.order_details(services, order_id, actor_telegram_id=caller.user_id)
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    await message.answer(order_details_text(details))


async def cmd_shift(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not caller.is_manager:
        await message.answer(usage_text("managers_only"))
        return
    word = (command.args or "").strip().lower()
    if word not in ("", "on", "off"):
        await message.answer(usage_text("shift"))
        return
    try:
        state = await dispatcher.set_shift(
            services,
            actor_telegram_id=caller.user_id,
            on=None if not word else word == "on",
            now=services.clock.now(),
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    await message.answer(shift_text(state.on_shift, state.override))


def _two_args(command: CommandObject) -> tuple[str, str] | None:
    parts = (command.args or "").split()
    return (parts[0], parts[1].lower()) if len(parts) == 2 else None


async def cmd_capacity(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not caller.is_admin:
        await message.answer(usage_text("admins_only"))
        return
    args = _two_args(command)
    if args is None or not (args[1] == "reset" or args[1].isdigit()):
        await message.answer(usage_text("capacity", max=services.policy.dispatch.max_capacity))
        return
    manager_id, value = args
    capacity = None if value == "reset" else int(value)
    try:
        manager = await dispatcher.set_capacity(
            services, manager_id, capacity, actor_telegram_id=caller.user_id, now=services.clock.now()
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    code = "capacity_reset" if capacity is None else "capacity"
    await message.answer(done_text(code, manager=manager.id, capacity=manager.capacity))


async def cmd_leave(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not caller.is_admin:
        await message.answer(usage_text("admins_only"))
        return
    args = _two_args(command)
    if args is None or args[1] not in ("on", "off"):
        await message.answer(usage_text("leave"))
        return
    try:
        manager, released = await dispatcher.set_leave(
            services, args[0], args[1] == "on", actor_telegram_id=caller.user_id, now=services.clock.now()
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    code = "leave_on" if manager.on_leave else "leave_off"
    await message.answer(done_text(code, manager=manager.id, released=released))


def router() -> Router:
    r = Router(name="manager")
    r.callback_query.register(on_offer_button, F.data.startswith(f"{OfferCallback.__prefix__}:"))
    r.callback_query.register(on_step_button, F.data.startswith(f"{StepCallback.__prefix__}:"))
    r.message.register(cmd_my, Command("my"))
    r.message.register(cmd_order, Command("order"))
    r.message.register(cmd_shift, Command("shift"))
    r.message.register(cmd_capacity, Command("capacity"))
    r.message.register(cmd_leave, Command("leave"))
    r.message.register(
        on_tracking_number, F.chat.type == "private", F.text, ~F.text.startswith("/"), awaits_tracking
    )
    return r
