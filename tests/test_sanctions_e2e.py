"""Sanctions screening end to end: the real bot against the Bot API emulator and the BikeWerk simulator over
HTTP. A list is imported; an order whose seller is listed (spelled the German way) is synced, held from
dispatch while a clean order goes to the manager, and the crisis chat gets the critical signal; an admin
clears it as a false positive and the order is offered at the next dispatch pass. Every new order was
screened: coverage 1.0."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp

from bikewerk.sync import Syncer
from bot.i18n import in_locale
from bot.sender import SendLimits
from circles.governance.kpi import governance_kpis
from circles.governance.sanctions import import_list
from keyboards.signals import type_title
from scheduler.jobs import dispatch_tick, sync_bikewerk
from testkit.emulator import RateLimits
from tests.support.harness import ADMIN_CHAT_ID, ADMIN_ID, CRISIS_CHAT_ID, OWNER_ID, start_harness

SMALL = Path(__file__).parent / "data" / "sanctions_small.csv"
ANNA = 1001
UNLIMITED = SendLimits(global_per_s=10_000, private_per_s=10_000, group_per_min=10_000, private_burst=10_000)


async def test_a_listed_seller_is_held_signalled_and_released_as_a_false_positive(tmp_path: Path) -> None:
    h = await start_harness(
        tmp_path, simulator=True, rate_limits=RateLimits(enabled=False), send_limits=UNLIMITED
    )
    try:
        assert h.simulator is not None and h.simulator_url is not None
        services = h.services
        h.simulator.upsert_manager(
            {"id": "anna", "name": "Anna", "telegram_id": ANNA, "capacity": 10, "timezone": "Europe/Berlin"}
        )
        h.emulator.add_user(ANNA, "Anna", language_code="en")
        syncer = Syncer(
            services.db,
            h.app.bikewerk,
            services.policy,
            services.calendar,
            h.clock,
            settings=services.settings,
            wake_sender=services.wake_sender,
        )
        start = h.clock.now()
        await sync_bikewerk(syncer, services)
        listed = await import_list(
            services.db, SMALL, h.clock.now(), threshold=90, settings=services.settings
        )

        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{h.simulator_url}/sim/orders", json={"seller": "Wladimir Iwanow (private)"}
            ) as r:
                held = str((await r.json())["id"])
            async with http.post(f"{h.simulator_url}/sim/orders", json={"seller": "Radhaus Leipzig"}) as r:
                clean = str((await r.json())["id"])
        await sync_bikewerk(syncer, services)
        await h.settle()

        cards = "\n".join(m.text or "" for m in h.emulator.transcript(ANNA))
        assert clean in cards and held not in cards  # the held order was not offered

        with in_locale("ru"):
            title = type_title("compliance.sanctions_hit")
        crisis = [m.text or "" for m in h.emulator.transcript(CRISIS_CHAT_ID)]
        ping = next(t for t in crisis if title in t)
        assert held in ping and "test-person-ivanov" in ping and listed.version in ping
        for chat in (OWNER_ID, ADMIN_CHAT_ID):
            assert any(title in (m.text or "") for m in h.emulator.transcript(chat)), chat

        signal_id = int(ping.split("#", 1)[1].split()[0])
        h.emulator.send_text(ADMIN_ID, f"/decide {signal_id} approve namesake, checked the passport")
        await h.settle()
        h.clock.advance(timedelta(minutes=1))
        await dispatch_tick(services)
        await h.settle()
        cards = "\n".join(m.text or "" for m in h.emulator.transcript(ANNA))
        assert held in cards  # released to dispatch: offered like any order

        holds = await services.db.fetchall("SELECT outcome, released_by FROM compliance_holds")
        assert [tuple(r) for r in holds] == [("false_positive", f"admin:{ADMIN_ID}")]
        kpis = await governance_kpis(services.db.conn, (start, h.clock.now()))
        assert kpis["sanctions_screen_coverage"] == 1.0
    finally:
        await h.stop()
