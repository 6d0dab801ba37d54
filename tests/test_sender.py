"""The sender against the Bot API emulator over HTTP: pacing without 429s, RetryAfter, blocked chats, retries,
group migration, long texts, edits in place and media.

Telegram-side time is virtual: the emulator's flood limits and the sender's pacing read the same
`VirtualTime`, whose sleep jumps forward instead of waiting, so a minute of pacing takes milliseconds and its
length can be checked exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time as _time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.limits import TEXT_LIMIT, split_text
from bot.sender import Sender, record_chat_unblocked
from storage import messages as outbox
from storage.db import Database, parse_ts
from storage.people import current_chat_id, is_chat_blocked
from storage.signals import live_signal_by_dedup
from testkit.clocks import ManualClock
from testkit.emulator import BotAPIEmulator

PRIVATE = (11, 12, 13)
GROUPS = (-21, -22)
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class VirtualTime:
    """Monotonic seconds that move only when someone sleeps (by exactly as long as they asked)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


@dataclass
class World:
    db: Database
    emulator: BotAPIEmulator
    bot: Bot
    sender: Sender
    clock: ManualClock
    time: VirtualTime

    async def queue(self, chat_id: int, ref: str, body: str, **kwargs: Any) -> None:
        async with self.db.transaction() as conn:
            await outbox.put_message(
                conn, chat_id=chat_id, ref=ref, body=body, now=self.clock.now(), **kwargs
            )

    def texts(self, chat_id: int) -> list[str]:
        return [m.text or m.caption or "" for m in self.emulator.transcript(chat_id)]

    def sends_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [p for p in self.emulator.calls_of("sendMessage") if p.get("chat_id") == chat_id]


@contextlib.asynccontextmanager
async def open_world(tmp_path: Path, time: VirtualTime | None) -> AsyncIterator[World]:
    """The emulator, a store and a sender; Telegram-side time is `time`, or real time when None."""
    monotonic = time.monotonic if time is not None else _time.monotonic
    sleep = time.sleep if time is not None else asyncio.sleep
    emulator = BotAPIEmulator(monotonic=monotonic)
    await emulator.start()
    for user_id in PRIVATE:
        emulator.add_user(user_id, f"User{user_id}")
    for chat_id in GROUPS:
        emulator.add_group(chat_id, f"Group {chat_id}")
    db = await Database.open(tmp_path / "bot.db")
    bot = emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
    clock = ManualClock(NOW)
    sender = Sender(bot, db, clock, monotonic=monotonic, sleep=sleep)
    try:
        yield World(db, emulator, bot, sender, clock, time or VirtualTime())
    finally:
        await bot.session.close()
        await db.close()
        await emulator.stop()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, VirtualTime()) as opened:
        yield opened


async def test_many_notifications_to_many_chats_keep_every_limit(world: World) -> None:
    per_chat = 25
    for n in range(per_chat):
        for chat_id in (*PRIVATE, *GROUPS):
            await world.queue(chat_id, f"note:{n}", f"Notification {n} for {chat_id}")

    delivered = await world.sender.flush()

    assert delivered == per_chat * 5
    assert world.emulator.count_429 == 0
    for chat_id in (*PRIVATE, *GROUPS):
        assert world.texts(chat_id) == [f"Notification {n} for {chat_id}" for n in range(per_chat)]
    # A group takes 20 a minute, so its 21st message waits a minute: the pace is the limit, not slower.
    assert 60.0 <= world.time.now <= 66.0


async def test_retry_after_holds_only_that_chat(tmp_path: Path) -> None:
    # Real time here: "the others go on meanwhile" is about what happens during the wait.
    async with open_world(tmp_path, None) as world:
        slow, other = PRIVATE[0], PRIVATE[1]
        world.emulator.inject_error(
            "sendMessage",
            error_code=429,
            description="Too Many Requests: retry after 1",
            retry_after=1,
            chat_id=slow,
        )
        for n in range(3):
            await world.queue(slow, f"a:{n}", f"to slow {n}")
            await world.queue(other, f"b:{n}", f"to other {n}")
        started = _time.monotonic()

        assert await world.sender.flush() == 6

        assert _time.monotonic() - started >= 1.0
        assert world.texts(slow) == ["to slow 0", "to slow 1", "to slow 2"]
        assert world.texts(other) == ["to other 0", "to other 1", "to other 2"]
        calls = [p["chat_id"] for p in world.emulator.calls_of("sendMessage")]
        first_retry = calls.index(slow, calls.index(slow) + 1)
        assert calls[:first_retry].count(other) == 3, "the other chat went on while the slow one waited"
        assert world.emulator.count_429 == 1  # only the injected one


async def test_blocked_chat_is_marked_signalled_and_not_tried_again(world: World) -> None:
    blocked, fine = PRIVATE[0], PRIVATE[1]
    world.emulator.block_bot(blocked)
    await world.queue(blocked, "card:1", "first")
    await world.queue(blocked, "card:2", "second")
    await world.queue(fine, "card:1", "hello")

    await world.sender.flush()

    assert world.texts(fine) == ["hello"]
    assert world.texts(blocked) == []
    assert len(world.sends_to(blocked)) == 1, "the second message is not even tried"
    assert await is_chat_blocked(world.db, blocked)
    for ref in ("card:1", "card:2"):
        row = await outbox.get_message(world.db, blocked, ref)
        assert row is not None and row["dead"] == 1
    signal = await live_signal_by_dedup(world.db, f"telegram.chat_blocked:{blocked}")
    assert signal is not None and signal.type == "telegram.chat_blocked"

    await world.queue(blocked, "card:3", "third")
    await world.sender.flush()
    assert len(world.sends_to(blocked)) == 1

    # The person unblocks the bot: what piled up meanwhile goes out, once, in order.
    world.emulator.unblock_bot(blocked)
    async with world.db.transaction() as conn:
        assert await record_chat_unblocked(conn, blocked, now=world.clock.now())
    await world.sender.flush()
    assert world.texts(blocked) == ["first", "second", "third"]
    # ... and the signal about the blocked chat is resolved: nobody has to chase a problem that is gone.
    assert await live_signal_by_dedup(world.db, f"telegram.chat_blocked:{blocked}") is None


async def test_server_errors_are_retried_with_backoff(world: World) -> None:
    chat_id = PRIVATE[0]
    world.emulator.inject_error("sendMessage", error_code=500, description="Internal Server Error", times=2)
    await world.queue(chat_id, "card", "survives an outage")

    assert await world.sender.flush() == 0
    row = await outbox.get_message(world.db, chat_id, "card")
    assert row is not None and row["attempts"] == 1 and "Internal Server Error" in row["last_error"]
    retry_at = parse_ts(row["next_attempt_at"])
    assert retry_at > world.clock.now()
    assert await world.sender.flush() == 0, "not before its time"

    world.clock.set(retry_at)
    assert await world.sender.flush() == 0  # the second injected 500
    row = await outbox.get_message(world.db, chat_id, "card")
    assert row is not None
    assert parse_ts(row["next_attempt_at"]) - world.clock.now() > retry_at - NOW, "the wait grows"

    world.clock.set(parse_ts(row["next_attempt_at"]))
    assert await world.sender.flush() == 1
    assert world.texts(chat_id) == ["survives an outage"]


async def test_network_errors_are_retried_later(world: World, tmp_path: Path) -> None:
    dead_server = AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9"), timeout=2)
    bot = Bot(world.emulator.token, session=dead_server)
    sender = Sender(bot, world.db, world.clock, monotonic=world.time.monotonic, sleep=world.time.sleep)
    try:
        await world.queue(PRIVATE[0], "card", "later")
        assert await sender.flush() == 0
    finally:
        await bot.session.close()
    row = await outbox.get_message(world.db, PRIVATE[0], "card")
    assert row is not None and row["dead"] == 0 and row["attempts"] == 1
    assert parse_ts(row["next_attempt_at"]) > world.clock.now()

    world.clock.advance(timedelta(minutes=1))
    assert await world.sender.flush() == 1
    assert world.texts(PRIVATE[0]) == ["later"]


async def test_group_migration_is_followed(world: World) -> None:
    old = GROUPS[0]
    new = world.emulator.migrate_group(old)
    await world.queue(old, "ping:1", "to the old id")

    assert await world.sender.flush() == 1

    assert world.texts(new) == ["to the old id"]
    assert await current_chat_id(world.db, old) == new
    await world.queue(old, "ping:2", "still addressed to the old id")
    await world.sender.flush()
    assert world.texts(new) == ["to the old id", "still addressed to the old id"]
    assert len(world.sends_to(old)) == 1, "a known migration costs no failed request"


async def test_long_text_is_split_on_lines_and_edited_in_place(world: World) -> None:
    chat_id = PRIVATE[0]
    lines = [f"line {n:03d} " + "x" * 90 for n in range(100)]
    markup = {"inline_keyboard": [[{"text": "Open", "callback_data": "open:1"}]]}
    await world.queue(chat_id, "report", "<b>" + "\n".join(lines) + "</b>", markup=markup)

    await world.sender.flush()

    shown = world.emulator.transcript(chat_id)
    assert len(shown) == 3
    assert all(len(m.text or "") <= TEXT_LIMIT for m in shown)
    assert "\n".join(m.text or "" for m in shown) == "\n".join(lines)
    assert [m.buttons for m in shown] == [[], [], [("Open", "open:1")]], (
        "the keyboard goes under the last part"
    )
    assert all(e["type"] == "bold" for m in shown for e in m.entities), (
        "tags are closed and reopened per part"
    )
    assert await outbox.message_id_for(world.db, chat_id, "report") == shown[-1].message_id
    assert await outbox.ref_for_message(world.db, chat_id, shown[0].message_id) == "report"

    await world.queue(chat_id, "report", "\n".join(lines[:50]), markup=markup)
    await world.sender.flush()

    after = world.emulator.transcript(chat_id)
    assert [m.message_id for m in after] == [m.message_id for m in shown[:2]], (
        "edited in place, surplus deleted"
    )
    assert "\n".join(m.text or "" for m in after) == "\n".join(lines[:50])
    assert len(world.sends_to(chat_id)) == 3


async def test_edits_in_place_and_not_modified_counts_as_done(world: World) -> None:
    chat_id = PRIVATE[0]
    await world.queue(chat_id, "card", "A")
    await world.sender.flush()
    await world.queue(
        chat_id, "card", "B", markup={"inline_keyboard": [[{"text": "Go", "callback_data": "g"}]]}
    )
    await world.sender.flush()
    assert world.texts(chat_id) == ["B"]
    assert len(world.sends_to(chat_id)) == 1 and len(world.emulator.calls_of("editMessageText")) == 1

    # Two changes that end where the chat already is: Telegram says "not modified", which is success.
    await world.queue(chat_id, "card", "C")
    await world.queue(
        chat_id, "card", "B", markup={"inline_keyboard": [[{"text": "Go", "callback_data": "g"}]]}
    )
    assert await world.sender.flush() == 1
    row = await outbox.get_message(world.db, chat_id, "card")
    assert row is not None and row["sent_version"] == row["version"] and row["dead"] == 0
    assert world.texts(chat_id) == ["B"]


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


async def test_photos_and_documents_with_captions(world: World, tmp_path: Path) -> None:
    chat_id = PRIVATE[0]
    chart, report = tmp_path / "chart.png", tmp_path / "report.csv"
    chart.write_bytes(_png())
    report.write_text("day,orders\n1,5\n")
    await world.queue(chat_id, "chart", "Queue, 14 days", kind="photo", file_path=str(chart))
    await world.queue(chat_id, "csv", "The numbers", kind="document", file_path=str(report))
    await world.queue(chat_id, "gone", "Missing file", kind="photo", file_path=str(tmp_path / "nope.png"))

    await world.sender.flush()

    photo, document = world.emulator.transcript(chat_id)
    assert (
        photo.kind == "photo"
        and photo.caption == "Queue, 14 days"
        and photo.photo_bytes == chart.read_bytes()
    )
    assert document.kind == "document" and document.document_bytes == report.read_bytes()
    gone = await outbox.get_message(world.db, chat_id, "gone")
    assert gone is not None and gone["dead"] == 1 and "nope.png" in gone["last_error"]

    await world.queue(chat_id, "chart", "Queue, 14 days (updated)", kind="photo", file_path=str(chart))
    await world.sender.flush()
    assert world.emulator.transcript(chat_id)[0].caption == "Queue, 14 days (updated)"
    assert len(world.emulator.calls_of("sendPhoto")) == 1


@given(st.lists(st.text(alphabet="абвгд efgh😀&;", max_size=700), min_size=1, max_size=40))
def test_split_text_fits_the_limit_and_loses_nothing(lines: list[str]) -> None:
    text = "\n".join(lines)
    assume(text.strip())  # Telegram refuses an empty text anyway
    parts = split_text(text, limit=500)
    assert all(0 < len(part.encode("utf-16-le")) // 2 <= 500 for part in parts)
    assert "".join(parts).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
