"""Commands every audience has: /start and /help (each role's greeting and commands), /lang, /link, /cancel,
and the fallback that answers whatever no other router handled (unknown commands, stale or forged buttons).
"""

from __future__ import annotations

import logging
from html import escape

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    CallbackQuery,
    Message,
)

from backbone import postmortems
from bot.i18n import LANGUAGES, _, in_locale
from bot.logs import log_event
from bot.roles import Caller, Role, resolve_roles
from bot.services import Services
from keyboards import outcomes
from keyboards.common import (
    LANGUAGE_NAMES,
    STRANGER_COMMANDS,
    LangCallback,
    commands_for,
    greeting_text,
    help_text,
    language_keyboard,
)
from storage import orders as order_store
from storage.people import (
    LinkError,
    create_link_code,
    manager_by_id,
    set_language,
    use_link_code,
)

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="common")
    r.message.register(start, CommandStart())
    r.message.register(show_help, Command("help"))
    r.message.register(choose_language, Command("lang"))
    r.callback_query.register(language_pressed, LangCallback.filter())
    r.message.register(link, Command("link"))
    r.message.register(cancel, Command("cancel"))
    return r


def fallback_router() -> Router:
    """Last in the chain: a clear answer for anything no router above understood."""
    r = Router(name="fallback")
    r.message.register(unknown_command, F.text.startswith("/"))
    r.message.register(not_understood, F.chat.type == "private")
    r.callback_query.register(stale_button)
    return r


async def start(message: Message, caller: Caller) -> None:
    first_name = message.from_user.first_name if message.from_user else None
    await message.answer(greeting_text(caller, first_name))


async def show_help(message: Message, caller: Caller) -> None:
    await message.answer(help_text(caller))


# --- language


async def choose_language(
    message: Message, command: CommandObject, caller: Caller, services: Services
) -> None:
    """`/lang` shows the choice; `/lang en` switches at once."""
    if not command.args:
        await message.answer(_("Choose your language:"), reply_markup=language_keyboard(caller.lang))
        return
    code = command.args.strip().lower()
    if code not in LANGUAGES:
        await message.answer(
            _("Unknown language {code}: use {choices}.").format(
                code=escape(code), choices=", ".join(LANGUAGES)
            )
        )
        return
    await _switch_language(caller, code, services)
    with in_locale(code):
        await message.answer(_language_set_text(code))


async def language_pressed(
    callback: CallbackQuery, callback_data: LangCallback, caller: Caller, services: Services
) -> None:
    code = callback_data.code
    if code not in LANGUAGES:
        await callback.answer(_("Unknown language."), show_alert=True)
        return
    await _switch_language(caller, code, services)
    with in_locale(code):
        text = _language_set_text(code)
        await callback.answer(text)
        if isinstance(callback.message, Message):
            try:
                await callback.message.edit_text(text, reply_markup=language_keyboard(code))
            except TelegramAPIError as exc:  # pressed twice: "not modified"; an old message: nothing to fix
                log_event(log, "lang.edit_failed", logging.DEBUG, error=str(exc))


def _language_set_text(code: str) -> str:
    return _("Language: {language}.").format(language=LANGUAGE_NAMES[code])


async def _switch_language(caller: Caller, code: str, services: Services) -> None:
    await set_language(services.db, telegram_id=caller.user_id, lang=code, now=services.clock.now())
    log_event(log, "lang.set", user_id=caller.user_id, lang=code)


# --- linking a manager's Telegram account


async def link(
    message: Message, command: CommandObject, caller: Caller, services: Services, bot: Bot
) -> None:
    """`/link MANAGER_ID` (admin): a one-time code for that manager; `/link CODE`: link this account."""
    argument = (command.args or "").strip()
    if not argument or len(argument.split()) > 1:
        if caller.is_admin:
            await message.answer(
                _("Use /link MANAGER_ID to get a code for a manager, or /link CODE to use one.")
            )
        else:
            await message.answer(_("Send /link CODE with the code you got from an admin."))
        return
    if caller.is_admin and await manager_by_id(services.db, argument) is not None:
        await _create_code(message, argument, caller, services)
        return
    if message.chat.type != "private":
        await message.answer(_("Send your code to me in a private chat, not in a group."))
        return
    now = services.clock.now()
    try:
        async with services.db.transaction() as conn:
            manager_id = await use_link_code(conn, code=argument, telegram_id=caller.user_id, now=now)
    except LinkError as exc:
        await message.answer(_link_error_text(exc.reason))
        return
    manager = await manager_by_id(services.db, manager_id)
    log_event(log, "link.used", manager_id=manager_id, user_id=caller.user_id)
    roles = resolve_roles(services.settings, caller.user_id, manager)
    await message.answer(
        _("Done: this account is now manager {name} ({id}). /help shows your commands.").format(
            name=escape(str(manager["name"]) if manager else ""), id=escape(manager_id)
        )
    )
    await set_chat_commands(bot, caller.user_id, roles, caller.lang)


async def _create_code(message: Message, manager_id: str, caller: Caller, services: Services) -> None:
    now = services.clock.now()
    async with services.db.transaction() as conn:
        code, expires_at = await create_link_code(
            conn, manager_id=manager_id, created_by=caller.user_id, now=now
        )
    log_event(log, "link.code_created", manager_id=manager_id, by=caller.user_id)
    until = expires_at.astimezone(services.settings.tz).strftime("%Y-%m-%d %H:%M")
    await message.answer(
        _(
            "Code for manager {id}: <code>{code}</code> (valid until {until}, once). The manager sends "
            "/link {code} to me in a private chat."
        ).format(id=escape(manager_id), code=code, until=until)
    )


def _link_error_text(reason: str) -> str:
    texts = {
        "unknown_code": _("This code is not valid. Check it, or ask an admin for a new one."),
        "used": _("This code was already used. Ask an admin for a new one."),
        "expired": _("This code has expired. Ask an admin for a new one."),
        "telegram_taken": _("This Telegram account is already linked to another manager."),
        "unknown_manager": _("There is no manager with this id."),
    }
    return texts.get(reason, texts["unknown_code"])


# --- /cancel and the fallback


async def cancel(message: Message, caller: Caller, services: Services) -> None:
    """Stop any entry in progress: the question a manager's next message would answer."""
    async with services.db.transaction() as conn:
        focus = await order_store.get_focus(conn, caller.user_id)
        if focus is not None:
            await order_store.clear_focus(conn, order_id=focus.order_id, telegram_id=caller.user_id)
    put_off = await postmortems.put_off(services, caller.user_id, services.clock.now())
    if put_off:  # a postmortem waits: say so, with a button to continue it
        await message.answer(
            outcomes.postmortem_put_off(put_off), reply_markup=outcomes.continue_keyboard(put_off)
        )
        return
    await message.answer(_("Cancelled.") if focus is not None else _("Nothing to cancel."))


async def unknown_command(message: Message) -> None:
    await message.answer(_("Unknown command. /help lists what you can do."))


async def not_understood(message: Message) -> None:
    await message.answer(_("I did not understand that. /help lists what you can do."))


async def stale_button(callback: CallbackQuery) -> None:
    """A button no handler takes: from an old message, or forged. Nothing changes; the person is told."""
    log_event(
        log, "telegram.unknown_callback", user_id=callback.from_user.id, data=(callback.data or "")[:64]
    )
    await callback.answer(_("This button is no longer valid."), show_alert=True)


# --- the command menu Telegram shows (setMyCommands)


async def set_chat_commands(bot: Bot, chat_id: int, roles: frozenset[Role], lang: str) -> None:
    """The menu of one person's (or group's) chat, in their language."""
    with in_locale(lang):
        commands = [BotCommand(command=name, description=text) for name, text in commands_for(roles)]
    try:
        await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as exc:  # a chat that never opened the bot: its menu comes with the next start
        log_event(log, "telegram.commands_failed", logging.WARNING, chat_id=chat_id, error=str(exc))


async def set_default_commands(bot: Bot, default_lang: str) -> None:
    """The menu for everyone else (people the bot does not know yet), per client language."""
    for lang in LANGUAGES:
        with in_locale(lang):
            commands = [BotCommand(command=name, description=str(text)) for name, text in STRANGER_COMMANDS]
        language_code = None if lang == default_lang else lang
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language_code)
