"""Telegram's limits, kept before anything goes out: the pace of sends (about 30 messages/s overall, 1/s per
private chat with short bursts, 20/min per group) as a request middleware on the Bot, and texts over 4096
characters split into parts that keep their HTML tags balanced."""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramRetryAfter,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Methods that put a new message into a chat: these count against Telegram's flood limits.
_PACED_METHODS = frozenset(
    {
        "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendVideo", "sendAnimation",
        "sendAudio", "sendVoice", "sendVideoNote", "sendSticker", "sendLocation", "sendVenue", "sendContact",
        "sendPoll", "sendDice", "copyMessage", "forwardMessage",
    }
)  # fmt: skip
# Float rounding between our arithmetic and the server's must never turn "exactly on time" into "too early".
_EPSILON = 0.002


@dataclass(frozen=True)
class SendLimits:
    """Telegram's flood limits (Bot FAQ): the pace the sender keeps without being told."""

    global_per_s: int = 30
    private_per_s: float = 1.0
    group_per_min: int = 20
    private_burst: int = 3  # a private chat tolerates a short burst before the 1/s pace applies


# --- pacing


@dataclass
class _ChatPace:
    sends: int = 0
    # Token bucket as virtual scheduling: the k-th send may start at floor + (k + 1 - burst) / rate, where
    # floor = max(done_i - i / rate) over earlier sends. "done" is when the answer came back, which is never
    # before the server counted the send, so our view is never more generous than the server's.
    floor: float = -math.inf
    recent: deque[float] = field(default_factory=deque)  # groups: done times within the last minute
    not_before: float = -math.inf  # set by a RetryAfter
    busy: bool = False  # one send in flight per chat keeps the order and the arithmetic above exact


# Set by the Sender for a send whose turn it already waited for outside the uncancellable step.
RESERVED_CHAT: ContextVar[int | str | None] = ContextVar("sender_reserved_chat", default=None)


def _chat_key(method: TelegramMethod[Any]) -> int | str | None:
    chat_id = getattr(method, "chat_id", None)
    return chat_id if isinstance(chat_id, int | str) else None


class RateLimiter(BaseRequestMiddleware):
    """Paces sends per chat and overall *before* they leave; installed as a request middleware on the Bot."""

    def __init__(
        self,
        limits: SendLimits,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._sleep = sleep
        self._chats: dict[int | str, _ChatPace] = {}
        self._global_done: deque[float] = deque()  # answered within the last second, oldest first
        self._in_flight = 0
        self._pulse = asyncio.Event()
        # Sends whose own chat allows them now, waiting only for the overall budget: ticket -> turn (lowest
        # first). Without an order the budget goes to whichever wakes first, so some chats fall behind and
        # finish alone at their 1/s pace, and a group's first 20 (which start its minute) come late.
        self._ready: dict[int, tuple[bool, int]] = {}
        self._tickets = itertools.count()
        self.retry_afters = 0

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        key = _chat_key(method)
        if key is None:
            return await make_request(bot, method)
        if method.__api_method__ not in _PACED_METHODS:
            # Edits and answers are not counted by Telegram's flood limits, but a RetryAfter holds them too.
            await self._wait_penalty(key)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                self.penalize(key, exc.retry_after)
                raise
        if RESERVED_CHAT.get() == key:
            RESERVED_CHAT.set(None)
        else:
            await self.reserve(key)
        counted = True
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            counted = False  # the server refused it, so it does not count against the chat
            self.penalize(key, exc.retry_after)
            raise
        finally:
            self._release(key, counted=counted)

    async def reserve(self, key: int | str) -> None:
        """Wait until a send to `key` may start and take the slot; the next paced request to `key` uses it.

        When sends to several chats wait for the overall budget, groups go first (a group's slot late by a
        second can cost it a minute), then the longest waiting: every chat gets its share in turn."""
        ticket = next(self._tickets)
        turn = (self._is_private(key), ticket)
        try:
            while True:
                now = self._monotonic()
                wait = self._chat_wait(key, now)
                if wait is None or wait > 0:
                    if self._ready.pop(ticket, None) is not None:
                        self._wake_all()  # no longer first in line: who deferred to this turn looks again
                    await (self._pulse.wait() if wait is None else self._sleep(wait))
                    continue
                self._ready[ticket] = turn
                wait = self._global_wait(now)
                if wait is None or (wait <= 0 and min(self._ready.values()) < turn):
                    await self._pulse.wait()  # an earlier turn takes this slot, or a send in flight must end
                elif wait > 0:
                    await self._sleep(wait)
                else:
                    self._chats.setdefault(key, _ChatPace()).busy = True
                    self._in_flight += 1
                    return
        finally:
            if self._ready.pop(ticket, None) is not None:
                self._wake_all()  # a turn that others deferred to has gone (taken or cancelled)

    def penalize(self, key: int | str, retry_after: float) -> None:
        self.retry_afters += 1
        pace = self._chats.setdefault(key, _ChatPace())
        pace.not_before = max(pace.not_before, self._monotonic() + retry_after + _EPSILON)

    async def _wait_penalty(self, key: int | str) -> None:
        pace = self._chats.get(key)
        while pace is not None and (wait := pace.not_before - self._monotonic()) > 0:
            await self._sleep(wait)

    def _release(self, key: int | str, *, counted: bool) -> None:
        now = self._monotonic()
        pace = self._chats[key]
        pace.busy = False
        self._in_flight -= 1
        if counted:
            pace.floor = max(pace.floor, now - pace.sends / self.limits.private_per_s)
            pace.sends += 1
            if not self._is_private(key):
                pace.recent.append(now)
                while len(pace.recent) > self.limits.group_per_min:
                    pace.recent.popleft()
            self._global_done.append(now)
        self._wake_all()

    def _wake_all(self) -> None:
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    @staticmethod
    def _is_private(key: int | str) -> bool:
        return isinstance(key, int) and key > 0

    def _chat_wait(self, key: int | str, now: float) -> float | None:
        """Seconds until the chat's own limits let a send to `key` start (<= 0: now); None: a send to it is in
        flight."""
        lim = self.limits
        pace = self._chats.get(key)
        if pace is None:
            return 0.0
        if pace.busy:
            return None
        waits = [pace.not_before - now]
        if self._is_private(key):
            turn = pace.floor + (pace.sends + 1 - lim.private_burst) / lim.private_per_s
            waits.append(turn + _EPSILON - now)
        elif len(pace.recent) >= lim.group_per_min:
            waits.append(pace.recent[-lim.group_per_min] + 60.0 + _EPSILON - now)
        return max(waits)

    def _global_wait(self, now: float) -> float | None:
        """Seconds until the overall limit lets one more send start (<= 0: now); None: one in flight must end.

        Telegram counts a send when it arrives, which we only know lies between its start and its answer: a
        send counts from its start until a second after its answer. Keyed on start times alone, a send that
        arrives faster than the one a second before it would be the 31st in the server's second (a 429). The
        answer comes back within a few ms (5-20 ms measured in bench_sender), so this costs about 2 %.
        """
        window = self._global_done
        while window and window[0] <= now - 1.0:
            window.popleft()
        excess = self._in_flight + len(window) - self.limits.global_per_s + 1
        if excess <= 0:
            return 0.0
        if excess > len(window):
            return None
        return window[excess - 1] + 1.0 + _EPSILON - now


# --- long texts

_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^<>]*>")


def utf16_len(text: str) -> int:
    """Telegram counts text length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _cut_point(line: str, limit: int) -> int:
    """Where to cut a line too long for one message: within `limit` units, at a space, not inside a tag."""
    units = 0
    end = 0
    for end, char in enumerate(line):  # noqa: B007 - `end` is used after the loop
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            break
    else:
        return len(line)
    head = line[:end]
    for opener, closer in (("<", ">"), ("&", ";")):
        if head.rfind(opener) > head.rfind(closer):
            head = head[: head.rfind(opener)]
    space = head.rfind(" ")
    return space + 1 if space > len(head) // 2 else max(len(head), 1)


def _balance(parts: list[str]) -> list[str]:
    """Close the HTML tags a part leaves open and reopen them at the start of the next part."""
    balanced: list[str] = []
    carried: list[tuple[str, str]] = []  # (name, opening tag) still open
    for part in parts:
        text = "".join(tag for _, tag in carried) + part
        stack = list(carried)
        for match in _TAG_RE.finditer(part):
            name = match.group(2).lower()
            if match.group(1):
                if stack and stack[-1][0] == name:
                    stack.pop()
            else:
                stack.append((name, match.group(0)))
        balanced.append(text + "".join(f"</{name}>" for name, _ in reversed(stack)))
        carried = stack
    return balanced


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split a long HTML text into messages of at most `limit` characters, on line boundaries where possible.

    The raw text is measured (tags included), which is never shorter than what Telegram counts after parsing.
    """
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while utf16_len(line) > limit:
            cut = _cut_point(line, limit)
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return _balance([part for part in parts if part.strip()])
