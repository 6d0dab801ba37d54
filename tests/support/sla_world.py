"""A store with managers, orders and status visits on a manual clock, for the SLA and signal tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.services import Services
from circles.sales_ops.sla import SweepReport, sweep
from domain.models import Manager
from domain.policy import Policy
from domain.sla import plan_visit
from domain.statuses import Status
from storage import signals as signal_store
from storage.crm import MirrorOrder, upsert_managers, upsert_orders
from storage.orders import add_status_event, set_status
from storage.timers import open_visit
from testkit.clocks import ManualClock
from tests.support.services import build_services

TZ = ZoneInfo("Europe/Berlin")
HOLIDAY = date(2026, 3, 9)  # a Monday
MANAGER_TG = 501
LEADS_CHAT = -1001
CRISIS_CHAT = -1002
OWNER = 900
LEAD = 800
ADMIN = 700


def local(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def make_policy(version: str = "test-1", **changes: Any) -> Policy:
    """The shipped policy with a holiday, another version and `changes` (validated like a policy file)."""
    shipped = Policy.default()
    calendar = shipped.calendar.model_copy(update={"holidays": [HOLIDAY]})
    return Policy.model_validate({**dict(shipped), "version": version, "calendar": calendar, **changes})


class World:
    """A bot's store and services on a ManualClock, with helpers to put orders into statuses."""

    def __init__(self, services: Services, clock: ManualClock) -> None:
        self.services = services
        self.clock = clock
        self.db = services.db
        self.wakes = 0

    @classmethod
    async def create(
        cls, path: Path, start: datetime, policy: Policy | None = None, **settings: Any
    ) -> World:
        services = await build_services(
            path,
            now=start,
            policy=policy or make_policy(),
            LEADS_CHAT_ID=LEADS_CHAT,
            CRISIS_CHAT_ID=CRISIS_CHAT,
            OWNER_ID=OWNER,
            LEAD_IDS=str(LEAD),
            ADMIN_IDS=str(ADMIN),
            DEFAULT_LANGUAGE="en",
            **settings,
        )
        assert isinstance(services.clock, ManualClock)
        world = cls(services, services.clock)
        services.wake_sender = world._wake
        return world

    def _wake(self) -> None:
        self.wakes += 1

    @property
    def now(self) -> datetime:
        return self.clock.now()

    async def add_manager(self, manager_id: str = "M1", telegram_id: int | None = MANAGER_TG) -> None:
        async with self.db.transaction() as conn:
            await upsert_managers(conn, [Manager(manager_id, f"Manager {manager_id}", telegram_id)], self.now)

    async def add_order(
        self, order_id: str, status: Status, at: datetime, manager_id: str | None = None
    ) -> None:
        """An order that entered `status` at `at`, with its SLA visit planned under the current policy."""
        order = MirrorOrder(
            order_id,
            status,
            status.value,
            at,
            at,
            at,
            "Client",
            "Berlin",
            "Canyon",
            "Spectral",
            2500.0,
            False,
            "Seller",
            manager_id,
            manager_id,
            None,
            None,
            None,
            None,
        )
        async with self.db.transaction() as conn:
            await upsert_orders(conn, [order], at)
            await open_visit(
                conn, order_id, plan_visit(status, at, self.services.policy, self.services.calendar)
            )

    async def move(self, order_id: str, from_: Status, to: Status, at: datetime) -> None:
        """The order moves on at `at` (as the orders agent records it): event, status, next visit."""
        async with self.db.transaction() as conn:
            await set_status(conn, order_id, to, at)
            await add_status_event(
                conn, order_id=order_id, from_status=from_, to_status=to, actor="M1", at=at
            )
            await open_visit(conn, order_id, plan_visit(to, at, self.services.policy, self.services.calendar))

    async def sweep_at(self, at: datetime) -> SweepReport:
        self.clock.set(at)
        return await sweep(self.services, at)

    async def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.db.fetchall(sql, params)]

    async def count(self, table: str) -> int:
        return (await self.rows(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"]

    async def messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        if chat_id is None:
            return await self.rows("SELECT * FROM tg_messages ORDER BY id")
        return await self.rows("SELECT * FROM tg_messages WHERE chat_id = ? ORDER BY id", (chat_id,))

    async def signals(self) -> list[signal_store.Signal]:
        rows = await self.db.fetchall("SELECT * FROM ai_signals ORDER BY id")
        return [signal_store.signal_from_row(r) for r in rows]

    async def decisions(self, action: str | None = None) -> list[dict[str, Any]]:
        if action is None:
            return await self.rows("SELECT * FROM ai_decisions ORDER BY id")
        return await self.rows("SELECT * FROM ai_decisions WHERE action = ? ORDER BY id", (action,))

    async def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Everything the watchdog and the signals write, to prove that something changed nothing."""
        tables = (
            "sla_timers",
            "ai_sla_violations",
            "ai_signals",
            "ai_decisions",
            "tg_messages",
            "postmortems",
            "order_checkins",
        )
        return {t: await self.rows(f"SELECT * FROM {t} ORDER BY rowid") for t in tables}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World.create(tmp_path, local(2, 8))
    await w.add_manager()
    yield w
    await w.db.close()


# --- budgets across a weekend and a holiday -----------------------------------------------------------------

# Entered on Friday 6 March 2026 at 17:50 Berlin; Sat/Sun off, Monday 9 March a holiday, working hours 9-18.
