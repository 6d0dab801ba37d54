"""The running bot with leads, crisis and admin chats, for the admin and signal commands end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotApp
from bot.config import load_settings
from bot.limits import SendLimits
from circles.sales_ops.sla import sweep
from domain.statuses import Status
from testkit.clocks import ManualClock
from testkit.emulator import BotAPIEmulator, BotMessage, RateLimits
from tests.support.sla_world import ADMIN, CRISIS_CHAT, LEAD, LEADS_CHAT, MANAGER_TG, OWNER, World, local

WAIT = 10.0


class Harness:
    def __init__(self, emulator: BotAPIEmulator, app: BotApp, world: World) -> None:
        self.tg = emulator
        self.app = app
        self.world = world

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.tg.wait_for(predicate, WAIT, recheck_every=0.05)

    def latest(self, chat_id: int, needle: str) -> BotMessage | None:
        return next((m for m in reversed(self.tg.transcript(chat_id)) if needle in (m.text or "")), None)

    async def shown(self, chat_id: int, needle: str) -> BotMessage:
        """Wait until the chat shows a bot message containing `needle`."""
        await self.until(lambda: self.latest(chat_id, needle) is not None)
        found = self.latest(chat_id, needle)
        assert found is not None
        return found

    async def say(self, user_id: int, text: str, chat_id: int | None = None) -> str:
        """The user writes `text`; returns the bot's reply in that chat."""
        chat = user_id if chat_id is None else chat_id
        before = len(self.tg.transcript(chat))
        self.tg.send_text(user_id, text, chat_id=chat_id)
        await self.until(lambda: len(self.tg.transcript(chat)) > before)
        return self.tg.transcript(chat)[before].text or ""

    async def press(self, user_id: int, chat_id: int, button: str) -> dict[str, Any]:
        return await self.answer_of(self.tg.press(user_id, chat_id, button))

    async def press_data(self, user_id: int, chat_id: int, message_id: int, data: str) -> dict[str, Any]:
        return await self.answer_of(self.tg.press_button(user_id, chat_id, message_id, data))

    async def answer_of(self, query_id: str) -> dict[str, Any]:
        await self.until(lambda: query_id in self.tg.callback_answers)
        return self.tg.callback_answers[query_id]

    async def sweep_at(self, at: Any) -> None:
        self.world.clock.set(at)
        await sweep(self.app.services, at)


@asynccontextmanager
async def running_bot(tmp_path: Path, *, unlimited: bool = False) -> AsyncIterator[Harness]:
    """The bot process against a fresh emulator; `unlimited` lifts flood limits (for many quick inputs)."""
    emulator = BotAPIEmulator(rate_limits=RateLimits(enabled=False) if unlimited else None)
    await emulator.start()
    for user_id, name in ((LEAD, "Lena"), (ADMIN, "Adam"), (OWNER, "Olga"), (MANAGER_TG, "Max")):
        emulator.add_user(user_id, name)
    emulator.add_group(LEADS_CHAT, "Leads")
    emulator.add_group(CRISIS_CHAT, "Crisis")
    settings = load_settings(
        BOT_TOKEN=emulator.token,
        TELEGRAM_API_URL=emulator.base_url,
        DATABASE_PATH=tmp_path / "bot.db",
        ARTIFACTS_DIR=tmp_path / "artifacts",
        LEADS_CHAT_ID=LEADS_CHAT,
        CRISIS_CHAT_ID=CRISIS_CHAT,
        OWNER_ID=OWNER,
        LEAD_IDS=str(LEAD),
        ADMIN_IDS=str(ADMIN),
        TIMEZONE="Europe/Berlin",
        DEFAULT_LANGUAGE="en",
    )
    clock = ManualClock(local(2, 10))
    limits = SendLimits(global_per_s=10_000, private_per_s=10_000, group_per_min=10_000, private_burst=10_000)
    app = BotApp(settings, clock=clock, session_timeout=5.0, send_limits=limits if unlimited else None)
    await app.start(scheduler=False)
    try:
        world = World(app.services, clock)
        await world.add_manager()
        harness = Harness(emulator, app, world)
        # Everyone has written to the bot once (so it knows their names), as people do on their first day.
        for user_id in (LEAD, ADMIN, OWNER, MANAGER_TG):
            await harness.say(user_id, "/start")
        yield harness
    finally:
        await app.stop()
        await emulator.stop()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, unlimited=True) as harness:
        yield harness


async def breach(h: Harness, order_id: str = "O1") -> BotMessage:
    """An order waits for acceptance past its 15 minutes: the leads chat gets the breach ping."""
    await h.world.add_order(order_id, Status.PENDING_MANAGER, local(2, 10), "M1")
    await h.sweep_at(local(2, 10, 15))
    return await h.shown(LEADS_CHAT, f"Order {order_id}")
