"""/health (admins: the reliability circle in one message) and /funnel [days N] (the owner and admins: the
revenue funnel with a chart)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.roles import Caller
from bot.services import Services
from circles.reliability.health import health_report
from circles.revenue.report import BadDays, parse_days, send_funnel
from keyboards import circle_views as texts


async def cmd_health(message: Message, services: Services, caller: Caller) -> None:
    if not caller.is_admin:
        await message.answer(texts.health_refused_text())
        return
    report = await health_report(services, services.clock.now())
    await message.answer(texts.health_text(report, services.settings.tz))


async def cmd_funnel(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not (caller.is_owner or caller.is_admin):
        await message.answer(texts.funnel_refused_text())
        return
    try:
        days = parse_days(command.args)
    except BadDays:
        await message.answer(texts.funnel_usage_text())
        return
    # The text and the chart arrive through the sender, like the digest.
    await send_funnel(services, message.chat.id, days, services.clock.now())


def router() -> Router:
    r = Router(name="circles")
    r.message.register(cmd_health, Command("health"))
    r.message.register(cmd_funnel, Command("funnel"))
    return r
