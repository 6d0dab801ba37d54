"""The circles on the whole bot (simulator + Bot API emulator): an order whose purchase went up after booking
and that was compensated is delivered, the CFO finds the leak and tells the owner (order, rule, EUR, causes,
what to do), and /margin ORDER explains it; a manager who misses three offers in a day is a signal to the
leads; /scorecard and /me show the scorecards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from circles import watch
from scheduler.jobs import dispatch_tick
from storage.people import set_language
from tests.support.e2e_world import ANNA, World, offered_order, world  # noqa: F401
from tests.support.harness import ADMIN_ID, LEAD_IDS, LEADS_CHAT_ID, OWNER_ID


async def _post(world: World, path: str, body: dict[str, Any]) -> dict[str, Any]:
    assert world.h.simulator_url is not None
    async with aiohttp.ClientSession() as http, http.post(f"{world.h.simulator_url}{path}", json=body) as r:
        assert r.status in (200, 201), await r.text()
        data: dict[str, Any] = await r.json()
        return data


async def _english(world: World, *people: int) -> None:
    async with world.h.services.db.transaction() as conn:
        for person in people:
            await set_language(conn, telegram_id=person, lang="en", now=world.h.clock.now())


async def _circles_minute(world: World) -> None:
    await watch.run(world.h.services, world.h.clock.now())
    await world.h.settle()


async def test_a_leak_reaches_the_owner_and_margin_explains_it(world: World) -> None:
    await _english(world, OWNER_ID, ADMIN_ID, LEADS_CHAT_ID)
    order_id = await offered_order(world)
    prices = {"sale_eur": 2000.0, "purchase_eur": 1500.0, "shipping_eur": 120.0, "fees_eur": 60.0}
    await _post(world, f"/sim/orders/{order_id}/money", {"prices": prices})
    assert "is yours" in await world.press(ANNA, "Accept")
    assert [w["kind"] for w in await world.crm_writes(order_id)] == ["assign", "status"]
    await world.sync()
    await _circles_minute(world)  # the forecast is booked at acceptance: 2000 − 1500 − 150 − 60 = 290
    forecast = await world.h.services.db.fetchall("SELECT source, forecast_eur FROM margin_forecasts")
    assert [tuple(r) for r in forecast] == [("accepted", 290.0)]

    # The seller asks 200 more, the client gets 150 back; the CRM marks the order delivered (paid in full).
    at = world.h.clock.now().isoformat()
    await _post(
        world,
        f"/sim/orders/{order_id}/money",
        {
            "prices": {"purchase_eur": 1700.0},
            "compensations": [{"id": "c1", "amount_eur": 150, "reason": "scratch", "at": at}],
        },
    )
    await _post(world, f"/sim/orders/{order_id}/status", {"status": "delivered"})
    world.h.clock.advance(timedelta(minutes=1))
    await world.sync()
    await _circles_minute(world)

    pings = [m.text or "" for m in world.tg.transcript(OWNER_ID) if "Margin leak" in (m.text or "")]
    assert len(pings) == 1
    ping = pings[0]
    # net = 2000 − 1700 − 120 − 60 − 150 = −30: negative (high); leak = 8 % × 2000 + 30 = 190 €
    assert f"Order {order_id}" in ping and "HIGH" in ping
    assert "Rule: negative margin" in ping and "leak 190 €" in ping
    assert "purchase above booked 200 €" in ping and "compensation 150 €" in ping
    assert "Recommended: renegotiate the purchase price with the seller" in ping
    # The leads see it too (a high signal), and another sync with the same figures raises nothing new.
    await world.sync()
    await _circles_minute(world)
    assert len([m for m in world.tg.transcript(OWNER_ID) if "Margin leak" in (m.text or "")]) == 1
    signals = await world.h.services.db.fetchall(
        "SELECT type, severity, repeats FROM ai_signals WHERE type LIKE 'unit_economics.%'"
    )
    assert [tuple(r) for r in signals] == [("unit_economics.margin_leak", "high", 0)]

    explained = await world.say(OWNER_ID, f"/margin {order_id}")
    assert f"Margin of order {order_id}" in explained
    assert "Purchase: 1,700 € (booked 1,500 €)" in explained and "Compensation: 150 € (scratch)" in explained
    assert "Net margin: -30 €" in explained or "Net margin: −30 €" in explained
    assert "Rule broken: negative margin; leak 190 €" in explained
    assert "Forecast at acceptance: 290 €" in explained
    week = await world.say(OWNER_ID, "/margin days 7")
    assert "1 order delivered" in week and "Leaks: 1 order, 190 €" in week and order_id in week
    assert "Use /margin" in await world.say(OWNER_ID, "/margin days lots")
    assert "owner and admins" in await world.say(ANNA, f"/margin {order_id}")


async def test_three_missed_offers_raise_the_scorecard_signal(world: World) -> None:
    await _english(world, ADMIN_ID, *LEAD_IDS, ANNA)
    for manager in ("boris", "vera"):
        assert "on leave" in await world.say(ADMIN_ID, f"/leave {manager} on")
    orders = [await world.crm_order() for _ in range(3)]
    await world.sync()
    for order_id in orders:
        assert "Accept" in (world.card(ANNA, order_id).text or "")
    world.h.clock.advance(timedelta(minutes=10))
    await dispatch_tick(world.h.services)
    await world.h.settle()
    await _circles_minute(world)

    # The leads chat reads Russian (the default language).
    pings = [
        m.text or "" for m in world.tg.transcript(LEADS_CHAT_ID) if "Менеджер проседает" in (m.text or "")
    ]
    assert len(pings) == 1 and "Manager anna пропустил(а) 3 заказа 23.11" in pings[0]
    await _circles_minute(world)  # the next minute raises nothing new
    assert len([m for m in world.tg.transcript(LEADS_CHAT_ID) if "проседает" in (m.text or "")]) == 1

    card = await world.say(LEAD_IDS[0], "/scorecard anna")
    assert "Scorecard of Manager anna" in card and "Missed: 3, declined: 0" in card
    overview = await world.say(ADMIN_ID, "/scorecard")
    assert "Manager anna: accept —, missed 3" in overview
    assert "Scorecard of Manager anna" in await world.say(ANNA, "/me")
    assert "leads and admins" in await world.say(ANNA, "/scorecard")
