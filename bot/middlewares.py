"""Per-update middlewares: who is calling (once per update), in which language, and the chats the bot is in.

`CallerMiddleware` (outer, on the update) resolves the `Caller` from the configured ids, the managers table
and the person's stored language, records the person, refuses strangers politely, leaves groups that are not
configured, follows a group's migration and notices when a person blocks or unblocks the bot.
`LocaleMiddleware` then sets the caller's language for the handler. `UpdateTracker` counts updates in and out
of the pipeline, so a test (or a shutdown) can wait until every update taken from Telegram has been handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, ChatMemberUpdated, Message, TelegramObject, Update, User
from aiogram.utils.i18n import I18nMiddleware

from bot.i18n import LANGUAGES, in_locale
from bot.logs import log_event
from bot.roles import Caller, configured_groups, resolve_roles
from bot.sender import record_chat_blocked, record_chat_unblocked
from bot.services import Services
from keyboards.common import stranger_text
from storage.awaiting import awaited
from storage.people import Person, current_chat_id, lookup_person, record_chat_migration, touch_user

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# last_seen is refreshed at most this often: a busy manager's every tap need not be a write.
_SEEN_REFRESH = timedelta(minutes=1)
_STRANGER_COMMANDS = frozenset({"/link"})
_MEMBER = frozenset({"member", "administrator", "creator", "restricted"})
_GONE = frozenset({"kicked", "left"})


class UpdateTracker(BaseMiddleware):
    """Counts updates entering and leaving the pipeline; `wait_idle` returns when none is in flight. It also
    knows which updates taken by long polling are not handled yet (`ConfirmWhenHandled`)."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.unhandled: set[int] = set()  # update ids taken from getUpdates whose handling has not ended
        self.all_handled = asyncio.Event()
        self.all_handled.set()

    @property
    def in_flight(self) -> int:
        return self.started - self.finished

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self.started += 1
        self._idle.clear()
        try:
            return await handler(event, data)
        finally:
            self.finished += 1
            if self.in_flight == 0:
                self._idle.set()
            if isinstance(event, Update):
                self.handled(event.update_id)

    def taken(self, update_ids: Iterable[int]) -> None:
        self.unhandled.update(update_ids)
        if self.unhandled:
            self.all_handled.clear()

    def handled(self, update_id: int) -> None:
        self.unhandled.discard(update_id)
        if not self.unhandled:
            self.all_handled.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class ConfirmWhenHandled(BaseRequestMiddleware):
    """Long polling confirms a batch of updates with the next getUpdates, and aiogram handles updates as
    tasks, so that call can go out while handlers still run: the process dying then would lose those updates
    (Telegram never sends a confirmed update again), a manager's press among them. This holds each
    getUpdates until the updates before it are handled; a handler stuck longer than `patience` seconds lets
    it go (logged). A crash can then only repeat an update whose handler had committed; handlers are
    idempotent (a repeated press finds the order already moved on)."""

    def __init__(self, tracker: UpdateTracker, patience: float = 60.0) -> None:
        self.tracker = tracker
        self.patience = patience

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        polling = isinstance(method, GetUpdates)
        if polling:
            try:
                await asyncio.wait_for(self.tracker.all_handled.wait(), self.patience)
            except TimeoutError:
                unhandled = sorted(self.tracker.unhandled)
                log_event(log, "intake.confirm_unhandled", logging.WARNING, updates=unhandled)
        response = await make_request(bot, method)
        # Typed as a Response, but aiogram's session hands middlewares the bare result (the list of updates).
        updates: Any = getattr(response, "result", response)
        if polling and isinstance(updates, list):
            self.tracker.taken(update.update_id for update in updates if isinstance(update, Update))
        return response


def _language_of(user: User, default: str) -> str:
    code = (user.language_code or "").split("-")[0].lower()
    return code if code in LANGUAGES else default


def _command(message: Message | None) -> str | None:
    if message is None or not message.text or not message.text.startswith("/"):
        return None
    return message.text.split(maxsplit=1)[0].split("@", 1)[0].lower()


class CallerMiddleware(BaseMiddleware):
    """Resolves `caller: Caller` for the handlers; see the module docstring."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        services: Services = data["services"]
        bot: Bot = data["bot"]
        if event.my_chat_member is not None:
            await self._membership(event.my_chat_member, services, bot)
            return None
        if event.message is not None and await self._migration(event.message, services):
            return None
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or user.is_bot:
            return None
        if chat is not None and chat.type != "private" and not await self._group_allowed(chat.id, services):
            await self._leave(bot, chat.id)
            return None

        person = await lookup_person(services.db, user.id)
        roles = resolve_roles(services.settings, user.id, person.manager)
        default = services.settings.default_language
        lang = person.lang if person.lang in LANGUAGES else default if roles else _language_of(user, default)
        await self._record(services, user, person)
        caller = Caller(user_id=user.id, roles=roles, manager_id=person.manager_id, lang=str(lang))
        in_private = chat is not None and chat.type == "private"
        if not caller.is_known and not (in_private and _command(event.message) in _STRANGER_COMMANDS):
            log_event(
                log,
                "telegram.stranger",
                user_id=user.id,
                chat_id=chat.id if chat else None,
                update=event.event_type,
            )
            await self._refuse(event, in_private, caller.lang)
            return None
        data["caller"] = caller
        # One lookup per private message that is not a command: what its free text (or file) answers, for
        # every router's filters (a command never answers a question).
        message = event.message
        wants = in_private and message is not None and not (message.text or "").startswith("/")
        data["awaited"] = await awaited(services.db, user.id) if wants else None
        return await handler(event, data)

    async def _record(self, services: Services, user: User, person: Person) -> None:
        now = services.clock.now()
        stale = person.last_seen is None or now - person.last_seen >= _SEEN_REFRESH
        if stale or person.first_name != user.first_name:
            await touch_user(services.db, telegram_id=user.id, first_name=user.first_name, now=now)

    async def _refuse(self, event: Update, in_private: bool, lang: str) -> None:
        """A stranger gets a polite line in a private chat, a short answer on a button; groups stay quiet."""
        with in_locale(lang):
            text = stranger_text()
        with contextlib.suppress(TelegramAPIError):
            if event.callback_query is not None:
                await event.callback_query.answer(text, show_alert=True)
            elif event.message is not None and in_private:
                await event.message.answer(text)

    async def _group_allowed(self, chat_id: int, services: Services) -> bool:
        configured = configured_groups(services.settings)
        if chat_id in configured:
            return True
        for configured_id in configured:
            if await current_chat_id(services.db, configured_id) == chat_id:
                return True
        return False

    async def _leave(self, bot: Bot, chat_id: int) -> None:
        log_event(log, "telegram.left_group", logging.WARNING, chat_id=chat_id)
        with contextlib.suppress(TelegramAPIError):
            await bot.leave_chat(chat_id)

    async def _migration(self, message: Message, services: Services) -> bool:
        """A configured group became a supergroup: remember its new id (both service messages say so)."""
        if message.migrate_to_chat_id is not None:
            old, new = message.chat.id, message.migrate_to_chat_id
        elif message.migrate_from_chat_id is not None:
            old, new = message.migrate_from_chat_id, message.chat.id
        else:
            return False
        if await self._group_allowed(old, services):
            async with services.db.transaction() as conn:
                await record_chat_migration(conn, old, new)
            log_event(log, "telegram.group_migrated", chat_id=old, new_chat_id=new)
        return True

    async def _membership(self, update: ChatMemberUpdated, services: Services, bot: Bot) -> None:
        """The bot's own membership changed: blocked or unblocked by a person, added to or left a group."""
        chat, old, new = update.chat, update.old_chat_member.status, update.new_chat_member.status
        now = services.clock.now()
        if chat.type != "private" and new in _MEMBER and not await self._group_allowed(chat.id, services):
            await self._leave(bot, chat.id)
            return
        if chat.type != "private" and not await self._group_allowed(chat.id, services):
            return  # we left an unknown group: nothing to record
        async with services.db.transaction() as conn:
            if new in _GONE:
                changed = await record_chat_blocked(
                    conn,
                    chat.id,
                    now=now,
                    via="my_chat_member",
                    settings=services.settings,
                    policy=services.policy,
                )
            elif new in _MEMBER and old in _GONE:
                changed = await record_chat_unblocked(conn, chat.id, now=now, settings=services.settings)
            else:
                changed = False
        if changed:
            log_event(log, "telegram.chat_membership", chat_id=chat.id, old=str(old), new=str(new))
            services.wake_sender()


class LocaleMiddleware(I18nMiddleware):
    """Handlers speak the caller's language (set by CallerMiddleware)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        caller: Caller | None = data.get("caller")
        return caller.lang if caller is not None else self.i18n.default_locale
