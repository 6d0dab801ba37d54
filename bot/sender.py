"""The one sender of outgoing Telegram messages: it makes every chat show what the tg_messages table says.

Use cases write the wanted content with `storage.messages.put_message` (a row per chat and ref) and call
`services.wake_sender()` after their commit; the sender sends a row that has no message yet, edits one whose
content changed, and records what the chat shows.

Telegram's limits (about 30 messages/s overall, 1/s per private chat with short bursts, 20/min per group) are
kept by `RateLimiter`, a request middleware on the Bot: every send through that Bot, also a handler's direct
answer, waits for its turn *before* it goes out, so the server never has to answer 429. A RetryAfter that
still comes makes only that chat wait; network errors and 5xx are retried with backoff (`next_attempt_at`); a
chat that blocked the bot is marked, its messages retired and a `telegram.chat_blocked` signal raised; a group
that became a supergroup is followed to its new id; texts over 4096 characters go out as several messages.

Delivery guarantee. One worker per chat sends its rows in order and records each message id in the same step
as the send (a short transaction right after the answer), so a notification is never sent twice by a running
process, and a restart resumes exactly where the store says. A send already on the wire when the process is
asked to stop is finished and recorded before the sender lets go (`drain`), so a clean restart loses and
duplicates nothing. Only a hard crash between Telegram's answer and that transaction is ambiguous (Telegram
has no idempotency key): the row is then still pending and is sent again. We chose at-least-once for that
window of one round trip, because a duplicated card is a nuisance while a lost escalation is a missed SLA.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiosqlite
from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

from backbone.clearing import clear_by_dedup
from backbone.signals import raise_signal
from bot.clock import Clock
from bot.config import Settings
from bot.limits import CAPTION_LIMIT, RESERVED_CHAT, RateLimiter, SendLimits, split_text, utf16_len
from bot.logs import log_event
from domain.policy import Policy
from domain.signals import ClearWhen
from storage import messages as outbox
from storage.db import Database
from storage.people import current_chat_id, is_chat_blocked, mark_chat_blocked, mark_chat_unblocked
from storage.people import record_chat_migration as store_chat_migration

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BACKOFF = timedelta(minutes=15)
_FIRST_BACKOFF = timedelta(seconds=5)

# --- chats that blocked or unblocked the bot


async def record_chat_blocked(
    conn: aiosqlite.Connection,
    chat_id: int,
    *,
    now: datetime,
    via: str,
    settings: Settings | None = None,
    policy: Policy | None = None,
) -> bool:
    """The bot was blocked in (or removed from) a chat: mark it, retire its queued messages, signal it once.

    `via` says how we learnt it (a failed send, a my_chat_member update). Returns True if this is news.
    """
    newly = await mark_chat_blocked(conn, chat_id, now=now)
    await outbox.kill_chat_messages(conn, chat_id, error="the chat blocked the bot")
    if newly:
        await raise_signal(
            conn,
            type="telegram.chat_blocked",
            dedup_key=f"telegram.chat_blocked:{chat_id}",
            now=now,
            details={"chat_id": chat_id, "via": via},
            raised_by="telegram",
            settings=settings,
            policy=policy,
        )
    return newly


async def record_chat_unblocked(
    conn: aiosqlite.Connection, chat_id: int, *, now: datetime, settings: Settings | None = None
) -> bool:
    """The person unblocked the bot: what piled up meanwhile goes out, and the `telegram.chat_blocked` signal
    is resolved, since its problem is gone. True if the chat was marked blocked."""
    if not await mark_chat_unblocked(conn, chat_id):
        return False
    await outbox.revive_chat_messages(conn, chat_id, now=now)
    await clear_by_dedup(conn, f"telegram.chat_blocked:{chat_id}", ClearWhen.CHAT_UNBLOCKED, now, settings)
    return True


# --- the sender


class _Resend(Exception):
    """The message to edit is gone (deleted, or too old to edit): show the content as a new message."""


class _StopChat(Exception):
    """This chat cannot take more now (blocked, migrated, backing off); its later messages wait."""


class _Refetch(Exception):
    """Telegram asked this chat to wait: take its queue again from the top once the wait is over."""


class _Unsendable(Exception):
    """The row itself cannot become a message (its file is missing): retired with the reason."""


async def _finish_even_if_cancelled(step: Awaitable[T]) -> T:
    """Run a send-and-record step to its end even if the caller is cancelled meanwhile, then re-raise.

    Cancelling between Telegram's answer and the record would make the next start send the message again.
    """
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _backoff(attempts: int) -> timedelta:
    return min(_MAX_BACKOFF, _FIRST_BACKOFF * 2 ** min(attempts, 12))


class Sender:
    """Delivers the tg_messages outbox through one Bot, paced by a `RateLimiter` it installs on that Bot."""

    def __init__(
        self,
        bot: Bot,
        db: Database,
        clock: Clock,
        *,
        limits: SendLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        settings: Settings | None = None,
        policy: Policy | None = None,
        max_chats: int = 64,
    ) -> None:
        self.bot = bot
        self.db = db
        self.clock = clock
        self.settings = settings  # routes the telegram.chat_blocked signal
        self.policy = policy  # its ladder
        self.max_chats = max_chats
        self.limiter = RateLimiter(limits or SendLimits(), monotonic=monotonic, sleep=sleep)
        bot.session.middleware(self.limiter)
        self._workers: dict[int, asyncio.Task[int]] = {}
        self._wake = asyncio.Event()
        self._draining = False  # shutdown began: run() lets go, only drain's flush starts workers
        self._closed = False  # shutdown done: no worker starts any more
        self.delivered = 0
        self.failures = 0  # attempts that failed (metrics)
        self.retry_afters = 0  # 429 answers (metrics)

    # -- the loop

    def wake(self) -> None:
        """Something new is queued: look now instead of at the next poll."""
        self._wake.set()

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    async def flush(self) -> int:
        """Deliver everything due now, respecting the limits (this waits for the pace); returns how many."""
        total = 0
        while True:
            await self._start_workers()
            if not self._workers:
                return total
            results = await asyncio.gather(*self._workers.values(), return_exceptions=True)
            total += sum(result for result in results if isinstance(result, int))
            if all(isinstance(result, BaseException) for result in results):
                return total  # the store is failing (logged): the run loop tries again in a second

    async def run(self, stop: asyncio.Event) -> None:
        """Keep delivering until `stop` is set; wakes on `wake()` and when a retry falls due."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set() and not self._draining:
                self._wake.clear()
                try:
                    await self._start_workers()
                    delay = await self._idle_delay()
                except aiosqlite.Error as exc:
                    log_event(log, "sender.store_error", logging.ERROR, error=str(exc))
                    delay = 1.0
                waking = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({waking, stopping}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
        finally:
            stopping.cancel()

    async def drain(self, grace: float) -> int:
        """On shutdown: deliver what is due within `grace` seconds, then stop. A send already on the wire is
        finished and recorded; everything else stays queued for the next start."""
        self._draining = True
        self.wake()
        delivered = 0
        try:
            with contextlib.suppress(TimeoutError):
                delivered = await asyncio.wait_for(self.flush(), grace)
        finally:
            self._closed = True
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return delivered

    async def _idle_delay(self) -> float:
        due = await outbox.next_due_at(self.db)
        if due is None:
            return 1.0
        # Clock seconds may not be real seconds (a test clock, the demo's fast clock): look again within 1 s.
        return min(1.0, max(0.05, (due - self.clock.now()).total_seconds()))

    async def _start_workers(self) -> None:
        free = self.max_chats - len(self._workers)
        if free <= 0 or self._closed:
            return
        chats = await outbox.chats_with_due_messages(
            self.db, self.clock.now(), limit=free + len(self._workers)
        )
        if self._closed:  # shutdown finished while we read
            return
        for chat_id in chats:
            if chat_id in self._workers or len(self._workers) >= self.max_chats:
                continue
            task = asyncio.create_task(self._chat_worker(chat_id), name=f"sender-chat-{chat_id}")
            self._workers[chat_id] = task
            task.add_done_callback(functools.partial(self._worker_done, chat_id))

    def _worker_done(self, chat_id: int, task: asyncio.Task[int]) -> None:
        self._workers.pop(chat_id, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            log_event(log, "sender.worker_crashed", logging.ERROR, chat_id=chat_id, error=repr(error))
        self.wake()  # rows that arrived while the worker was finishing are picked up now

    async def _chat_worker(self, chat_id: int) -> int:
        delivered = 0
        try:
            if await self._chat_unavailable(chat_id):
                return 0
            while True:
                rows = await outbox.due_messages(self.db, chat_id, self.clock.now(), limit=20)
                if not rows:
                    return delivered
                with contextlib.suppress(_Refetch):
                    for row in rows:
                        if await self._deliver(row):
                            delivered += 1
                            self.delivered += 1
        except _StopChat:
            return delivered

    async def _chat_unavailable(self, chat_id: int) -> bool:
        """A chat known to be blocked or migrated is handled without a request that would fail anyway."""
        now = self.clock.now()
        if await is_chat_blocked(self.db, chat_id):
            async with self.db.transaction() as conn:
                await outbox.kill_chat_messages(conn, chat_id, error="the chat blocked the bot")
            return True
        target = await current_chat_id(self.db, chat_id)
        if target != chat_id:
            async with self.db.transaction() as conn:
                await outbox.move_to_chat(conn, chat_id, target, now=now)
            self.wake()
            return True
        return False

    # -- one message

    async def _deliver(self, row: aiosqlite.Row) -> bool:
        """Make the chat show this row's current version. True when done, False when retired; raises _Refetch
        or _StopChat when the chat has to wait."""
        chat_id = int(row["chat_id"])
        try:
            await self._show(row)
        except TelegramRetryAfter as exc:
            self.retry_afters += 1
            # The limiter holds this chat for retry_after; the same row is taken again after that.
            await self._note_failure(row, f"retry after {exc.retry_after}s", retry_at=self.clock.now())
            raise _Refetch from None
        except TelegramMigrateToChat as exc:
            async with self.db.transaction() as conn:
                await store_chat_migration(conn, chat_id, exc.migrate_to_chat_id)
                await outbox.move_to_chat(conn, chat_id, exc.migrate_to_chat_id, now=self.clock.now())
            log_event(log, "sender.chat_migrated", chat_id=chat_id, new_chat_id=exc.migrate_to_chat_id)
            self.wake()
            raise _StopChat from None
        except TelegramForbiddenError as exc:
            async with self.db.transaction() as conn:
                await record_chat_blocked(
                    conn,
                    chat_id,
                    now=self.clock.now(),
                    via="send",
                    settings=self.settings,
                    policy=self.policy,
                )
            self.wake()  # the signal queued pings
            log_event(log, "sender.chat_blocked", logging.WARNING, chat_id=chat_id, error=exc.message)
            raise _StopChat from None
        except (TelegramBadRequest, TelegramEntityTooLarge, _Unsendable) as exc:
            async with self.db.transaction() as conn:
                await outbox.mark_dead(conn, row["id"], error=str(exc))
            log_event(
                log, "sender.undeliverable", logging.ERROR, chat_id=chat_id, ref=row["ref"], error=str(exc)
            )
            return False
        except (TelegramAPIError, AiogramError, TimeoutError) as exc:
            # Network errors, 5xx, a server in trouble: try again later; this chat's later messages wait.
            await self._retry_later(row, exc, logging.WARNING)
        except aiosqlite.Error:
            raise  # the store itself is failing: the worker ends, nothing is marked
        except Exception as exc:  # a bug met by this row: it must not stop the chat's queue, nor spin
            await self._retry_later(row, exc, logging.ERROR)
        return True

    async def _retry_later(self, row: aiosqlite.Row, exc: BaseException, level: int) -> NoReturn:
        retry_at = self.clock.now() + _backoff(int(row["attempts"]))
        await self._note_failure(row, f"{type(exc).__name__}: {exc}", retry_at=retry_at)
        log_event(log, "sender.retry_later", level, chat_id=row["chat_id"], ref=row["ref"], error=repr(exc))
        raise _StopChat

    async def _note_failure(self, row: aiosqlite.Row, error: str, *, retry_at: datetime) -> None:
        self.failures += 1
        async with self.db.transaction() as conn:
            await outbox.mark_attempt_failed(conn, row["id"], error=error, retry_at=retry_at)

    async def _show(self, row: aiosqlite.Row) -> None:
        version = int(row["version"])
        markup = _markup(row["markup"])
        parts = split_text(row["body"]) if row["kind"] == "text" else [_fit_caption(row["body"])]
        shown = outbox.message_parts(row)
        try:
            kept = await self._edit_parts(row, shown, parts, markup)
        except _Resend:
            kept = []
        ids = list(kept)
        for index in range(len(ids), len(parts)):
            last = index == len(parts) - 1
            ids.append(await self._send_part(row, parts[index], markup if last else None, ids))
        async with self.db.transaction() as conn:
            await outbox.mark_delivered(
                conn, row["id"], version=version, message_ids=ids, now=self.clock.now()
            )

    async def _edit_parts(
        self, row: aiosqlite.Row, shown: list[int], parts: list[str], markup: InlineKeyboardMarkup | None
    ) -> list[int]:
        """Edit the parts already shown to the new content; drop surplus parts. Returns the ids kept."""
        chat_id = int(row["chat_id"])
        kept = shown[: len(parts)]
        for index, message_id in enumerate(kept):
            last = index == len(parts) - 1
            await _finish_even_if_cancelled(
                self._edit(row["kind"], chat_id, message_id, parts[index], markup if last else None)
            )
        for message_id in shown[len(parts) :]:
            with contextlib.suppress(TelegramBadRequest):
                await self.bot.delete_message(chat_id, message_id)
        return kept

    async def _edit(
        self, kind: str, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        try:
            if kind == "text":
                await self.bot.edit_message_text(
                    text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
                )
            elif text:
                await self.bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=text, reply_markup=markup
                )
            else:
                await self.bot.edit_message_reply_markup(
                    chat_id=chat_id, message_id=message_id, reply_markup=markup
                )
        except TelegramBadRequest as exc:
            description = exc.message.lower()
            if "message is not modified" in description:
                return  # the chat already shows this
            if "message to edit not found" in description or "message can't be edited" in description:
                raise _Resend from exc
            raise

    async def _send_part(
        self, row: aiosqlite.Row, text: str, markup: InlineKeyboardMarkup | None, ids: list[int]
    ) -> int:
        """Send one new message and record its id in one uncancellable step (see the module docstring)."""
        chat_id = int(row["chat_id"])
        call = self._request(row, text, markup)  # built first: nothing may fail once the turn is taken
        await self.limiter.reserve(chat_id)
        token = RESERVED_CHAT.set(chat_id)
        try:
            step = asyncio.ensure_future(self._send_and_record(row["id"], call, ids))
        finally:
            RESERVED_CHAT.reset(token)
        return await _finish_even_if_cancelled(step)

    async def _send_and_record(
        self, row_id: int, call: Callable[[], Awaitable[Message]], ids: list[int]
    ) -> int:
        message = await call()
        async with self.db.transaction() as conn:
            await outbox.record_parts(conn, row_id, [*ids, message.message_id], now=self.clock.now())
        return message.message_id

    def _request(
        self, row: aiosqlite.Row, text: str, markup: InlineKeyboardMarkup | None
    ) -> Callable[[], Awaitable[Message]]:
        """The send call for a row, with its file already read."""
        chat_id = int(row["chat_id"])
        if row["kind"] == "text":
            return functools.partial(self.bot.send_message, chat_id, text, reply_markup=markup)
        path = Path(row["file_path"] or "")
        try:
            upload = BufferedInputFile(path.read_bytes(), filename=path.name)
        except OSError as exc:
            raise _Unsendable(f"cannot read {path}: {exc.strerror or exc}") from None
        caption = text or None
        if row["kind"] == "photo":
            return functools.partial(
                self.bot.send_photo, chat_id, upload, caption=caption, reply_markup=markup
            )
        return functools.partial(
            self.bot.send_document, chat_id, upload, caption=caption, reply_markup=markup
        )


def _markup(stored: str | None) -> InlineKeyboardMarkup | None:
    if not stored:
        return None
    try:
        return InlineKeyboardMarkup.model_validate(json.loads(stored))
    except ValueError as exc:  # bad JSON, or not a keyboard (pydantic's ValidationError is a ValueError)
        raise _Unsendable(f"not an inline keyboard: {exc}") from None


def _fit_caption(caption: str) -> str:
    if utf16_len(caption) <= CAPTION_LIMIT:
        return caption
    log_event(log, "sender.caption_cut", logging.WARNING, length=len(caption))
    return split_text(caption, CAPTION_LIMIT - 1)[0] + "…"
