"""The running bot with leads, crisis and admin chats, for the admin and signal commands end to end: a preset
of the one harness (tests/support/harness.py) with the people of tests/support/sla_world.py, in English."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.limits import SendLimits
from domain.statuses import Status
from testkit.emulator import BotMessage, RateLimits
from tests.support.harness import Harness, start_harness
from tests.support.sla_world import ADMIN, CRISIS_CHAT, LEAD, LEADS_CHAT, MANAGER_TG, OWNER, local

PEOPLE = {LEAD: "Lena", ADMIN: "Adam", OWNER: "Olga", MANAGER_TG: "Max"}
GROUPS = {LEADS_CHAT: "Leads", CRISIS_CHAT: "Crisis"}
UNLIMITED = SendLimits(global_per_s=10_000, private_per_s=10_000, group_per_min=10_000, private_burst=10_000)


@asynccontextmanager
async def running_bot(tmp_path: Path, *, unlimited: bool = False) -> AsyncIterator[Harness]:
    """The bot process against a fresh emulator; `unlimited` lifts flood limits (for many quick inputs)."""
    harness = await start_harness(
        tmp_path,
        now=local(2, 10),
        people=PEOPLE,
        language_code=None,
        groups=GROUPS,
        rate_limits=RateLimits(enabled=False) if unlimited else None,
        send_limits=UNLIMITED if unlimited else None,
        session_timeout=5.0,
        LEADS_CHAT_ID=LEADS_CHAT,
        CRISIS_CHAT_ID=CRISIS_CHAT,
        ADMIN_CHAT_ID=None,
        OWNER_ID=OWNER,
        LEAD_IDS=str(LEAD),
        ADMIN_IDS=str(ADMIN),
        DEFAULT_LANGUAGE="en",
    )
    try:
        await harness.world.add_manager()
        # Everyone has written to the bot once (so it knows their names), as people do on their first day.
        for user_id in (LEAD, ADMIN, OWNER, MANAGER_TG):
            await harness.say(user_id, "/start")
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, unlimited=True) as harness:
        yield harness


async def breach(h: Harness, order_id: str = "O1") -> BotMessage:
    """An order waits for acceptance past its 15 minutes: the leads chat gets the breach ping."""
    await h.world.add_order(order_id, Status.PENDING_MANAGER, local(2, 10), "M1")
    await h.sweep_at(local(2, 10, 15))
    return await h.shown(LEADS_CHAT, f"Order {order_id}")
