"""The whole bot against the BikeWerk simulator and the Bot API emulator, with managers on Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bikewerk.outbox import CrmOutboxWorker
from bikewerk.sync import Syncer
from bot.limits import SendLimits
from domain.checklist import ITEMS
from scheduler.jobs import sync_bikewerk
from storage.people import set_language
from testkit.emulator import BotAPIEmulator, BotMessage, RateLimits
from tests.support.harness import Harness, start_harness

ANNA, BORIS, VERA = 1001, 1002, 1003
ANNA, BORIS, VERA = 1001, 1002, 1003
UNLIMITED = SendLimits(global_per_s=10_000, private_per_s=10_000, group_per_min=10_000, private_burst=10_000)


@dataclass
class World:
    h: Harness
    syncer: Syncer

    @property
    def tg(self) -> BotAPIEmulator:
        return self.h.emulator

    async def sync(self) -> None:
        """The scheduler's sync job: sync, then offer new orders and refresh cards of changed ones."""
        await sync_bikewerk(self.syncer, self.h.services)
        await self.h.settle()

    async def crm_order(self, **fields: Any) -> str:
        """An order created in the CRM through the simulator's HTTP control side (`fields`: client, bike,
        seller, prices; the rest is generated)."""
        assert self.h.simulator_url is not None
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.h.simulator_url}/sim/orders", json=fields) as r,
        ):
            assert r.status == 201
            return str((await r.json())["id"])

    async def press(self, user_id: int, button: str) -> str:
        """The user presses a button in their private chat; returns the bot's answer to the press."""
        return await self.answer_of(self.tg.press(user_id, user_id, button))

    async def press_data(self, user_id: int, message_id: int, data: str) -> str:
        return await self.answer_of(self.tg.press_button(user_id, user_id, message_id, data))

    async def answer_of(self, query_id: str) -> str:
        await self.h.settle()
        answers = [
            c for c in self.tg.calls_of("answerCallbackQuery") if c.get("callback_query_id") == query_id
        ]
        assert len(answers) == 1, f"callback {query_id} answered {len(answers)} times"
        return str(answers[0].get("text") or "")

    async def say(self, user_id: int, text: str) -> str:
        before = len(self.tg.transcript(user_id))
        self.tg.send_text(user_id, text)
        await self.h.settle()
        return "\n".join(m.text or "" for m in self.tg.transcript(user_id)[before:])

    def card(self, user_id: int, order_id: str) -> BotMessage:
        found = [m for m in self.tg.transcript(user_id) if f"Order {order_id} " in (m.text or "")]
        assert found, f"no card of order {order_id} in chat {user_id}"
        return found[0]

    def checklist(self, user_id: int) -> BotMessage:
        found = [m for m in self.tg.transcript(user_id) if (m.text or "").startswith("Checklist")]
        assert len(found) == 1, f"expected one checklist message in chat {user_id}, found {len(found)}"
        return found[0]

    async def fill_checklist(self, user_id: int) -> None:
        """From the card of an order in inspection: open the checklist, pass every item page by page and send
        a photo to each item that needs one (1 and 28); Submit is the caller's."""
        await self.press(user_id, "Open checklist")
        for item in ITEMS:
            page = self.checklist(user_id)
            if f"✅ {item}" not in [t for t, _ in page.buttons]:
                await self.press(user_id, "Next »")
            await self.press(user_id, f"✅ {item}")
            if item in (1, 28):
                await self.press(user_id, f"📎 {item}")
                self.tg.send_photo(user_id, f"photo of item {item}".encode())
                await self.h.settle()

    async def crm_writes(self, order_id: str) -> list[dict[str, Any]]:
        """Deliver the outbox now, then the writes the CRM applied for the order (GET /sim/writes)."""
        worker = CrmOutboxWorker(self.h.services.db, self.h.app.bikewerk, self.h.clock)
        while await worker.flush():  # one write per order per flush: the CRM sees them in order
            pass
        assert self.h.simulator_url is not None
        async with aiohttp.ClientSession() as http, http.get(f"{self.h.simulator_url}/sim/writes") as r:
            items = (await r.json())["items"]
        return [w for w in items if w["order_id"] == order_id and w["applied"]]


async def add_crm_manager(world: World, manager_id: str, telegram_id: int) -> None:
    assert world.h.simulator is not None
    world.h.simulator.upsert_manager(
        {
            "id": manager_id,
            "name": f"Manager {manager_id}",
            "telegram_id": telegram_id,
            "active": True,
            "capacity": 10,
            "timezone": "Europe/Berlin",
        }
    )
    world.tg.add_user(telegram_id, f"Manager{telegram_id}", language_code="en")
    async with world.h.services.db.transaction() as conn:
        await set_language(conn, telegram_id=telegram_id, lang="en", now=world.h.clock.now())


async def start_world(tmp_path: Path) -> World:
    """The bot with the simulator, Anna, Boris and Vera synced in; the caller stops `world.h`."""
    h = await start_harness(
        tmp_path, simulator=True, rate_limits=RateLimits(enabled=False), send_limits=UNLIMITED
    )
    services = h.services
    syncer = Syncer(
        services.db,
        h.app.bikewerk,
        services.policy,
        services.calendar,
        h.clock,
        settings=services.settings,
        wake_sender=services.wake_sender,
    )
    w = World(h, syncer)
    for manager_id, telegram_id in (("anna", ANNA), ("boris", BORIS), ("vera", VERA)):
        await add_crm_manager(w, manager_id, telegram_id)
    await w.sync()
    return w


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(tmp_path)
    try:
        yield w
    finally:
        await w.h.stop()


async def offered_order(world: World, **fields: Any) -> str:
    """A new CRM order after the first sync: Anna, Boris and Vera are free, so Anna (first by id) gets it."""
    order_id = await world.crm_order(**fields)
    await world.sync()
    assert "Accept" in (world.card(ANNA, order_id).text or "")
    return order_id
