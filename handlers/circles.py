"""Commands of the circles, part 1: `/margin [ORDER | days N]` (the owner and admins: an order's margin
explained, or the unit economics of the last N days with the largest leaks), `/scorecard [MANAGER]` (leads
and admins: every manager's scorecard and why SLAs failed, or one manager's in full) and `/me` (a manager's
own)."""

from __future__ import annotations

from datetime import timedelta

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.scorecards import scorecard_report
from circles.unit_economics.cfo import explain, rules_of
from circles.unit_economics.kpi import delivered
from domain.economics import top_leaks, unit_economics
from domain.kpi import Window
from domain.statuses import Status
from keyboards import circles as texts
from storage import money
from storage import scorecards as score_store

MAX_DAYS = 90
LEAK_LINES = 5


def parse_margin(args: str | None) -> str | float | None:
    """None: bad input; a float: days; a str: an order id."""
    words = (args or "").split()
    if not words:
        return 1.0
    if words[0].casefold() in ("days", "дней", "дни") and len(words) == 2:
        try:
            days = int(words[1])
        except ValueError:
            return None
        return float(days) if 1 <= days <= MAX_DAYS else None
    return words[0] if len(words) == 1 else None


async def cmd_margin(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not (caller.is_owner or caller.is_admin):
        await message.answer(texts.margin_refused())
        return
    wanted = parse_margin(command.args)
    if wanted is None:
        await message.answer(texts.margin_usage())
        return
    rules = rules_of(services.policy)
    if isinstance(wanted, str):
        order = await explain(services.db, wanted)
        if order is None:
            await message.answer(texts.no_order(wanted))
            return
        status = await money.order_status(services.db, wanted)
        known = Status(status) if status in {s.value for s in Status} else None
        await message.answer(texts.margin_order_text(order, rules, known))
        return
    now = services.clock.now()
    orders = await delivered(services.db, Window.ending(now, timedelta(days=wanted)))
    report = unit_economics(orders, rules)
    await message.answer(texts.margin_days_text(wanted, report, top_leaks(orders, rules, LEAK_LINES)))


async def _scorecards(services: Services, manager_id: str | None) -> str:
    days = services.policy.scorecards.window_days
    report = await scorecard_report(services, Window.ending(services.clock.now(), timedelta(days=days)))
    if manager_id is None:
        return texts.scorecards_text(report.cards, report.reasons, days)
    card = next((c for c in report.cards if c.manager_id == manager_id), None)
    if card is None:
        return texts.no_manager(manager_id)
    return texts.scorecard_text(card, days)


async def cmd_scorecard(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not (caller.is_lead or caller.is_admin):
        await message.answer(texts.scorecard_refused())
        return
    manager_id = None
    if command.args and command.args.strip():
        manager_id = await score_store.find_manager(services.db, command.args)
        if manager_id is None:
            await message.answer(texts.no_manager(command.args.strip()))
            return
    await message.answer(await _scorecards(services, manager_id))


async def cmd_me(message: Message, services: Services, caller: Caller) -> None:
    if not caller.is_manager or caller.manager_id is None:
        await message.answer(texts.not_a_manager())
        return
    await message.answer(await _scorecards(services, caller.manager_id))


def router() -> Router:
    r = Router(name="circles")
    r.message.register(cmd_margin, Command("margin"))
    r.message.register(cmd_scorecard, Command("scorecard"))
    r.message.register(cmd_me, Command("me"))
    return r
