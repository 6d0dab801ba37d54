"""Dispatch, acceptance control and status progression at the use-case level: real SQLite, a ManualClock, no
Telegram. What a user would notice: who gets the card, what it says, what the CRM is told, what is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import in_locale
from bot.services import Services
from circles.sales_ops import dispatcher, orders
from circles.sales_ops.dispatcher import DispatchReport
from circles.sales_ops.orders import ActionRefused
from domain.models import Order
from domain.statuses import Status
from keyboards.orders import OfferCallback, OfferCards
from storage.assignments import candidates_of, get_assignment
from storage.messages import encode_markup
from storage.people import mark_chat_blocked
from tests.support.order_world import (
    ADMIN,
    LEADS_CHAT,
    MONDAY_9,
    Wakes,
    add_manager,
    add_order,
    clock_of,
    fill_checklist,
    make_services,
    rows,
)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    s = await make_services(tmp_path)
    yield s
    await s.db.close()


async def three_managers(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_manager(services, "m3", 1003)


async def card(services: Services, chat_id: int, order_id: str) -> dict:
    found = await rows(
        services, "SELECT * FROM tg_messages WHERE chat_id = ? AND ref = ?", chat_id, f"order:{order_id}:card"
    )
    assert found, f"no card for order {order_id} in chat {chat_id}"
    return found[0]


def button_texts(message: dict) -> list[str]:
    markup = json.loads(message["markup"]) if message["markup"] else {"inline_keyboard": []}
    return [button["text"] for row in markup["inline_keyboard"] for button in row]


async def crm_writes(services: Services, order_id: str) -> list[dict]:
    return await rows(services, "SELECT * FROM crm_outbox WHERE order_id = ? ORDER BY id", order_id)


async def scores(services: Services, assignment_id: int) -> dict[str, tuple[float | None, int, str]]:
    """Every candidate of an assignment as stored: manager -> (load, open orders, reason)."""
    assignment = await get_assignment(services.db.conn, assignment_id)
    assert assignment is not None
    return {
        c.manager_id: (c.load, c.open_orders, c.reason)
        for c in await candidates_of(services.db.conn, assignment)
    }


async def offer_of(services: Services, order_id: str) -> dict:
    found = await rows(services, "SELECT * FROM ai_assignments WHERE order_id = ? ORDER BY id DESC", order_id)
    return found[0]


async def accept(services: Services, order_id: str, telegram_id: int) -> dispatcher.Accepted:
    offer = await offer_of(services, order_id)
    return await dispatcher.accept_offer(
        services, offer["id"], actor_telegram_id=telegram_id, now=services.clock.now()
    )


# --- who gets the order


async def test_new_order_goes_to_the_least_loaded_manager_with_a_card_and_a_crm_write(
    services: Services,
) -> None:
    await three_managers(services)
    # m1 carries an inspection (weight 1.5), m2 two orders in transit (0.25 each), m3 one accepted (1.0).
    await add_order(services, "busy-1", status=Status.INSPECTION, manager_id="m1")
    await add_order(services, "busy-2", status=Status.IN_TRANSIT, manager_id="m2")
    await add_order(services, "busy-3", status=Status.IN_TRANSIT, manager_id="m2")
    await add_order(services, "busy-4", status=Status.ACCEPTED, manager_id="m3")
    await add_order(services, "A-1", client_city="Leipzig", price_eur=1899.0)

    report = await dispatcher.dispatch_pending(services)

    assert report.offered == {"A-1": "m2"}
    offer = await offer_of(services, "A-1")
    assert offer["state"] == "offered" and offer["reason"] == "lowest_load"
    assert offer["expires_at"] == "2026-11-23T08:10:00.000000Z"  # 10 working minutes
    assert await scores(services, offer["id"]) == {
        "m1": (0.15, 1, "ok"),
        "m2": (0.05, 2, "ok"),
        "m3": (0.1, 1, "ok"),
    }
    shown = await card(services, 1002, "A-1")
    assert "Order A-1" in shown["body"] and "Canyon Spectral 125" in shown["body"]
    assert (
        "1 899 €" in shown["body"] and "Leipzig" in shown["body"] and "Accept by 23.11 09:10" in shown["body"]
    )
    assert button_texts(shown) == ["✅ Accept", "✖ Decline"]
    writes = await crm_writes(services, "A-1")
    assert [(w["kind"], json.loads(w["payload"])["manager_id"]) for w in writes] == [("assign", "m2")]
    assert writes[0]["idempotency_key"] == f"assign:{offer['id']}"
    assert isinstance(services.wake_sender, Wakes) and services.wake_sender.count == 1  # delivery asked for


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_pass_renders_offer_cards_exactly_as_one_card_at_a_time(lang: str) -> None:
    """The pass's renderer (deadline and keyboard prepared once) gives the same text and stored markup."""
    order = Order(
        id="BW-<1>",
        status=Status.PENDING_MANAGER,
        created_at=MONDAY_9,
        updated_at=MONDAY_9,
        status_since=MONDAY_9,
        client_name="Client",
        client_city="Köln & Co",
        bike_brand='Cube "Stereo"',
        bike_model="",
        price_eur=12345.0,
        is_ebike=True,
        seller="seller",
    )
    expires = MONDAY_9 + timedelta(minutes=10)
    with in_locale(lang):
        cards = OfferCards(ZoneInfo("Europe/Berlin"))
        one = cards.render(order, 40217, expires)
        batch = cards.encoded(expires)(order, 40217)
    assert batch == (one[0], encode_markup(one[1]))
    accept = json.loads(batch[1] or "")["inline_keyboard"][0][0]
    assert OfferCallback.unpack(accept["callback_data"]).a == 40217


async def test_a_second_pass_offers_nothing_twice(services: Services) -> None:
    await three_managers(services)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    again = await dispatcher.dispatch_pending(services)
    assert again.offered == {}
    assert len(await rows(services, "SELECT id FROM ai_assignments")) == 1
    assert len(await crm_writes(services, "A-1")) == 1


async def test_orders_of_one_pass_spread_over_managers_by_load(services: Services) -> None:
    await three_managers(services)
    for n in range(6):
        await add_order(services, f"A-{n}", created_at=MONDAY_9 - timedelta(minutes=10 - n))
    report = await dispatcher.dispatch_pending(services)
    per_manager = sorted(list(report.offered.values()).count(m) for m in ("m1", "m2", "m3"))
    assert per_manager == [2, 2, 2]
    # Ties go to the manager assigned longest ago: never-assigned first, then in id order.
    assert [report.offered[f"A-{n}"] for n in range(3)] == ["m1", "m2", "m3"]


async def test_ties_go_to_the_manager_assigned_longest_ago(services: Services) -> None:
    await three_managers(services)
    await add_order(services, "A-1")
    assert (await dispatcher.dispatch_pending(services)).offered == {"A-1": "m1"}
    await accept(services, "A-1", 1001)
    await orders.cancel_order(
        services, "A-1", actor_telegram_id=ADMIN, now=services.clock.now(), reason="client"
    )
    clock_of(services).advance(timedelta(minutes=5))
    await add_order(services, "A-2")
    # All three carry no load now; m1 was assigned last, so m2 (never assigned, first by id) gets it.
    assert (await dispatcher.dispatch_pending(services)).offered == {"A-2": "m2"}


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("inactive", "inactive"),
        ("leave", "on_leave"),
        ("capacity", "at_capacity"),
        ("shift_off", "off_shift"),
        ("no_telegram", "no_telegram"),
        ("blocked", "no_telegram"),  # blocked the bot: a card there could never be answered
    ],
)
async def test_managers_who_cannot_take_it_are_skipped_and_say_why(
    services: Services, setup: str, reason: str
) -> None:
    now = services.clock.now()
    await add_manager(services, "m1", None if setup == "no_telegram" else 1001, active=setup != "inactive")
    await add_manager(services, "m2", 1002)
    await add_order(services, "busy", status=Status.INSPECTION, manager_id="m2")  # m2 is the busier one
    if setup == "leave":
        await dispatcher.set_leave(services, "m1", True, actor_telegram_id=ADMIN, now=now)
    if setup == "capacity":
        await dispatcher.set_capacity(services, "m1", 0, actor_telegram_id=ADMIN, now=now)
    if setup == "shift_off":
        await dispatcher.set_shift(services, actor_telegram_id=1001, on=False, now=now)
    if setup == "blocked":
        async with services.db.transaction() as conn:
            await mark_chat_blocked(conn, 1001, now=now)
    await add_order(services, "A-1")

    report = await dispatcher.dispatch_pending(services)

    assert report.offered == {"A-1": "m2"}
    reasons = {
        m: why for m, (_, _, why) in (await scores(services, (await offer_of(services, "A-1"))["id"])).items()
    }
    assert reasons == {"m1": reason, "m2": "ok"}


async def test_outside_working_hours_only_managers_on_shift_get_orders(services: Services) -> None:
    clock_of(services).set(datetime(2026, 11, 23, 19, 0, tzinfo=UTC))  # 20:00 in Berlin
    await three_managers(services)
    state = await dispatcher.set_shift(services, actor_telegram_id=1003, on=True, now=services.clock.now())
    assert state.on_shift and state.override == "on"
    await add_order(services, "A-1")
    assert (await dispatcher.dispatch_pending(services)).offered == {"A-1": "m3"}
    # The offer made in the evening expires 10 working minutes after the next day opens.
    assert (await offer_of(services, "A-1"))["expires_at"] == "2026-11-24T08:10:00.000000Z"
    # Saying "off" in the evening just follows the calendar again: back on shift tomorrow at 09:00.
    state = await dispatcher.set_shift(services, actor_telegram_id=1003, on=False, now=services.clock.now())
    assert not state.on_shift and state.override is None


async def test_no_candidate_raises_order_unassigned_once_and_dispatches_when_someone_can(
    services: Services,
) -> None:
    await add_manager(services, "m1", 1001)
    await dispatcher.set_leave(services, "m1", True, actor_telegram_id=ADMIN, now=services.clock.now())
    await add_order(services, "A-1")

    first = await dispatcher.dispatch_pending(services)
    clock_of(services).advance(timedelta(minutes=1))
    second = await dispatcher.dispatch_pending(services)

    assert first.unassigned == ["A-1"] and first.signals == 1
    assert second.unassigned == ["A-1"] and second.signals == 0
    signals = await rows(services, "SELECT * FROM ai_signals WHERE type = 'order.unassigned'")
    assert len(signals) == 1 and signals[0]["order_id"] == "A-1" and signals[0]["severity"] == "high"
    pings = await rows(services, "SELECT * FROM tg_messages WHERE ref = ?", f"signal:{signals[0]['id']}")
    assert [p["chat_id"] for p in pings] == [LEADS_CHAT]

    await dispatcher.set_leave(services, "m1", False, actor_telegram_id=ADMIN, now=services.clock.now())
    third = await dispatcher.dispatch_pending(services)
    assert third.offered == {"A-1": "m1"}
    assert await rows(services, "SELECT * FROM dispatch_waits") == []


# --- acceptance control


async def test_an_unanswered_offer_expires_counts_a_miss_and_goes_to_the_next_manager(
    services: Services,
) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "busy", status=Status.ACCEPTED, manager_id="m2")
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    clock_of(services).advance(timedelta(minutes=9, seconds=59))
    assert (await dispatcher.dispatch_tick(services)).expired == []

    clock_of(services).advance(timedelta(seconds=1))
    report = await dispatcher.dispatch_tick(services)

    assert report.expired == [("A-1", "m1")] and report.offered == {"A-1": "m2"}
    states = [(r["manager_id"], r["state"]) for r in await rows(services, "SELECT * FROM ai_assignments")]
    assert states == [("m1", "expired"), ("m2", "offered")]
    managers = {r["id"]: r["misses"] for r in await rows(services, "SELECT id, misses FROM managers")}
    assert managers == {"m1": 1, "m2": 0}
    decision = (await rows(services, "SELECT * FROM ai_decisions"))[0]
    assert (decision["kind"], decision["action"], decision["order_id"]) == ("auto", "reassign", "A-1")
    assert "10 working minutes" in decision["reason"]
    old_card = await card(services, 1001, "A-1")
    assert "Not accepted by 23.11 09:10" in old_card["body"] and old_card["markup"] is None
    second = await scores(services, (await offer_of(services, "A-1"))["id"])
    assert {m: why for m, (_, _, why) in second.items()} == {"m1": "excluded", "m2": "ok"}


async def test_the_acceptance_timeout_counts_working_minutes_only(services: Services) -> None:
    clock_of(services).set(datetime(2026, 11, 27, 16, 55, tzinfo=UTC))  # Friday 17:55 in Berlin
    await add_manager(services, "m1", 1001)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    clock_of(services).set(datetime(2026, 11, 30, 8, 4, tzinfo=UTC))  # Monday 09:04
    assert (await dispatcher.dispatch_tick(services)).expired == []
    clock_of(services).set(datetime(2026, 11, 30, 8, 5, tzinfo=UTC))  # 5 + 5 working minutes
    assert (await dispatcher.dispatch_tick(services)).expired == [("A-1", "m1")]


async def test_decline_asks_for_a_reason_and_reassigns_at_once(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    offer = await offer_of(services, "A-1")
    now = services.clock.now()

    await dispatcher.show_decline_reasons(services, offer["id"], actor_telegram_id=1001, now=now)
    asking = await card(services, 1001, "A-1")
    assert "Why do you decline?" in asking["body"]
    assert button_texts(asking) == [
        "Too many orders right now",
        "Not available (off shift, away)",
        "Not my brand or bike type",
        "Other reason",
        "« Back",
    ]
    with pytest.raises(ActionRefused) as bad:
        await dispatcher.decline_offer(services, offer["id"], "bored", actor_telegram_id=1001, now=now)
    assert bad.value.code == "bad_reason"

    report = await dispatcher.decline_offer(services, offer["id"], "busy", actor_telegram_id=1001, now=now)

    assert report.offered == {"A-1": "m2"}
    declined = await rows(
        services, "SELECT state, decline_reason FROM ai_assignments WHERE id = ?", offer["id"]
    )
    assert declined == [{"state": "declined", "decline_reason": "busy"}]
    assert (
        "You declined this order: Too many orders right now." in (await card(services, 1001, "A-1"))["body"]
    )
    managers = {r["id"]: r["misses"] for r in await rows(services, "SELECT id, misses FROM managers")}
    assert managers == {"m1": 0, "m2": 0}  # a decline is an answer, not a miss


async def test_only_the_offered_manager_can_answer_and_only_while_it_is_open(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    offer = await offer_of(services, "A-1")
    now = services.clock.now()
    for telegram_id in (1002, ADMIN, 555):
        with pytest.raises(ActionRefused) as refused:
            await dispatcher.accept_offer(services, offer["id"], actor_telegram_id=telegram_id, now=now)
        assert refused.value.code == "not_your_offer"
    with pytest.raises(ActionRefused):
        await dispatcher.accept_offer(services, 999_999, actor_telegram_id=1001, now=now)
    await dispatcher.decline_offer(services, offer["id"], "away", actor_telegram_id=1001, now=now)
    with pytest.raises(ActionRefused) as gone:
        await dispatcher.accept_offer(services, offer["id"], actor_telegram_id=1001, now=now)
    assert gone.value.code == "offer_gone"


async def test_accept_moves_the_order_on_and_tells_the_crm(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    clock_of(services).advance(timedelta(minutes=3))

    result = await accept(services, "A-1", 1001)

    assert result.order.status is Status.ACCEPTED and not result.repeated
    history = await rows(services, "SELECT from_status, to_status, actor, source FROM order_status_events")
    assert history == [
        {"from_status": "pending_manager", "to_status": "accepted", "actor": "m1", "source": "bot"}
    ]
    timers = await rows(services, "SELECT status, breach_at FROM sla_timers WHERE closed_at IS NULL")
    assert timers == [{"status": "accepted", "breach_at": "2026-11-23T12:03:00.000000Z"}]  # 4 working hours
    assert [w["kind"] for w in await crm_writes(services, "A-1")] == ["assign", "status"]
    shown = await card(services, 1001, "A-1")
    assert "Accepted" in shown["body"] and "Next step: Contact the seller" in shown["body"]
    assert button_texts(shown) == ["🔍 Start inspection", "Cancel the order"]


# --- exactly one accepted assignment
# The racers below each have their own connection to the same database file (as two bot processes, or a bot
# and a CLI, would): one Database serialises its transactions behind one lock, so it cannot race at all.


@asynccontextmanager
async def rivals(tmp_path: Path, services: Services, count: int) -> AsyncIterator[list[Services]]:
    """`count` more connections to the database of `services`, with its clock's time."""
    opened = [await make_services(tmp_path, now=services.clock.now(), exclusive=False) for _ in range(count)]
    try:
        yield opened
    finally:
        for other in opened:
            await other.db.close()


async def test_double_taps_and_replays_end_with_one_accepted_assignment(
    services: Services, tmp_path: Path
) -> None:
    await add_manager(services, "m1", 1001)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    offer = await offer_of(services, "A-1")
    now = services.clock.now()

    async with rivals(tmp_path, services, 5) as racers:
        results = await asyncio.gather(
            *(dispatcher.accept_offer(r, offer["id"], actor_telegram_id=1001, now=now) for r in racers)
        )

    assert sorted(r.repeated for r in results) == [False, True, True, True, True]
    assert len(await rows(services, "SELECT * FROM ai_assignments WHERE state = 'accepted'")) == 1
    assert len(await rows(services, "SELECT * FROM order_status_events")) == 1
    assert [w["kind"] for w in await crm_writes(services, "A-1")] == ["assign", "status"]


async def test_two_managers_racing_for_one_order_end_with_one_accepted(
    services: Services, tmp_path: Path
) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    first = await offer_of(services, "A-1")
    clock_of(services).advance(timedelta(minutes=10))
    await dispatcher.dispatch_tick(services)  # m1 missed it; now it is m2's
    second = await offer_of(services, "A-1")
    now = services.clock.now()

    async with rivals(tmp_path, services, 3) as (one, two, three):
        outcomes = await asyncio.gather(
            dispatcher.accept_offer(one, first["id"], actor_telegram_id=1001, now=now),
            dispatcher.accept_offer(two, second["id"], actor_telegram_id=1002, now=now),
            dispatcher.accept_offer(three, second["id"], actor_telegram_id=1002, now=now),
            return_exceptions=True,
        )

    assert isinstance(outcomes[0], ActionRefused) and outcomes[0].code == "offer_gone"
    accepted = await rows(services, "SELECT manager_id FROM ai_assignments WHERE state = 'accepted'")
    assert accepted == [{"manager_id": "m2"}]


async def test_accepting_while_the_timeout_fires_has_one_outcome(services: Services, tmp_path: Path) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    offer = await offer_of(services, "A-1")
    clock_of(services).advance(timedelta(minutes=10))

    async with rivals(tmp_path, services, 2) as (manager, job):
        outcome = await asyncio.gather(
            dispatcher.accept_offer(manager, offer["id"], actor_telegram_id=1001, now=services.clock.now()),
            dispatcher.dispatch_tick(job),
            return_exceptions=True,
        )

    accepted = await rows(services, "SELECT manager_id FROM ai_assignments WHERE state = 'accepted'")
    live = await rows(
        services, "SELECT manager_id FROM ai_assignments WHERE state IN ('offered', 'accepted')"
    )
    assert len(live) == 1
    if isinstance(outcome[0], ActionRefused):  # the timeout won: m2 has the offer, nobody accepted yet
        assert accepted == [] and live == [{"manager_id": "m2"}]
    else:  # the accept won: nothing expired
        assert accepted == [{"manager_id": "m1"}]
        assert isinstance(outcome[1], DispatchReport) and outcome[1].expired == []


async def test_two_processes_racing_on_one_database_end_with_one_accepted(tmp_path: Path) -> None:
    one = await make_services(tmp_path, exclusive=False)
    two = await make_services(tmp_path, exclusive=False)
    try:
        await add_manager(one, "m1", 1001)
        await add_order(one, "A-1")
        await dispatcher.dispatch_pending(one)
        offer = await offer_of(one, "A-1")
        now = one.clock.now()
        outcomes = await asyncio.gather(
            dispatcher.accept_offer(one, offer["id"], actor_telegram_id=1001, now=now),
            dispatcher.accept_offer(two, offer["id"], actor_telegram_id=1001, now=now),
        )
        assert sorted(o.repeated for o in outcomes) == [False, True]
        assert len(await rows(one, "SELECT * FROM ai_assignments WHERE state = 'accepted'")) == 1
        assert len(await rows(one, "SELECT * FROM order_status_events")) == 1
    finally:
        await one.db.close()
        await two.db.close()


# --- status progression


async def accepted_order(services: Services, order_id: str = "A-1") -> None:
    await add_manager(services, "m1", 1001)
    await add_order(services, order_id)
    await dispatcher.dispatch_pending(services)
    await accept(services, order_id, 1001)


async def test_an_order_goes_through_every_status_with_one_crm_write_each(services: Services) -> None:
    await accepted_order(services)
    clock = clock_of(services)

    async def move(to: Status, **extra: Any) -> None:
        clock.advance(timedelta(minutes=30))
        await orders.change_status(services, "A-1", to, actor_telegram_id=1001, now=clock.now(), **extra)

    await move(Status.INSPECTION)
    for premature in (Status.AWAITING_CLIENT, Status.READY_FOR_SHIPMENT, Status.DELIVERED):
        with pytest.raises(ActionRefused) as refused:
            await move(premature)
        assert refused.value.code == (
            "checklist_incomplete" if premature is Status.AWAITING_CLIENT else "not_allowed"
        )
    await fill_checklist(services, "A-1", 1001)
    await move(Status.AWAITING_CLIENT)
    await move(Status.READY_FOR_SHIPMENT)
    await move(Status.IN_TRANSIT, tracking="1Z999AA10123456784")
    await move(Status.DELIVERED)

    chain = ["accepted", "inspection", "awaiting_client", "ready_for_shipment", "in_transit", "delivered"]
    history = await rows(
        services, "SELECT from_status, to_status, source FROM order_status_events ORDER BY id"
    )
    assert [h["to_status"] for h in history] == chain and {h["source"] for h in history} == {"bot"}
    assert [h["from_status"] for h in history] == ["pending_manager", *chain[:-1]]
    writes = await crm_writes(services, "A-1")
    assert [w["kind"] for w in writes] == ["assign"] + ["status"] * len(chain)
    assert [json.loads(w["payload"])["status"] for w in writes[1:]] == chain
    assert len({w["idempotency_key"] for w in writes}) == len(writes)
    visits = await rows(services, "SELECT status, closed_at FROM sla_timers ORDER BY id")
    assert [v["status"] for v in visits] == chain[:-1] and all(v["closed_at"] for v in visits)
    shown = await card(services, 1001, "A-1")
    assert "Delivered" in shown["body"] and "1Z999AA10123456784" in shown["body"] and shown["markup"] is None


async def test_shipping_needs_a_tracking_number_and_delivery_closes_the_order(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_order(services, "A-1", status=Status.READY_FOR_SHIPMENT, manager_id="m1")
    now = services.clock.now()
    for bad in (None, "", "x", "no way!"):
        with pytest.raises(ActionRefused) as refused:
            await orders.change_status(
                services, "A-1", Status.IN_TRANSIT, actor_telegram_id=1001, now=now, tracking=bad
            )
        assert refused.value.code in ("tracking_required", "bad_tracking")

    await orders.show_card_mode(services, "A-1", "tracking", actor_telegram_id=1001, now=now)
    assert await orders.awaited_input(services, 1001) == "tracking"
    shipped = await orders.answer_tracking(services, telegram_id=1001, text=" DHL-1234 5678 ", now=now)
    assert (
        shipped is not None
        and shipped.status is Status.IN_TRANSIT
        and shipped.tracking_number == "DHL-1234 5678"
    )
    assert await orders.awaited_input(services, 1001) is None
    delivered = await orders.change_status(services, "A-1", Status.DELIVERED, actor_telegram_id=1001, now=now)

    assert delivered.status is Status.DELIVERED
    writes = [json.loads(w["payload"]) for w in await crm_writes(services, "A-1")]
    assert [w["status"] for w in writes] == ["in_transit", "delivered"]
    assert writes[0]["tracking_number"] == "DHL-1234 5678"
    assert await rows(services, "SELECT * FROM sla_timers WHERE closed_at IS NULL") == []
    with pytest.raises(ActionRefused) as closed:
        await orders.cancel_order(services, "A-1", actor_telegram_id=1001, now=now, reason="other")
    assert closed.value.code == "final_status"


async def test_the_client_answering_and_cancelling_need_the_right_buttons_and_reasons(
    services: Services,
) -> None:
    await add_manager(services, "m1", 1001)
    await add_order(services, "A-1", status=Status.AWAITING_CLIENT, manager_id="m1")
    await add_order(services, "A-2", status=Status.AWAITING_CLIENT, manager_id="m1")
    now = services.clock.now()
    ready = await orders.change_status(
        services, "A-1", Status.READY_FOR_SHIPMENT, actor_telegram_id=1001, now=now
    )
    assert ready.status is Status.READY_FOR_SHIPMENT
    with pytest.raises(ActionRefused) as no_reason:
        await orders.cancel_order(services, "A-2", actor_telegram_id=1001, now=now, reason=None)
    assert no_reason.value.code == "reason_required"
    # An admin's cancel happens at once (a manager's waits for an admin: tests/test_approvals.py).
    cancelled = (
        await orders.cancel_order(services, "A-2", actor_telegram_id=ADMIN, now=now, reason="client_no")
    ).order
    assert cancelled.status is Status.CANCELLED
    events = await rows(services, "SELECT reason FROM order_status_events WHERE order_id = 'A-2'")
    assert events == [{"reason": "client_no"}]


async def test_only_the_orders_manager_or_an_admin_moves_it(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1", status=Status.ACCEPTED, manager_id="m1")
    now = services.clock.now()
    for stranger in (1002, 555):
        with pytest.raises(ActionRefused) as refused:
            await orders.change_status(
                services, "A-1", Status.INSPECTION, actor_telegram_id=stranger, now=now
            )
        assert refused.value.code == "forbidden"
    with pytest.raises(ActionRefused) as missing:
        await orders.change_status(services, "nope", Status.INSPECTION, actor_telegram_id=ADMIN, now=now)
    assert missing.value.code == "not_found"
    moved = await orders.change_status(services, "A-1", Status.INSPECTION, actor_telegram_id=ADMIN, now=now)
    assert moved.status is Status.INSPECTION
    events = await rows(services, "SELECT actor FROM order_status_events")
    assert events == [{"actor": f"admin:{ADMIN}"}]
    # Nothing refused above left a trace.
    assert [w["kind"] for w in await crm_writes(services, "A-1")] == ["status"]


async def test_a_change_seen_in_the_crm_withdraws_the_offer_and_edits_the_cards(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await add_order(services, "B-1")
    await dispatcher.dispatch_pending(services)
    await accept(services, "B-1", 1002)
    # The CRM moved A-1 to accepted with m2 and B-1 on to inspection (as the sync would store it).
    await add_order(services, "A-1", status=Status.ACCEPTED, manager_id="m2")
    await add_order(services, "B-1", status=Status.INSPECTION, manager_id="m2")

    refreshed = await orders.refresh_cards(services, ["A-1", "B-1"])

    assert refreshed == 2
    assert (await offer_of(services, "A-1"))["state"] == "released"
    assert (
        "This offer was withdrawn: the order changed in the CRM."
        in (await card(services, 1001, "A-1"))["body"]
    )
    assert "Inspection" in (await card(services, 1002, "B-1"))["body"]
    assert button_texts(await card(services, 1002, "B-1")) == ["📋 Open checklist", "Cancel the order"]


# --- /my, /order, capacity and leave


async def test_my_orders_lists_offers_and_open_orders_with_deadlines(services: Services) -> None:
    await accepted_order(services, "A-1")
    await add_order(services, "A-2")
    await dispatcher.dispatch_pending(services)
    items = await orders.my_orders(services, telegram_id=1001)
    assert [(i.order.id, i.offered) for i in items] == [("A-2", True), ("A-1", False)]
    assert items[0].deadline == MONDAY_9 + timedelta(minutes=10)
    with pytest.raises(ActionRefused):
        await orders.my_orders(services, telegram_id=555)


async def test_order_details_explain_the_assignment_to_its_manager_and_admins(services: Services) -> None:
    await add_manager(services, "m2", 1002)
    await accepted_order(services, "A-1")
    details = await orders.order_details(services, "A-1", actor_telegram_id=1001)
    assert [h.to_status for h in details.history] == [Status.ACCEPTED]
    assert [(a.manager_id, a.state, a.reason) for a, _ in details.assignments] == [
        ("m1", "accepted", "lowest_load")
    ]
    assert {c.manager_id for c in details.assignments[0][1]} == {"m1", "m2"}
    assert (await orders.order_details(services, "A-1", actor_telegram_id=ADMIN)).order.id == "A-1"
    with pytest.raises(ActionRefused) as refused:
        await orders.order_details(services, "A-1", actor_telegram_id=1002)
    assert refused.value.code == "forbidden"


async def test_capacity_and_leave_are_for_admins_and_leave_hands_offers_on(services: Services) -> None:
    await add_manager(services, "m1", 1001)
    await add_manager(services, "m2", 1002)
    await add_order(services, "A-1")
    await dispatcher.dispatch_pending(services)
    now = services.clock.now()
    for call in (
        dispatcher.set_capacity(services, "m1", 3, actor_telegram_id=1001, now=now),
        dispatcher.set_leave(services, "m1", True, actor_telegram_id=1001, now=now),
    ):
        with pytest.raises(ActionRefused) as refused:
            await call
        assert refused.value.code == "forbidden"
    for bad in (-1, 501):
        with pytest.raises(ActionRefused):
            await dispatcher.set_capacity(services, "m1", bad, actor_telegram_id=ADMIN, now=now)
    with pytest.raises(ActionRefused) as unknown:
        await dispatcher.set_capacity(services, "zz", 3, actor_telegram_id=ADMIN, now=now)
    assert unknown.value.code == "no_manager"

    manager = await dispatcher.set_capacity(services, "m1", 3, actor_telegram_id=ADMIN, now=now)
    assert manager.capacity == 3
    assert (
        await dispatcher.set_capacity(services, "m1", None, actor_telegram_id=ADMIN, now=now)
    ).capacity == 10
    _, released = await dispatcher.set_leave(services, "m1", True, actor_telegram_id=ADMIN, now=now)

    assert released == 1
    states = [(r["manager_id"], r["state"]) for r in await rows(services, "SELECT * FROM ai_assignments")]
    assert states == [("m1", "released"), ("m2", "offered")]
    assert "you are on leave" in (await card(services, 1001, "A-1"))["body"]


async def test_every_candidate_of_every_offer_of_a_pass_is_kept_as_scored_then(services: Services) -> None:
    await three_managers(services)
    await add_order(services, "busy", status=Status.INSPECTION, manager_id="m3")
    for n in range(4):
        await add_order(services, f"A-{n}", created_at=MONDAY_9 - timedelta(minutes=10 - n))
    await dispatcher.dispatch_pending(services)
    offers = await rows(services, "SELECT id, order_id, manager_id FROM ai_assignments ORDER BY id")
    seen = [await scores(services, o["id"]) for o in offers]
    # Each pick sees the loads left by the picks before it in the same pass.
    assert [o["manager_id"] for o in offers] == ["m1", "m2", "m1", "m2"]
    assert [s["m1"][:2] for s in seen] == [(0.0, 0), (0.1, 1), (0.1, 1), (0.2, 2)]
    assert [s["m2"][:2] for s in seen] == [(0.0, 0), (0.0, 0), (0.1, 1), (0.1, 1)]
    assert all(s["m3"] == (0.15, 1, "ok") for s in seen)
