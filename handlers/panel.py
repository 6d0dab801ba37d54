"""/web (admins, the owner, leads: a one-time sign-in link to the panel) and /ceo (the owner and admins: the
AI-CEO summary)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import LinkPreviewOptions, Message

from bot.roles import Caller
from bot.services import Services
from circles.strategy.ceo import ceo_summary
from keyboards import ceo as texts
from web.auth import issue_link, may_sign_in


async def cmd_web(message: Message, services: Services, caller: Caller) -> None:
    if not may_sign_in(services.settings, caller.user_id):
        await message.answer(texts.web_refused_text())
        return
    if services.web_url is None:
        await message.answer(texts.web_not_configured_text())
        return
    url = await issue_link(services, caller.user_id, services.clock.now(), services.web_url)
    # No link preview: a preview fetch would spend the one-time link.
    await message.answer(
        texts.web_link_text(url, services.settings.web_link_minutes),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


async def cmd_ceo(message: Message, services: Services, caller: Caller) -> None:
    if not (caller.is_owner or caller.is_admin):
        await message.answer(texts.ceo_refused_text())
        return
    summary = await ceo_summary(services, services.clock.now())
    await message.answer(
        texts.ceo_text(summary, services.settings.tz, services.web_url),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


def router() -> Router:
    router = Router(name="panel")
    router.message.register(cmd_web, Command("web"))
    router.message.register(cmd_ceo, Command("ceo"))
    return router
