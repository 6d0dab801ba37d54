"""A small world for use-case tests of dispatch, status progression and the checklist: real SQLite under
tmp_path, a ManualClock, the default policy, and managers and orders stored by the sync's storage calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.services import Services
from circles.sales_ops import checklist
from domain.checklist import ITEMS
from domain.models import Manager
from domain.policy import Policy
from domain.statuses import Status
from storage.crm import MirrorOrder, upsert_managers, upsert_orders
from storage.orders import get_focus
from storage.people import set_language
from testkit.clocks import ManualClock
from tests.support.services import build_services

# Monday 23 November 2026, 09:00 in Berlin: the first minute of a working day.
MONDAY_9 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ADMIN = 100
LEAD = 301
LEADS_CHAT = -1001


class Wakes:
    """Counts sender wake-ups, so a test sees that a use case asked for delivery."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def make_services(
    tmp_path: Path, *, now: datetime = MONDAY_9, exclusive: bool = True, policy: Policy | None = None
) -> Services:
    """This world's preset of the one services builder: an admin, a lead and the leads chat, in English."""
    return await build_services(
        tmp_path,
        now=now,
        policy=policy,
        exclusive=exclusive,
        wake_sender=Wakes(),
        DEFAULT_LANGUAGE="en",
        ADMIN_IDS=str(ADMIN),
        LEAD_IDS=str(LEAD),
        LEADS_CHAT_ID=str(LEADS_CHAT),
    )


def clock_of(services: Services) -> ManualClock:
    assert isinstance(services.clock, ManualClock)
    return services.clock


async def add_manager(
    services: Services,
    manager_id: str,
    telegram_id: int | None,
    *,
    capacity: int = 10,
    active: bool = True,
    lang: str = "en",
) -> None:
    now = services.clock.now()
    async with services.db.transaction() as conn:
        await upsert_managers(
            conn, [Manager(manager_id, f"Manager {manager_id}", telegram_id, active, capacity)], now
        )
        if telegram_id is not None:
            await set_language(conn, telegram_id=telegram_id, lang=lang, now=now)


async def add_order(
    services: Services,
    order_id: str,
    *,
    status: Status = Status.PENDING_MANAGER,
    manager_id: str | None = None,
    created_at: datetime | None = None,
    is_ebike: bool = False,
    **fields: Any,
) -> None:
    """An order as the sync would store it; `manager_id` assigns it (for orders past pending_manager)."""
    at = created_at or services.clock.now() - timedelta(minutes=1)
    values: dict[str, Any] = {
        "client_name": "Anna K.",
        "client_city": "Hamburg",
        "bike_brand": "Canyon",
        "bike_model": "Spectral 125",
        "price_eur": 2450.0,
        "seller": "seller-1",
        **fields,
    }
    order = MirrorOrder(
        id=order_id,
        status=status,
        crm_status=status.value,
        created_at=at,
        updated_at=at,
        status_since=at,
        is_ebike=is_ebike,
        crm_manager_id=manager_id,
        assigned_manager_id=manager_id,
        sale_eur=None,
        purchase_eur=None,
        shipping_eur=None,
        fees_eur=None,
        **values,
    )
    async with services.db.transaction() as conn:
        await upsert_orders(conn, [order], services.clock.now())


async def rows(services: Services, sql: str, *params: object) -> list[dict[str, Any]]:
    """Read back what the use cases stored, for assertions."""
    return [dict(row) for row in await services.db.fetchall(sql, params)]


def fake_download(content: bytes = b"\xff\xd8\xff\xe0 a photo") -> Callable[[Path], Awaitable[None]]:
    """What the handler's Telegram download does: write the file's bytes to the given path."""

    async def fetch(path: Path) -> None:
        await asyncio.to_thread(path.write_bytes, content)

    return fetch


async def attach(services: Services, telegram_id: int, item: int, unique_id: str) -> None:
    now = services.clock.now()
    order_id = await focused_order(services, telegram_id)
    await checklist.select_item(services, order_id, item, actor_telegram_id=telegram_id, now=now)
    await checklist.attach_file(
        services,
        telegram_id=telegram_id,
        kind="photo",
        file_id=f"file-{unique_id}",
        file_unique_id=unique_id,
        file_name=None,
        fetch=fake_download(),
        now=now,
    )


async def focused_order(services: Services, telegram_id: int) -> str:
    focus = await get_focus(services.db.conn, telegram_id)
    assert focus is not None
    return focus.order_id


async def fill_checklist(services: Services, order_id: str, telegram_id: int) -> None:
    """Every item passed, with the photos items 1 and 28 need: a checklist the gate accepts."""
    now = services.clock.now()
    await checklist.open_checklist(services, order_id, actor_telegram_id=telegram_id, now=now)
    for item in ITEMS:
        await checklist.answer_item(services, order_id, item, "pass", actor_telegram_id=telegram_id, now=now)
    await attach(services, telegram_id, 1, f"{order_id}-serial")
    await attach(services, telegram_id, 28, f"{order_id}-drive-side")
