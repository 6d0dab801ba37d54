"""A local Telegram Bot API server for tests, benchmarks and the demo.

The real aiogram ``Bot`` talks to it over HTTP (``AiohttpSession(api=TelegramAPIServer.from_base(url))``),
so every request goes through aiogram's own serialisation and every answer through its own model validation
and error mapping. The emulator keeps a small world (users, groups, messages, files, pending updates), lets a
test act as users (send text, photos, documents, press buttons, block the bot), and enforces Telegram's rules
with Telegram's own error codes and texts: length limits after entity parsing, callback data size, "message is
not modified", stale callback queries, flood limits with ``retry_after``, blocked users, migrated groups.
``redeliver`` sends an update the bot already had again, with its id, as Telegram does when it never saw the
bot confirm it.

Time: the injected ``monotonic`` clock drives every Telegram-side rule (flood windows, callback query expiry),
so tests can advance it by hand. Real waits (the getUpdates long poll, ``wait_for``, webhook retries) use the
event loop's clock, otherwise a frozen test clock would hang them.

Typical use in a test::

    emu = BotAPIEmulator(monotonic=clock)      # clock: a callable the test advances
    await emu.start()
    bot = emu.make_bot()                       # real aiogram Bot; bot.id == emu.bot_id
    emu.add_user(42, "Anna", language_code="ru")
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    emu.send_text(42, "/start")
    await emu.wait_for(lambda: emu.last_message(42) is not None)
    emu.press(42, 42, "Accept")
    ...
    await dp.stop_polling(); await polling; await emu.stop()

World-setup and user-action methods are synchronous and must run on the emulator's event loop.

Deliberate differences from Telegram: webhooks may be plain http (tests run on localhost); message ids count
per chat; a photo is stored once and all its sizes download the same bytes; entities other than those written
in HTML are not auto-detected (URLs, mentions), except ``bot_command`` in user messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import html
import inspect
import itertools
import json
import math
import mimetypes
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

BOT_ID = 1000000001
BOT_USERNAME = "bikewerk_bot"
BOT_FIRST_NAME = "BikeWerk Ops"

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
CALLBACK_ANSWER_TEXT_LIMIT = 200
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
UPLOAD_LIMIT = 50 * 1024 * 1024
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024

# getUpdates without allowed_updates delivers everything except these (Bot API docs).
_NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_RATE_LIMITED = frozenset({"sendMessage", "sendPhoto", "sendDocument"})

# Form fields arrive as strings; these are converted before a method sees them.
# fmt: off
_INT_FIELDS = frozenset((
    "chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id", "message_thread_id",
    "cache_time", "user_id", "max_connections", "from_chat_id",
))
_BOOL_FIELDS = frozenset((
    "show_alert", "disable_notification", "protect_content", "drop_pending_updates",
    "allow_sending_without_reply", "disable_web_page_preview", "has_spoiler", "show_caption_above_media",
    "disable_content_type_detection",
))
_JSON_FIELDS = frozenset((
    "reply_markup", "entities", "caption_entities", "reply_parameters", "link_preview_options",
    "allowed_updates", "commands", "scope", "media", "menu_button",
))
# HTML tags Telegram accepts, and the entity each one becomes.
_HTML_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "span": "spoiler",
    "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji", "tg-time": "date_time",
}
# fmt: on
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")
_ATTR_RE = re.compile(r"""([a-zA-Z][\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
_MDV2_RESERVED = frozenset(">#+-={}.!")
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def _utf16_len(text: str) -> int:
    """Telegram measures text and entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class RateLimits:
    """Telegram's flood limits (Bot FAQ). A private chat is a token bucket: ``private_burst`` at once, then
    ``per_private_chat_per_s``; a group allows ``per_group_per_min`` in any rolling minute; all chats together
    ``global_per_s`` in any rolling second."""

    per_private_chat_per_s: float = 1.0
    per_group_per_min: int = 20
    global_per_s: int = 30
    enabled: bool = True
    private_burst: int = 3


@dataclass
class BotMessage:
    """A message the bot has in a chat, in its current state. ``text``/``caption`` are what the user sees
    (HTML tags removed); ``raw_text`` is what the bot sent."""

    message_id: int
    chat_id: int
    text: str | None
    caption: str | None
    kind: str  # "text" | "photo" | "document"
    reply_markup: dict[str, Any] | None = None
    photo_bytes: bytes | None = None
    document_bytes: bytes | None = None
    edits: int = 0
    date: int = 0
    file_name: str | None = None
    parse_mode: str | None = None
    raw_text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to_message_id: int | None = None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """Inline buttons as (text, callback_data); a URL button gives its url instead."""
        return _inline_buttons(self.reply_markup)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("photo_bytes", "document_bytes"):
            if data[key] is not None:
                data[key] = base64.b64encode(data[key]).decode()
        return data


def _inline_buttons(markup: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        (str(b.get("text", "")), str(b.get("callback_data", b.get("url", ""))))
        for row in markup["inline_keyboard"]
        for b in row
    ]


class TelegramAPIError(Exception):
    """An error answer, shaped exactly as Telegram sends it."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> TelegramAPIError:
    return TelegramAPIError(400, f"Bad Request: {description}")


@dataclass
class _Upload:
    data: bytes
    filename: str
    content_type: str | None = None


@dataclass
class _Chat:
    id: int
    type: str  # private | group | supergroup | channel
    title: str | None = None
    first_name: str | None = None
    username: str | None = None
    blocked: bool = False  # private: the user blocked the bot
    started: bool = True  # private: the user has ever written to the bot
    bot_status: str = "member"  # groups: member | administrator | kicked | left
    migrated_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.first_name or "User"
            if self.username:
                data["username"] = self.username
        else:
            data["title"] = self.title or ""
        return data


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    kind: str  # photo | document
    file_name: str | None = None
    mime_type: str | None = None


@dataclass
class _Injection:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None


@dataclass
class _Callback:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    created: float
    answered: bool = False


class _RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._private: dict[int, tuple[float, float]] = {}  # chat -> (tokens, at)
        self._groups: dict[int, deque[float]] = {}
        self._global: deque[float] = deque()

    def retry_after(self, chat: _Chat, now: float) -> float | None:
        """Seconds until this send would be allowed, or None if it is allowed now."""
        lim = self.limits
        waits: list[float] = []
        while self._global and self._global[0] <= now - 1.0:
            self._global.popleft()
        if len(self._global) >= lim.global_per_s:
            waits.append(self._global[0] + 1.0 - now)
        if chat.type == "private":
            tokens = self._tokens(chat.id, now)
            if tokens < 1.0:
                waits.append((1.0 - tokens) / lim.per_private_chat_per_s)
        else:
            window = self._groups.setdefault(chat.id, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= lim.per_group_per_min:
                waits.append(window[0] + 60.0 - now)
        return max(waits) if waits else None

    def record(self, chat: _Chat, now: float) -> None:
        self._global.append(now)
        if chat.type == "private":
            self._private[chat.id] = (self._tokens(chat.id, now) - 1.0, now)
        else:
            self._groups.setdefault(chat.id, deque()).append(now)

    def _tokens(self, chat_id: int, now: float) -> float:
        burst = float(self.limits.private_burst)
        tokens, at = self._private.get(chat_id, (burst, now))
        return min(burst, tokens + max(0.0, now - at) * self.limits.per_private_chat_per_s)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: plain text and entities, or the Bad Request Telegram would answer."""
    out: list[str] = []
    pos16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, str]]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            offset = len(text[:i].encode())
            m = _TAG_RE.match(text, i)
            if m is None:
                raise _bad(f"can't parse entities: Unexpected end of name token at byte offset {offset}")
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in _HTML_ENTITY_TYPES:
                kind = "end" if closing else "start"
                raise _bad(f'can\'t parse entities: Unsupported {kind} tag "{name}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'expected "</{stack[-1][0]}>", ' if stack else ""
                    raise _bad(
                        f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                        f'{expected}found "</{name}>"'
                    )
                _, start, attrs = stack.pop()
                if pos16 > start:
                    entities.append(_html_entity(name, start, pos16 - start, attrs))
            else:
                attrs = {
                    a.group(1).lower(): a.group(2) or a.group(3) or a.group(4) or ""
                    for a in _ATTR_RE.finditer(m.group(3))
                }
                stack.append((name, pos16, attrs))
            i = m.end()
            continue
        piece = ch
        if ch == "&" and (em := _HTML_ENTITY_RE.match(text, i)):
            piece = html.unescape(em.group(0))
            i = em.end()
        else:
            i += 1
        out.append(piece)
        pos16 += _utf16_len(piece)
    if stack:
        raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1][0]}\"")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _html_entity(tag: str, offset: int, length: int, attrs: dict[str, str]) -> dict[str, Any]:
    entity: dict[str, Any] = {"type": _HTML_ENTITY_TYPES[tag], "offset": offset, "length": length}
    if tag == "a":
        entity["url"] = attrs.get("href", "")
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def parse_markdown_v2(text: str) -> str:
    """MarkdownV2 to plain text; unescaped reserved characters are rejected as Telegram does."""
    out: list[str] = []
    i = 0
    in_code = False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
            i += 3 if text.startswith("```", i) else 1
            continue
        if in_code:
            out.append(ch)
        elif ch == "]" and text.startswith("](", i):
            end = text.find(")", i)
            i = end if end != -1 else len(text)
        elif ch in "*_~|[]()":
            pass  # markup
        elif ch in _MDV2_RESERVED and not (ch == ">" and (i == 0 or text[i - 1] == "\n")):
            raise _bad(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with the "
                "preceding '\\'"
            )
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, read from its header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a multipart/form-data body held in memory (a webhook reply carrying a method call)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if m is None:
        return {}
    fields: dict[str, Any] = {}
    for part in body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        # Each part is CRLF headers CRLF CRLF content CRLF; the content itself may end in CR or LF bytes.
        head, _, content = part.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'(?<![\w])name="([^"]*)"', disposition)
        if name is None:
            continue
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename is not None:
            fields[name.group(1)] = _Upload(content, filename.group(1))
        else:
            fields[name.group(1)] = content.decode()
    return fields


class BotAPIEmulator:
    """The Bot API server plus the Telegram world around the bot. See the module docstring."""

    def __init__(
        self,
        *,
        token_check: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        rate_limits: RateLimits | None = None,
        privacy_mode: bool = True,
        callback_timeout: float | None = 15.0,
    ) -> None:
        self.token_check = token_check
        self.monotonic = monotonic
        self.rate_limits = rate_limits or RateLimits()
        # Telegram's group privacy mode: only commands, replies to the bot and mentions reach a non-admin bot.
        self.privacy_mode = privacy_mode
        # A callback query answered later than this (on `monotonic`) is "too old"; None disables expiry.
        self.callback_timeout = callback_timeout
        self.bot_id = BOT_ID
        self.bot_username = BOT_USERNAME
        self.token = f"{BOT_ID}:AAEmulatorTokenForBikeWerkOpsBot00000"

        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.count_429 = 0
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.sent_updates: dict[int, dict[str, Any]] = {}  # every update ever queued, by id (redeliver())
        self.files: dict[str, bytes] = {}

        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, _Chat] = {}
        # chat -> message id -> the Message as Telegram sends it (user and bot messages alike)
        self._messages: dict[int, dict[int, dict[str, Any]]] = {}
        self._bot_messages: dict[int, dict[int, BotMessage]] = {}  # chat -> id -> state, in send order
        self._next_message_id: dict[int, int] = {}
        self._file_meta: dict[str, _File] = {}
        self._files_by_path: dict[str, _File] = {}
        self._file_seq = itertools.count(1)
        self._callbacks: dict[str, _Callback] = {}
        self._callback_seq = itertools.count(1)
        self._injections: list[_Injection] = []
        self._limiter = _RateLimiter(self.rate_limits)
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # What each bot message last looked like to Telegram, for "message is not modified".
        self._content_keys: dict[tuple[int, int], Any] = {}

        self._updates: list[dict[str, Any]] = []
        self._update_seq = itertools.count(1)
        # Redelivered updates the poller has not had yet: its offset, past them already, must not drop them.
        self._redelivered: set[int] = set()
        self._allowed_updates: set[str] | None = None
        self._poll_generation = 0
        # Two "pulse" events: set and replaced on every change, so any number of waiters wake. They play the
        # role of asyncio.Condition.notify_all, which needs the lock held and so cannot be called from the
        # synchronous world-setup methods.
        self._update_pulse = asyncio.Event()
        self._state_pulse = asyncio.Event()

        self._webhook: dict[str, Any] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closing = False

        methods: list[tuple[str, Callable[[dict[str, Any]], Awaitable[Any]]]] = [
            ("getMe", self._get_me),
            ("getUpdates", self._get_updates),
            ("setWebhook", self._set_webhook),
            ("deleteWebhook", self._delete_webhook),
            ("getWebhookInfo", self._get_webhook_info),
            ("sendMessage", self._send_message),
            ("sendPhoto", self._send_photo),
            ("sendDocument", self._send_document),
            ("editMessageText", self._edit_message_text),
            ("editMessageCaption", self._edit_message_caption),
            ("editMessageReplyMarkup", self._edit_message_reply_markup),
            ("deleteMessage", self._delete_message),
            ("answerCallbackQuery", self._answer_callback_query),
            ("getFile", self._get_file),
            ("setMyCommands", self._set_my_commands),
            ("getMyCommands", self._get_my_commands),
            ("deleteMyCommands", self._delete_my_commands),
            ("getChat", self._get_chat),
            ("getChatMember", self._get_chat_member),
            ("leaveChat", self._leave_chat),
            ("sendChatAction", self._send_chat_action),
            ("close", self._harmless),
            ("logOut", self._harmless),
        ]
        self._methods = {name.lower(): (name, fn) for name, fn in methods}

    # ------------------------------------------------------------------ server

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port) and return the base url for TelegramAPIServer.from_base."""
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_post("/control/{action}", self._handle_control_post)
        app.router.add_get("/control/transcript/{chat_id}", self._handle_control_transcript)
        app.router.add_get("/control/{what}", self._handle_control_get)
        self._closing = False
        # A short shutdown timeout: a long poll whose client went away must not hold stop() for a minute.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        if self._webhook.get("url"):
            self._start_webhook_worker()
        return self._base_url

    async def stop(self) -> None:
        self._closing = True
        self._pulse_updates()
        self._notify()
        await self._stop_webhook_worker()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotAPIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not started: await emulator.start() first")
        return self._base_url

    def make_bot(self, token: str | None = None, *, default: DefaultBotProperties | None = None) -> Bot:
        """A real aiogram Bot pointed at this emulator; the default token makes ``bot.id == bot_id``."""
        session = AiohttpSession(api=TelegramAPIServer.from_base(self.base_url))
        return Bot(token=token or self.token, session=session, default=default)

    # ------------------------------------------------------------------ world setup

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": self.bot_username,
        }

    def add_user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        language_code: str | None = None,
        username: str | None = None,
        started: bool = True,
    ) -> None:
        """A Telegram user and their private chat with the bot. ``started=False``: the user never opened the
        bot, so the bot cannot write first (403) until the user sends something."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = _Chat(
                user_id, "private", first_name=first_name, username=username, started=started
            )
        else:
            chat.first_name, chat.username = first_name, username
        self._notify()

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        kind: str = "supergroup",
        admin: bool = False,
        added_by: int | None = None,
    ) -> None:
        """A group the bot is in (negative id). ``admin``: the bot is an administrator (sees every message).
        ``added_by``: also enqueue the my_chat_member update Telegram sends when that user adds the bot."""
        if chat_id >= 0:
            raise ValueError("group ids are negative")
        if kind not in ("group", "supergroup", "channel"):
            raise ValueError(f"unknown group kind {kind!r}")
        self._chats[chat_id] = _Chat(
            chat_id, kind, title=title, bot_status="administrator" if admin else "member"
        )
        if added_by is not None:
            self._enqueue_my_chat_member(
                self._chats[chat_id], added_by, "left", self._chats[chat_id].bot_status
            )
        self._notify()

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: later sends fail with 403; the bot gets a my_chat_member update."""
        chat = self._private_chat(user_id)
        chat.blocked = True
        self._enqueue_my_chat_member(chat, user_id, "member", "kicked")

    def unblock_bot(self, user_id: int) -> None:
        chat = self._private_chat(user_id)
        if chat.blocked:
            chat.blocked = False
            self._enqueue_my_chat_member(chat, user_id, "kicked", "member")

    def kick_bot(self, chat_id: int, by_user_id: int) -> None:
        """A group admin removes the bot: later sends fail with 403, my_chat_member update enqueued."""
        chat = self._group(chat_id)
        old = chat.bot_status
        chat.bot_status = "kicked"
        self._enqueue_my_chat_member(chat, by_user_id, old, "kicked")

    def migrate_group(self, chat_id: int) -> int:
        """The group is upgraded to a supergroup with a new id (returned). Later sends to the old id fail with
        400 and ``migrate_to_chat_id``; both service messages are enqueued as Telegram does."""
        old = self._group(chat_id)
        if old.migrated_to is not None:
            raise ValueError(f"chat {chat_id} was already migrated to {old.migrated_to}")
        new_id = -(10**12 + abs(chat_id))
        new = _Chat(new_id, "supergroup", title=old.title, bot_status=old.bot_status)
        self._chats[new_id] = new
        old.migrated_to = new_id
        for chat, key, value in ((old, "migrate_to_chat_id", new_id), (new, "migrate_from_chat_id", chat_id)):
            msg = {
                "message_id": self._new_message_id(chat.id),
                "date": int(time.time()),
                "chat": chat.to_json(),
                key: value,
            }
            self._store_message(chat.id, msg)
            self._enqueue("message", msg)
        return new_id

    def inject_error(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (only for ``chat_id`` if given) fail with this error."""
        self._injections.append(
            _Injection(method.lower(), error_code, description, retry_after, times, chat_id)
        )

    # ------------------------------------------------------------------ what users do

    def send_text(
        self, user_id: int, text: str, *, chat_id: int | None = None, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """The user writes ``text`` (a command is just text starting with "/"). Returns the Message dict."""
        if not text:
            raise ValueError("Telegram clients do not send empty messages")
        msg = self._user_message(user_id, chat_id, reply_to_message_id)
        msg["text"] = text
        if entities := _command_entities(text):
            msg["entities"] = entities
        return self._deliver_user_message(msg)

    def send_photo(
        self, user_id: int, data: bytes, *, chat_id: int | None = None, caption: str | None = None
    ) -> dict[str, Any]:
        """The user sends a photo; its bytes are registered as a file the bot can download."""
        msg = self._user_message(user_id, chat_id, None)
        msg["photo"] = self._photo_sizes(self._register_file(data, "photo"))
        self._add_caption(msg, caption)
        return self._deliver_user_message(msg)

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        *,
        chat_id: int | None = None,
        caption: str | None = None,
        mime_type: str = "application/pdf",
    ) -> dict[str, Any]:
        msg = self._user_message(user_id, chat_id, None)
        msg["document"] = self._document_json(self._register_file(data, "document", file_name, mime_type))
        self._add_caption(msg, caption)
        return self._deliver_user_message(msg)

    def press_button(self, user_id: int, chat_id: int, message_id: int, callback_data: str) -> str:
        """The user presses an inline button carrying ``callback_data`` under the bot's message. Any data is
        accepted (a modified client can forge it); the message must exist. Returns the callback query id."""
        user = self._user(user_id)
        stored = self._messages.get(chat_id, {}).get(message_id)
        if stored is None or message_id not in self._bot_messages.get(chat_id, {}):
            raise LookupError(
                f"no bot message {message_id} in chat {chat_id}; {self._describe_buttons(chat_id)}"
            )
        query_id = str(4_000_000_000_000_000_000 + next(self._callback_seq) * 7919)
        self._callbacks[query_id] = _Callback(query_id, user_id, chat_id, message_id, self.monotonic())
        self._enqueue(
            "callback_query",
            {
                "id": query_id,
                "from": user,
                "message": stored,
                "chat_instance": self._chat_instance(chat_id),
                "data": callback_data,
            },
        )
        return query_id

    def press(self, user_id: int, chat_id: int, text_contains: str) -> str:
        """Press the button whose text contains ``text_contains`` (case-insensitive; an exact match wins)
        on the latest bot message in the chat that has one."""
        needle = text_contains.casefold()
        for msg in reversed(list(self._bot_messages.get(chat_id, {}).values())):
            rows = (msg.reply_markup or {}).get("inline_keyboard") or []
            found = [
                b for row in rows for b in row if "callback_data" in b and needle in str(b["text"]).casefold()
            ]
            exact = [b for b in found if str(b["text"]).casefold() == needle]
            if len(found) > 1 and len(exact) != 1:
                texts = [b["text"] for b in found]
                raise LookupError(
                    f"{text_contains!r} matches several buttons of message {msg.message_id}: {texts}"
                )
            if found:
                button = (exact or found)[0]
                return self.press_button(user_id, chat_id, msg.message_id, str(button["callback_data"]))
        raise LookupError(
            f"no button containing {text_contains!r} in chat {chat_id}; {self._describe_buttons(chat_id)}"
        )

    def redeliver(self, update_id: int) -> None:
        """Telegram sends an update the bot already had once more, with its original id (a webhook answer that
        got lost, a poller that crashed before confirming the offset); ids still arrive in ascending order."""
        if all(u["update_id"] != update_id for u in self._updates):  # one not yet confirmed is not copied
            self._updates.append(copy.deepcopy(self.sent_updates[update_id]))
            self._updates.sort(key=lambda u: int(u["update_id"]))
        self._redelivered.add(update_id)
        self._pulse_updates()
        self._notify()

    # ------------------------------------------------------------------ what tests read

    def transcript(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in the chat, oldest first, as they are now (copies)."""
        return [dataclasses.replace(m) for m in self._bot_messages.get(chat_id, {}).values()]

    def last_message(self, chat_id: int) -> BotMessage | None:
        messages = self._bot_messages.get(chat_id, {})
        return dataclasses.replace(next(reversed(messages.values()))) if messages else None

    def buttons(self, chat_id: int, message_id: int | None = None) -> list[tuple[str, str]]:
        """(text, callback_data) of the given message, else of the latest bot message with a keyboard."""
        messages = self._bot_messages.get(chat_id, {})
        if message_id is not None:
            if message_id not in messages:
                raise LookupError(f"no bot message {message_id} in chat {chat_id}")
            return messages[message_id].buttons
        for msg in reversed(list(messages.values())):
            if msg.buttons:
                return msg.buttons
        return []

    def unanswered_callbacks(self) -> list[str]:
        return [q.id for q in self._callbacks.values() if not q.answered]

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """Parameters of every call of ``method`` (case-insensitive), in order."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by the bot (by a later getUpdates offset or a webhook 2xx)."""
        return copy.deepcopy(self._updates)

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    @property
    def webhook_url(self) -> str:
        return str(self._webhook.get("url", ""))

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the public API, used with the loop's deadline
        *,
        recheck_every: float | None = None,
    ) -> None:
        """Wait until ``predicate()`` is true, re-checking on every Bot API call and world change.
        ``recheck_every`` also re-checks periodically, for predicates on state outside the emulator."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_report(predicate, timeout))
            pulse = self._state_pulse
            wait = remaining if recheck_every is None else min(remaining, recheck_every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pulse.wait(), wait)

    # ------------------------------------------------------------------ internals: world

    def _notify(self) -> None:
        pulse, self._state_pulse = self._state_pulse, asyncio.Event()
        pulse.set()

    def _pulse_updates(self) -> None:
        pulse, self._update_pulse = self._update_pulse, asyncio.Event()
        pulse.set()

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        # A snapshot: a later edit must not change what the update says happened.
        update_id = next(self._update_seq)
        update = {"update_id": update_id, kind: copy.deepcopy(payload)}
        self._updates.append(update)
        self.sent_updates[update_id] = update
        self._pulse_updates()
        self._notify()

    def _enqueue_my_chat_member(self, chat: _Chat, by_user_id: int, old: str, new: str) -> None:
        def member(status: str) -> dict[str, Any]:
            data: dict[str, Any] = {"status": status, "user": self.bot_user}
            if status == "kicked":
                data["until_date"] = 0
            if status == "administrator":
                data.update(dict.fromkeys(_ADMIN_RIGHTS, True), can_be_edited=False, is_anonymous=False)
            return data

        by = self.bot_user if by_user_id == self.bot_id else self._user(by_user_id)
        self._enqueue(
            "my_chat_member",
            {
                "chat": chat.to_json(),
                "from": by,
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def _user(self, user_id: int) -> dict[str, Any]:
        if user_id not in self._users:
            raise LookupError(f"unknown user {user_id}: call add_user({user_id}, ...) first")
        return self._users[user_id]

    def _private_chat(self, user_id: int) -> _Chat:
        self._user(user_id)
        return self._chats[user_id]

    def _group(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None or chat.type == "private":
            raise LookupError(f"unknown group {chat_id}: call add_group({chat_id}, ...) first")
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        self._next_message_id[chat_id] = self._next_message_id.get(chat_id, 0) + 1
        return self._next_message_id[chat_id]

    def _store_message(self, chat_id: int, msg: dict[str, Any]) -> None:
        self._messages.setdefault(chat_id, {})[msg["message_id"]] = msg

    def _user_message(self, user_id: int, chat_id: int | None, reply_to: int | None) -> dict[str, Any]:
        user = self._user(user_id)
        if chat_id is None or chat_id == user_id:
            chat = self._chats[user_id]
            chat.started = True
            self.unblock_bot(user_id)  # writing to a blocked bot unblocks it in every client
        else:
            chat = self._group(chat_id)
            if chat.type == "channel":
                raise ValueError("users do not write in channels (channel posts are not emulated)")
            if chat.migrated_to is not None:
                raise ValueError(f"group {chat_id} was migrated to {chat.migrated_to}; users write there now")
        msg: dict[str, Any] = {
            "message_id": self._new_message_id(chat.id),
            "from": user,
            "date": int(time.time()),
            "chat": chat.to_json(),
        }
        if reply_to is not None:
            original = self._messages.get(chat.id, {}).get(reply_to)
            if original is None:
                raise LookupError(f"no message {reply_to} in chat {chat.id} to reply to")
            msg["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
        return msg

    def _add_caption(self, msg: dict[str, Any], caption: str | None) -> None:
        if caption:
            msg["caption"] = caption
            if entities := _command_entities(caption):
                msg["caption_entities"] = entities

    def _deliver_user_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        chat_id = msg["chat"]["id"]
        self._store_message(chat_id, msg)
        if self._bot_sees(self._chats[chat_id], msg):
            self._enqueue("message", msg)
        else:
            self._notify()
        return copy.deepcopy(msg)

    def _bot_sees(self, chat: _Chat, msg: dict[str, Any]) -> bool:
        """Whether Telegram delivers this message to the bot (group privacy mode)."""
        if chat.type == "private":
            return True
        if chat.bot_status not in ("member", "administrator"):
            return False
        if not self.privacy_mode or chat.bot_status == "administrator":
            return True
        text = str(msg.get("text") or msg.get("caption") or "")
        if m := _COMMAND_RE.match(text):
            return "@" not in m.group(0) or m.group(0).lower().endswith("@" + self.bot_username.lower())
        replied = msg.get("reply_to_message") or {}
        return (replied.get("from") or {}).get("id") == self.bot_id or f"@{self.bot_username}" in text

    def _chat_instance(self, chat_id: int) -> str:
        return str((chat_id * 2654435761 + 0x5DEECE66D) % (2**63) - 2**62)

    def _register_file(
        self, data: bytes, kind: str, file_name: str | None = None, mime_type: str | None = None
    ) -> _File:
        n = next(self._file_seq)
        # Real file ids are ~70 characters: a bot putting one in callback data must fail here as there.
        file_id = ("AgACAgIAAxkBAAI" if kind == "photo" else "BQACAgIAAxkBAAI") + secrets.token_urlsafe(42)
        ext = ".jpg" if kind == "photo" else (mimetypes.guess_extension(mime_type or "") or "")
        if kind == "document" and file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1]
        folder = "photos" if kind == "photo" else "documents"
        f = _File(
            file_id,
            "AQAD" + secrets.token_urlsafe(9),
            data,
            f"{folder}/file_{n}{ext}",
            kind,
            file_name,
            mime_type,
        )
        self._file_meta[file_id] = f
        self._files_by_path[f.file_path] = f
        self.files[file_id] = data
        return f

    def _photo_sizes(self, f: _File) -> list[dict[str, Any]]:
        width, height = _image_size(f.data) or (1280, 960)
        scale = min(1.0, 90 / max(width, height, 1))
        # A thumbnail first, the original last (bots take photo[-1]); both download the same stored bytes.
        thumb = dataclasses.replace(
            f, file_id=f.file_id[:-4] + "thmb", file_unique_id=f.file_unique_id + "_t"
        )
        self._file_meta[thumb.file_id] = thumb
        self.files[thumb.file_id] = f.data
        return [
            {
                "file_id": thumb.file_id,
                "file_unique_id": thumb.file_unique_id,
                "file_size": len(f.data),
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
            },
            {
                "file_id": f.file_id,
                "file_unique_id": f.file_unique_id,
                "file_size": len(f.data),
                "width": width,
                "height": height,
            },
        ]

    @staticmethod
    def _document_json(f: _File) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": len(f.data),
        }
        if f.file_name:
            data["file_name"] = f.file_name
        if f.mime_type:
            data["mime_type"] = f.mime_type
        return data

    def _describe_buttons(self, chat_id: int) -> str:
        lines = [
            f"message {m.message_id}: {m.buttons}"
            for m in self._bot_messages.get(chat_id, {}).values()
            if m.buttons
        ]
        return "buttons in the chat: " + ("; ".join(lines) if lines else "none")

    def _timeout_report(self, predicate: Callable[[], bool], timeout: float) -> str:
        try:
            what = inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            what = getattr(predicate, "__qualname__", repr(predicate))
        recent = [f"{name}({_short(params)})" for name, params in self.calls[-8:]]
        polled = any(name == "getUpdates" for name, _ in self.calls[-20:])
        lines = [
            f"wait_for: condition still false after {timeout}s: {what}",
            f"  last Bot API calls: {recent or 'none'}",
            f"  updates not yet taken by the bot: {len(self._updates)}"
            + ("" if polled or self._webhook.get("url") else " (no recent getUpdates: is the bot polling?)"),
            f"  unanswered callback queries: {self.unanswered_callbacks()}",
        ]
        for chat_id, messages in self._bot_messages.items():
            if messages:
                last = next(reversed(messages.values()))
                shown = (last.text or last.caption or last.kind)[:80]
                lines.append(f"  chat {chat_id}: {len(messages)} bot messages, last: {shown!r}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ internals: HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if self.token_check and (error := self._check_token(token)) is not None:
            return web.json_response(error.payload(), status=error.code)
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                return web.json_response(_bad("can't parse JSON").payload(), status=400)
            params.update(body if isinstance(body, dict) else {})
        elif request.method == "POST" and request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    params[key] = _Upload(value.file.read(), value.filename, value.content_type)
                else:
                    params[key] = value if isinstance(value, str) else bytes(value).decode()
        status, payload = await self._execute(method, params)
        return web.json_response(payload, status=status)

    def _check_token(self, token: str) -> TelegramAPIError | None:
        if not re.fullmatch(r"\d+:[\w-]+", token):
            return TelegramAPIError(404, "Not Found")
        if token != self.token:
            return TelegramAPIError(401, "Unauthorized")
        return None

    async def _execute(self, method: str, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entry = self._methods.get(method.lower())
        params = _normalize(raw)
        self.calls.append((entry[0] if entry else method, _summarize(params)))
        self._notify()
        if entry is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            self._check_injected(entry[0], params)
            return 200, {"ok": True, "result": await entry[1](params)}
        except TelegramAPIError as e:
            if e.code == 429:
                self.count_429 += 1
            return e.code, e.payload()
        finally:
            self._notify()

    def _check_injected(self, method: str, params: dict[str, Any]) -> None:
        for inj in self._injections:
            if inj.method != method.lower() or inj.times <= 0:
                continue
            if inj.chat_id is not None and params.get("chat_id") != inj.chat_id:
                continue
            inj.times -= 1
            self._injections = [i for i in self._injections if i.times > 0]
            extra = {"retry_after": inj.retry_after} if inj.retry_after is not None else None
            raise TelegramAPIError(inj.error_code, inj.description, extra)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if self.token_check and self._check_token(request.match_info["token"]) is not None:
            raise web.HTTPNotFound()
        f = self._files_by_path.get(request.match_info["path"])
        if f is None:
            raise web.HTTPNotFound()
        return web.Response(body=f.data, content_type=f.mime_type or "application/octet-stream")

    # ------------------------------------------------------------------ internals: control API

    async def _handle_control_post(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            body = await request.json()
            result = self._control(action, body)
        except (LookupError, ValueError, TypeError) as e:
            return web.json_response({"ok": False, "description": str(e)}, status=400)
        if result is _UNKNOWN:
            return web.json_response(
                {"ok": False, "description": f"unknown control action {action}"}, status=404
            )
        return web.json_response({"ok": True, "result": result})

    def _control(self, action: str, body: dict[str, Any]) -> Any:
        """JSON keys are the keyword names of the Python methods; bytes travel as base64 in ``data``."""
        name = _CONTROL_ACTIONS.get(action)
        if name is None:
            return _UNKNOWN
        if action == "press" and "text_contains" in body:
            name = "press"
        if "data" in body:
            body = {**body, "data": base64.b64decode(body["data"])}
        method: Callable[..., Any] = getattr(self, name)
        result = method(**body)
        return True if result is None else result

    async def _handle_control_transcript(self, request: web.Request) -> web.Response:
        chat_id = int(request.match_info["chat_id"])
        return web.json_response({"ok": True, "result": [m.to_json() for m in self.transcript(chat_id)]})

    async def _handle_control_get(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        state: dict[str, Any] = {
            "calls": [[name, params] for name, params in self.calls],
            "callback_answers": self.callback_answers,
            "unanswered_callbacks": self.unanswered_callbacks(),
            "count_429": self.count_429,
            "pending_updates": self._updates,
        }
        if what == "state":
            return web.json_response({"ok": True, "result": state})
        if what in state:
            return web.json_response({"ok": True, "result": state[what]})
        return web.json_response({"ok": False, "description": f"unknown control resource {what}"}, status=404)

    # ------------------------------------------------------------------ internals: updates and webhook

    async def _get_me(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self._webhook.get("url"):
            raise TelegramAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                "the webhook first",
            )
        if self._closing:
            # A poller left running past stop() backs off on 502 (Telegram's outage answer), not spins.
            raise TelegramAPIError(502, "Bad Gateway")
        offset = _int(p, "offset", 0)
        limit = min(max(_int(p, "limit", 100), 1), 100)
        timeout = max(_int(p, "timeout", 0), 0)
        self._set_allowed(p.get("allowed_updates"))
        # A newer getUpdates terminates an older one still waiting, as Telegram does for two bot instances.
        self._poll_generation += 1
        generation = self._poll_generation
        self._pulse_updates()
        if offset > 0:
            self._updates = [
                u for u in self._updates if u["update_id"] >= offset or u["update_id"] in self._redelivered
            ]
        elif offset < 0:
            self._updates = self._updates[offset:]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = self._deliverable()[:limit]
            remaining = deadline - loop.time()
            if ready or remaining <= 0 or self._closing:
                self._redelivered.difference_update(u["update_id"] for u in ready)
                return copy.deepcopy(ready)
            pulse = self._update_pulse
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pulse.wait(), remaining)
            if generation != self._poll_generation:
                raise TelegramAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                    "is running",
                )

    def _set_allowed(self, allowed: Any) -> None:
        if isinstance(allowed, list):
            self._allowed_updates = set(map(str, allowed)) or None

    def _deliverable(self) -> list[dict[str, Any]]:
        """Pending updates of allowed types; others are dropped, as Telegram never keeps them."""
        allowed = self._allowed_updates

        def ok(update: dict[str, Any]) -> bool:
            kind = next(k for k in update if k != "update_id")
            return kind in allowed if allowed is not None else kind not in _NOT_DEFAULT_UPDATES

        self._updates = [u for u in self._updates if ok(u)]
        return self._updates

    async def _set_webhook(self, p: dict[str, Any]) -> bool:
        url = str(p.get("url") or "")
        if not url:
            return await self._delete_webhook(p)
        if not re.match(r"https?://", url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _bad("secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._set_allowed(p.get("allowed_updates"))
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": _int(p, "max_connections", 40),
        }
        self._webhook_error = None
        await self._stop_webhook_worker()
        if self._runner is not None:
            self._start_webhook_worker()
        return True

    async def _delete_webhook(self, p: dict[str, Any]) -> bool:
        self._webhook = {}
        self._webhook_error = None
        await self._stop_webhook_worker()
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._deliverable()),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._allowed_updates is not None:
                info["allowed_updates"] = sorted(self._allowed_updates)
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    def _start_webhook_worker(self) -> None:
        self._webhook_task = asyncio.create_task(self._webhook_loop(), name="emulator-webhook")

    async def _stop_webhook_worker(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self) -> None:
        """Deliver updates one at a time, in order; retry with backoff until the bot answers 2xx."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        delay = 0.05
        # A method run from a webhook reply may delete or replace the webhook: this worker then retires.
        while not self._closing and self._webhook.get("url") and self._webhook_task is asyncio.current_task():
            pending = self._deliverable()
            if not pending:
                await self._update_pulse.wait()
                continue
            update = pending[0]
            headers = {}
            if self._webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = str(self._webhook["secret_token"])
            try:
                async with self._client.post(
                    self._webhook["url"],
                    json=update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as resp:
                    body, ctype = await resp.read(), resp.headers.get("Content-Type", "")
                ok = 200 <= resp.status < 300
                error = None if ok else f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as e:
                error, body, ctype = f"Connection failed: {type(e).__name__}", b"", ""
            if error is None:
                self._updates = [u for u in self._updates if u["update_id"] != update["update_id"]]
                self._webhook_error = None
                delay = 0.05
                await self._run_webhook_reply(body, ctype)
            else:
                self._webhook_error = (int(time.time()), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            self._notify()

    async def _run_webhook_reply(self, body: bytes, content_type: str) -> None:
        """A webhook answer may carry one method call; Telegram executes it and reports nothing back."""
        params: dict[str, Any] = {}
        if content_type.startswith("multipart/"):
            params = _parse_multipart(body, content_type)
        elif content_type.startswith("application/json") and body:
            with contextlib.suppress(ValueError):
                decoded = json.loads(body)
                params = decoded if isinstance(decoded, dict) else {}
        method = params.pop("method", None)
        if isinstance(method, str):
            await self._execute(method, params)

    # ------------------------------------------------------------------ internals: sending

    def _target(self, p: dict[str, Any]) -> _Chat:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat = self._chats.get(raw) if isinstance(raw, int) else None
        if chat is None and isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.username and f"@{c.username}" == raw and c.type != "private"
                ),
                None,
            )
        if chat is None:
            raise _bad("chat not found")
        if chat.migrated_to is not None:
            raise TelegramAPIError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if chat.type == "private":
            if chat.blocked:
                raise TelegramAPIError(403, "Forbidden: bot was blocked by the user")
            if not chat.started:
                raise TelegramAPIError(403, "Forbidden: bot can't initiate conversation with a user")
        elif chat.bot_status == "kicked":
            raise TelegramAPIError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        elif chat.bot_status == "left":
            raise TelegramAPIError(403, f"Forbidden: bot is not a member of the {chat.type} chat")
        return chat

    def _rate_limit(self, method: str, chat: _Chat) -> None:
        if not self.rate_limits.enabled or method not in _RATE_LIMITED:
            return
        now = self.monotonic()
        wait = self._limiter.retry_after(chat, now)
        if wait is not None:
            seconds = max(1, math.ceil(wait - 1e-9))
            raise TelegramAPIError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})
        self._limiter.record(chat, now)

    def _render(
        self, text: str, p: dict[str, Any], entities_key: str
    ) -> tuple[str, list[dict[str, Any]], Any]:
        """Plain text, entities, and a key that is equal exactly when Telegram would see the same content."""
        mode = str(p.get("parse_mode") or "").lower()
        explicit = p.get(entities_key)
        if isinstance(explicit, list):
            return text, explicit, (text, json.dumps(explicit, sort_keys=True))
        if mode == "html":
            plain, entities = parse_html(text)
            return plain, entities, (plain, json.dumps(entities, sort_keys=True))
        if mode == "markdownv2":
            return parse_markdown_v2(text), [], (text, mode)
        if mode == "markdown":
            return re.sub(r"[*_`\[]|\]\([^)]*\)", "", text), [], (text, mode)
        return text, [], (text, "[]")

    def _text(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]], Any]:
        text = p.get("text")
        plain, entities, key = self._render(str(text or ""), p, "entities")
        if not plain.strip():
            raise _bad("message text is empty")
        if _utf16_len(plain) > TEXT_LIMIT:
            raise _bad("message is too long")
        return plain, entities, key

    def _caption(self, p: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], Any]:
        caption = p.get("caption")
        if not caption:
            return None, [], None
        plain, entities, key = self._render(str(caption), p, "caption_entities")
        if _utf16_len(plain) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return plain, entities, key

    @staticmethod
    def _markup(p: dict[str, Any], *, inline_only: bool = False) -> dict[str, Any] | None:
        markup = p.get("reply_markup")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            if inline_only:
                raise _bad("inline keyboard expected")
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad(
                'can\'t parse inline keyboard button: field "inline_keyboard" must be an Array of Arrays'
            )
        count = 0
        for row in rows:
            for button in row:
                count += 1
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad(_TEXT_BUTTONS)
                actions = set(button) - {"text"}
                if not actions:
                    raise _bad(_TEXT_BUTTONS)
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
                        raise _bad("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+$", str(button["url"])):
                    raise _bad("BUTTON_URL_INVALID")
        if count > 100:
            raise _bad("reply markup is too long")
        return markup

    def _reply_to(self, chat: _Chat, p: dict[str, Any]) -> dict[str, Any] | None:
        params = p.get("reply_parameters")
        reply = params if isinstance(params, dict) else {}
        target = reply.get("message_id", p.get("reply_to_message_id"))
        if target is None:
            return None
        original = self._messages.get(chat.id, {}).get(target) if isinstance(target, int) else None
        if original is None:
            if reply.get("allow_sending_without_reply") or p.get("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return {k: v for k, v in original.items() if k != "reply_to_message"}

    def _bot_message(
        self, chat: _Chat, markup: dict[str, Any] | None, reply: dict[str, Any] | None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": self._new_message_id(chat.id),
            "from": self.bot_user,
            "chat": chat.to_json(),
            "date": int(time.time()),
        }
        if reply is not None:
            msg["reply_to_message"] = reply
        if markup and "inline_keyboard" in markup:
            msg["reply_markup"] = markup  # Message.reply_markup is an inline keyboard only
        return msg

    def _keep(self, chat: _Chat, msg: dict[str, Any], state: BotMessage, content_key: Any) -> dict[str, Any]:
        self._store_message(chat.id, msg)
        state.date = msg["date"]
        self._bot_messages.setdefault(chat.id, {})[state.message_id] = state
        self._content_keys[(chat.id, state.message_id)] = content_key
        return msg

    async def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._target(p)
        plain, entities, key = self._text(p)
        markup = self._markup(p)
        reply = self._reply_to(chat, p)
        self._rate_limit("sendMessage", chat)
        msg = self._bot_message(chat, markup, reply)
        msg["text"] = plain
        if entities:
            msg["entities"] = entities
        state = BotMessage(
            message_id=msg["message_id"],
            chat_id=chat.id,
            text=plain,
            caption=None,
            kind="text",
            reply_markup=markup,
            parse_mode=p.get("parse_mode"),
            raw_text=str(p["text"]),
            entities=entities,
            reply_to_message_id=reply["message_id"] if reply else None,
        )
        return self._keep(chat, msg, state, (key, _markup_key(markup)))

    def _input_file(self, p: dict[str, Any], name: str, kind: str) -> _File:
        value = p.get(name)
        if isinstance(value, _Upload):
            limit = PHOTO_UPLOAD_LIMIT if kind == "photo" else UPLOAD_LIMIT
            if not value.data:
                raise _bad("file must be non-empty")
            if len(value.data) > limit:
                raise TelegramAPIError(413, "Request Entity Too Large")
            mime = (
                value.content_type if value.content_type not in (None, "application/octet-stream") else None
            )
            mime = mime or mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
            return self._register_file(
                value.data,
                kind,
                value.filename if kind == "document" else None,
                mime if kind == "document" else None,
            )
        if isinstance(value, str) and value.startswith("attach://"):
            raise _bad(f"file attached as {value} is missing from the request")
        if isinstance(value, str) and value:
            if re.match(r"https?://", value):
                # Telegram would download the URL; the emulator has no network, so the file is empty.
                return self._register_file(
                    b"", kind, value.rsplit("/", 1)[-1] if kind == "document" else None
                )
            known = self._file_meta.get(value)
            if known is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            if kind == "photo" and known.kind != "photo":
                raise _bad("type of file mismatch")
            return known
        raise _bad(f"there is no {name} in the request")

    async def _send_photo(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "photo")

    async def _send_document(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "document")

    def _send_file(self, p: dict[str, Any], kind: Literal["photo", "document"]) -> dict[str, Any]:
        """sendPhoto / sendDocument: the same request shape, differing only in the file field."""
        chat = self._target(p)
        caption, entities, key = self._caption(p)
        markup = self._markup(p)
        reply = self._reply_to(chat, p)
        f = self._input_file(p, kind, kind)
        self._rate_limit("sendPhoto" if kind == "photo" else "sendDocument", chat)
        msg = self._bot_message(chat, markup, reply)
        msg[kind] = self._photo_sizes(f) if kind == "photo" else self._document_json(f)
        self._add_bot_caption(msg, caption, entities)
        state = BotMessage(
            message_id=msg["message_id"],
            chat_id=chat.id,
            text=None,
            caption=caption,
            kind=kind,
            reply_markup=markup,
            photo_bytes=f.data if kind == "photo" else None,
            document_bytes=f.data if kind == "document" else None,
            file_name=f.file_name if kind == "document" else None,
            parse_mode=p.get("parse_mode"),
            raw_text=p.get("caption"),
            entities=entities,
        )
        return self._keep(chat, msg, state, (key, _markup_key(markup)))

    @staticmethod
    def _add_bot_caption(msg: dict[str, Any], caption: str | None, entities: list[dict[str, Any]]) -> None:
        if caption:
            msg["caption"] = caption
            if entities:
                msg["caption_entities"] = entities

    def _editable(self, p: dict[str, Any], action: str = "edit") -> tuple[_Chat, BotMessage, dict[str, Any]]:
        if p.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")  # inline mode is not emulated
        chat = self._target(p)
        message_id = _int(p, "message_id", 0)
        stored = self._messages.get(chat.id, {}).get(message_id)
        if stored is None:
            raise _bad(f"message to {action} not found")
        state = self._bot_messages.get(chat.id, {}).get(message_id)
        if state is None:
            raise _bad("message can't be edited")
        return chat, state, stored

    def _check_modified(self, chat: _Chat, state: BotMessage, key: Any) -> None:
        if self._content_keys.get((chat.id, state.message_id)) == key:
            raise _bad(
                "message is not modified: specified new message content and reply markup are exactly the "
                "same as a current content and reply markup of the message"
            )
        self._content_keys[(chat.id, state.message_id)] = key

    @staticmethod
    def _finish_edit(state: BotMessage, stored: dict[str, Any]) -> dict[str, Any]:
        state.edits += 1
        stored["edit_date"] = int(time.time())
        if state.reply_markup and "inline_keyboard" in state.reply_markup:
            stored["reply_markup"] = state.reply_markup
        else:
            stored.pop("reply_markup", None)
        return stored

    async def _edit_message_text(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, state, stored = self._editable(p)
        if state.kind != "text":
            raise _bad("there is no text in the message to edit")
        plain, entities, key = self._text(p)
        # Telegram drops the inline keyboard when an edit does not repeat it.
        markup = self._markup(p, inline_only=True)
        self._check_modified(chat, state, (key, _markup_key(markup)))
        state.text, state.entities, state.raw_text = plain, entities, str(p["text"])
        state.parse_mode, state.reply_markup = p.get("parse_mode"), markup
        stored["text"] = plain
        stored.pop("entities", None)
        if entities:
            stored["entities"] = entities
        return self._finish_edit(state, stored)

    async def _edit_message_caption(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, state, stored = self._editable(p)
        if state.kind == "text":
            raise _bad("there is no caption in the message to edit")
        caption, entities, key = self._caption(p)
        markup = self._markup(p, inline_only=True)
        self._check_modified(chat, state, (key, _markup_key(markup)))
        state.caption, state.entities, state.raw_text = caption, entities, p.get("caption")
        state.parse_mode, state.reply_markup = p.get("parse_mode"), markup
        stored.pop("caption", None)
        stored.pop("caption_entities", None)
        self._add_bot_caption(stored, caption, entities)
        return self._finish_edit(state, stored)

    async def _edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, state, stored = self._editable(p)
        markup = self._markup(p, inline_only=True)
        old_key = self._content_keys.get((chat.id, state.message_id))
        self._check_modified(chat, state, (old_key[0] if old_key else None, _markup_key(markup)))
        state.reply_markup = markup
        return self._finish_edit(state, stored)

    async def _delete_message(self, p: dict[str, Any]) -> bool:
        chat, _, stored = self._editable_any(p)
        mid = stored["message_id"]
        from_bot = mid in self._bot_messages.get(chat.id, {})
        if not from_bot and chat.type != "private" and chat.bot_status != "administrator":
            raise _bad("message can't be deleted")
        self._messages[chat.id].pop(mid, None)
        self._bot_messages.get(chat.id, {}).pop(mid, None)
        self._content_keys.pop((chat.id, mid), None)
        return True

    def _editable_any(self, p: dict[str, Any]) -> tuple[_Chat, int, dict[str, Any]]:
        chat = self._target(p)
        message_id = _int(p, "message_id", 0)
        stored = self._messages.get(chat.id, {}).get(message_id)
        if stored is None:
            raise _bad("message to delete not found")
        return chat, message_id, stored

    async def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        query = self._callbacks.get(str(p.get("callback_query_id", "")))
        too_old = "query is too old and response timeout expired or query ID is invalid"
        if query is None or query.answered:
            raise _bad(too_old)
        if self.callback_timeout is not None and self.monotonic() - query.created > self.callback_timeout:
            raise _bad(too_old)
        text = p.get("text")
        if text is not None and len(str(text)) > CALLBACK_ANSWER_TEXT_LIMIT:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        self.callback_answers[query.id] = {
            "text": text,
            "show_alert": bool(p.get("show_alert", False)),
            "url": p.get("url"),
            "cache_time": p.get("cache_time"),
        }
        return True

    # ------------------------------------------------------------------ internals: other methods

    async def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        f = self._file_meta.get(str(p.get("file_id", "")))
        if f is None:
            raise _bad("invalid file_id")
        if len(f.data) > DOWNLOAD_LIMIT:
            raise _bad("file is too big")
        self._files_by_path.setdefault(f.file_path, f)
        return {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": len(f.data),
            "file_path": f.file_path,
        }

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    async def _set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        for c in commands:
            if not isinstance(c, dict) or not _BOT_COMMAND_NAME_RE.match(str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(p.get("scope"), p.get("language_code"))] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        return self.my_commands(p.get("scope"), str(p.get("language_code") or ""))

    async def _delete_my_commands(self, p: dict[str, Any]) -> bool:
        self._commands.pop(self._commands_key(p.get("scope"), p.get("language_code")), None)
        return True

    async def _get_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chats.get(p["chat_id"]) if isinstance(p.get("chat_id"), int) else None
        if chat is None:
            raise _bad("chat not found")
        return {
            **chat.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(_GIFT_TYPES, False),
        }

    async def _get_chat_member(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._target(p)
        user_id = _int(p, "user_id", 0)
        if user_id == self.bot_id:
            status = "member" if chat.type == "private" else chat.bot_status
            data: dict[str, Any] = {"status": status, "user": self.bot_user}
        elif user_id in self._users:
            data = {"status": "member", "user": self._users[user_id]}
        else:
            raise _bad("PARTICIPANT_ID_INVALID")
        if data["status"] == "administrator":
            data.update(dict.fromkeys(_ADMIN_RIGHTS, True), can_be_edited=False, is_anonymous=False)
        if data["status"] == "kicked":
            data["until_date"] = 0
        return data

    async def _leave_chat(self, p: dict[str, Any]) -> bool:
        chat = self._target(p)
        if chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        old, chat.bot_status = chat.bot_status, "left"
        self._enqueue_my_chat_member(chat, self.bot_id, old, "left")
        return True

    async def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self._target(p)
        return True

    async def _harmless(self, p: dict[str, Any]) -> bool:
        return True


_UNKNOWN = object()
_TEXT_BUTTONS = "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
# fmt: off
_GIFT_TYPES = (
    "unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels",
)
_CONTROL_ACTIONS = {
    "users": "add_user", "groups": "add_group", "text": "send_text", "photo": "send_photo",
    "document": "send_document", "press": "press_button", "block": "block_bot", "migrate": "migrate_group",
    "errors": "inject_error",
}
_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
    "can_delete_stories",
)
# fmt: on


def _command_entities(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "bot_command", "offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group(0))}
        for m in _COMMAND_RE.finditer(text)
    ]


def _markup_key(markup: dict[str, Any] | None) -> str:
    return json.dumps(markup, sort_keys=True) if markup else ""


def _normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Form values are strings: turn ids into ints, flags into bools, nested objects into JSON values, and
    ``attach://name`` into the uploaded part. Values that do not convert stay as they are for the method to
    reject."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            elif key in _BOOL_FIELDS:
                value = value.strip().lower() in ("true", "1")
            elif key in _JSON_FIELDS:
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            elif value.startswith("attach://") and isinstance(raw.get(value[9:]), _Upload):
                value = raw[value[9:]]
        params[key] = value
    attached = {v[9:] for v in raw.values() if isinstance(v, str) and v.startswith("attach://")}
    return {k: v for k, v in params.items() if k not in attached}


def _summarize(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"file_name": v.filename, "size": len(v.data)} if isinstance(v, _Upload) else v
        for k, v in params.items()
    }


def _short(params: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "reply_markup")
    return text if len(text) <= 100 else text[:97] + "..."


def _int(p: dict[str, Any], name: str, default: int) -> int:
    value = p.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        if value in (None, ""):
            return default
        raise _bad(f"invalid {name} specified")
    return value
