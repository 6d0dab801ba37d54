"""/kpi (admins: the KPI table now), /digest (the owner and admins: the morning digest on demand) and the
detail buttons under the digests. Every press is re-authorised here: callback data is never trusted."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from pydantic import ValidationError

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.digests import UnknownSection, parse_week, send_details, send_owner_digest_now
from circles.sales_ops.kpi import kpi_overview
from keyboards import digest as texts


async def cmd_kpi(message: Message, services: Services, caller: Caller) -> None:
    if not caller.is_admin:
        await message.answer(texts.kpi_refused_text())
        return
    overview = await kpi_overview(services, services.clock.now())
    await message.answer(texts.kpi_table_text(overview, services.settings.tz))


async def cmd_digest(message: Message, services: Services, caller: Caller) -> None:
    if not (caller.is_owner or caller.is_admin):
        await message.answer(texts.digest_refused_text())
        return
    # The digest (text and chart) arrives through the sender, like the scheduled one.
    await send_owner_digest_now(services, message.chat.id, services.clock.now())


def _unpack(data: str | None) -> texts.DigestCallback | None:
    try:
        return texts.DigestCallback.unpack(data or "")
    except (ValueError, TypeError, ValidationError):
        return None


async def on_detail(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    data = _unpack(callback.data)
    if data is None or data.s not in texts.SECTIONS or not isinstance(callback.message, Message):
        await callback.answer(texts.outdated_button_text(), show_alert=True)
        return
    if not any(role in texts.SECTIONS[data.s] for role in caller.roles):
        await callback.answer(texts.detail_refused_text(), show_alert=True)
        return
    if data.s == "r":
        try:
            parse_week(data.d)
        except UnknownSection:
            await callback.answer(texts.outdated_button_text(), show_alert=True)
            return
    # Answered before the work: reading a KPI window can take longer than a client waits for the spinner.
    await callback.answer()
    await send_details(services, callback.message.chat.id, data.s, services.clock.now(), week=data.d)


def router() -> Router:
    r = Router(name="digest")
    r.message.register(cmd_kpi, Command("kpi"))
    r.message.register(cmd_digest, Command("digest"))
    r.callback_query.register(on_detail, F.data.startswith(f"{texts.DigestCallback.__prefix__}:"))
    return r
