"""The order flow end to end: the real bot (BotApp) against the Bot API emulator and the BikeWerk simulator,
both over HTTP, on a ManualClock. An order created in the CRM is synced, offered to the least-loaded manager
on shift, accepted from the card and moved through every status to delivered, with the CRM receiving each
write once; an unanswered offer and a declined one go to the next manager; the checklist is filled with photos
and refused until complete; a restart in the middle of the checklist resumes where it was; double taps and
two managers racing end with one accepted assignment.
"""

from __future__ import annotations

from datetime import timedelta

from bot.i18n import in_locale
from keyboards.signals import type_title
from scheduler.jobs import dispatch_tick
from storage.people import set_language
from tests.support.e2e_world import ANNA, BORIS, UNLIMITED, VERA, World, add_crm_manager, offered_order, world  # noqa: F401
from tests.support.harness import ADMIN_ID


async def test_an_order_from_the_crm_goes_through_every_status_to_delivered(world: World) -> None:
    assert world.h.simulator is not None
    # Anna carries an inspection already; Vera has said she is off shift: Boris is the one to get it.
    busy = world.h.simulator.create_order()["id"]
    world.h.simulator.change_status(busy, "inspection", manager_id="anna")
    assert "off shift" in await world.say(VERA, "/shift off")
    order_id = await world.crm_order()

    await world.sync()

    card = world.card(BORIS, order_id)
    assert "Accept by 23.11 09:10" in (card.text or "")
    assert [text for text, _ in card.buttons] == ["✅ Accept", "✖ Decline"]
    assert not [
        m for m in world.tg.transcript(ANNA) + world.tg.transcript(VERA) if order_id in (m.text or "")
    ]

    assert "is yours" in await world.press(BORIS, "Accept")
    card = world.card(BORIS, order_id)
    assert "Accepted" in (card.text or "") and [t for t, _ in card.buttons] == [
        "🔍 Start inspection",
        "Cancel the order",
    ]
    assert "Inspection" in await world.press(BORIS, "Start inspection")
    await world.fill_checklist(BORIS)
    assert "now waits for the client" in await world.press(BORIS, "Submit")
    await world.press(BORIS, "Client answered yes")
    await world.press(BORIS, "Shipped")
    assert "tracking number" in (world.card(BORIS, order_id).text or "")
    assert "in transit" in await world.say(BORIS, "1Z999AA10123456784")
    assert "Delivered" in await world.press(BORIS, "Delivered")

    card = world.card(BORIS, order_id)
    assert "Delivered" in (card.text or "") and "1Z999AA10123456784" in (card.text or "") and not card.buttons
    assert world.tg.unanswered_callbacks() == []
    writes = await world.crm_writes(order_id)
    assert [(w["kind"], w["payload"].get("status") or w["payload"]["manager_id"]) for w in writes] == [
        ("assign", "boris"),
        ("status", "accepted"),
        ("status", "inspection"),
        ("status", "awaiting_client"),
        ("status", "ready_for_shipment"),
        ("status", "in_transit"),
        ("status", "delivered"),
    ]
    assert len({w["idempotency_key"] for w in writes}) == len(writes)  # each applied once
    assert writes[5]["payload"]["tracking_number"] == "1Z999AA10123456784"
    await world.sync()  # the CRM's echo of our own changes changes nothing
    assert [w["idempotency_key"] for w in await world.crm_writes(order_id)] == [
        w["idempotency_key"] for w in writes
    ]


async def test_an_accept_timeout_hands_the_order_to_the_next_manager(world: World) -> None:
    order_id = await offered_order(world)
    offer = world.card(ANNA, order_id)
    world.h.clock.advance(timedelta(minutes=10))

    await dispatch_tick(world.h.services)
    await world.h.settle()

    expired = world.card(ANNA, order_id)
    assert "Not accepted by 23.11 09:10" in (expired.text or "") and not expired.buttons
    assert [t for t, _ in world.card(BORIS, order_id).buttons] == ["✅ Accept", "✖ Decline"]
    # Anna's late tap on the old card changes nothing.
    assert "no longer open" in await world.press_data(
        ANNA, offer.message_id, dict(offer.buttons)["✅ Accept"]
    )
    misses = await world.h.services.db.fetchall("SELECT id, misses FROM managers ORDER BY id")
    assert [tuple(r) for r in misses] == [("anna", 1), ("boris", 0), ("vera", 0)]


async def test_a_decline_asks_why_and_reassigns_at_once(world: World) -> None:
    order_id = await offered_order(world)

    await world.press(ANNA, "Decline")
    assert [t for t, _ in world.card(ANNA, order_id).buttons] == [
        "Too many orders right now",
        "Not available (off shift, away)",
        "Not my brand or bike type",
        "Other reason",
        "« Back",
    ]
    assert "another manager" in await world.press(ANNA, "Not my brand")

    assert "You declined this order: Not my brand or bike type." in (world.card(ANNA, order_id).text or "")
    assert [t for t, _ in world.card(BORIS, order_id).buttons] == ["✅ Accept", "✖ Decline"]


async def test_double_taps_forged_presses_and_two_managers_racing_end_with_one_accepted(world: World) -> None:
    first = await offered_order(world)
    card = world.card(ANNA, first)
    accept = dict(card.buttons)["✅ Accept"]
    await world.say(BORIS, "/my")  # a message of the bot in Boris's chat, to forge Anna's button under
    forged_under = world.tg.transcript(BORIS)[-1].message_id
    # Anna taps three times before the bot answers; Boris sends her button's data from his own chat.
    taps = [world.tg.press_button(ANNA, ANNA, card.message_id, accept) for _ in range(3)]
    forged = world.tg.press_button(BORIS, BORIS, forged_under, accept)
    await world.h.settle()

    assert sorted([await world.answer_of(q) for q in taps]) == sorted(
        [f"Accepted: order {first} is yours.", *[f"You have already accepted order {first}."] * 2]
    )
    assert await world.answer_of(forged) == "This offer is not for you."
    assert "already accepted" in await world.press_data(ANNA, card.message_id, accept)  # a replay, later

    # A second order goes to Boris, who misses it; Vera gets it. Boris's late tap races Vera's double tap.
    second = await world.crm_order()
    await world.sync()
    stale = world.card(BORIS, second)
    world.h.clock.advance(timedelta(minutes=10))
    await dispatch_tick(world.h.services)
    await world.h.settle()
    fresh = world.card(VERA, second)
    late = world.tg.press_button(BORIS, BORIS, stale.message_id, dict(stale.buttons)["✅ Accept"])
    race = [
        world.tg.press_button(VERA, VERA, fresh.message_id, dict(fresh.buttons)["✅ Accept"])
        for _ in range(2)
    ]
    await world.h.settle()

    assert await world.answer_of(late) == "This offer is no longer open."
    assert sorted([await world.answer_of(q) for q in race]) == sorted(
        [f"Accepted: order {second} is yours.", f"You have already accepted order {second}."]
    )
    rows = await world.h.services.db.fetchall(
        "SELECT order_id, manager_id, state FROM ai_assignments ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        (first, "anna", "accepted"),
        (second, "boris", "expired"),
        (second, "vera", "accepted"),
    ]
    for order_id in (first, second):
        writes = await world.crm_writes(order_id)
        assert [w["payload"].get("status") for w in writes if w["kind"] == "status"] == ["accepted"]
    assert world.tg.unanswered_callbacks() == []


async def test_the_checklist_refuses_submit_until_complete_and_resumes_after_a_restart(world: World) -> None:
    order_id = await offered_order(world)
    await world.press(ANNA, "Accept")
    await world.press(ANNA, "Start inspection")
    await world.press(ANNA, "Open checklist")
    await world.press(ANNA, "✅ 1")
    await world.press(ANNA, "📎 1")
    world.tg.send_photo(ANNA, b"\xff\xd8 serial number plate")
    await world.h.settle()
    assert "Attached to item 1" in (world.tg.transcript(ANNA)[-1].text or "")
    await world.press(ANNA, "Next »")
    await world.press(ANNA, "❌ 4")  # a crack in the frame

    refused = await world.press(ANNA, "Submit")

    assert "missing" in refused
    shown = world.checklist(ANNA).text or ""
    assert (
        "Not ready to submit" in shown
        and "2: not answered" in shown
        and "4: a failed item needs a note" in shown
    )
    leads = world.tg.transcript(-1001)
    # The leads chat reads the default language, Russian.
    with in_locale("ru"):
        severe = type_title("quality.severe_defect")
    assert severe != "Severe defect found"
    assert any(severe in (m.text or "") and order_id in (m.text or "") for m in leads)
    saved = list((world.h.settings.artifacts_dir).rglob("01-*.jpg"))
    assert len(saved) == 1 and saved[0].read_bytes() == b"\xff\xd8 serial number plate"

    # The bot restarts in the middle; the manager goes on where they were.
    before = world.checklist(ANNA)
    await world.h.restart()
    await world.press(ANNA, "📎 4")
    assert "Note saved for item 4" in await world.say(ANNA, "frame has a crack at the BB")
    after = world.checklist(ANNA)
    assert after.message_id == before.message_id and "page 2/9: Frame & fork" in (after.text or "")
    assert "📝 frame has a crack at the BB" in (after.text or "")
    assert "Answered 2/28" in (after.text or "")
    details = await world.say(ANNA, f"/order {order_id}")
    assert "2/28 answered" in details and "anna: accepted" in details


async def test_shift_capacity_leave_my_and_order_commands_answer_in_one_line(world: World) -> None:
    admin = 100
    async with world.h.services.db.transaction() as conn:
        await set_language(conn, telegram_id=admin, lang="en", now=world.h.clock.now())
    order_id = await offered_order(world)

    assert "Usage: /shift on or /shift off" in await world.say(VERA, "/shift maybe")
    assert "You are on shift" in await world.say(VERA, "/shift")
    assert "You are off shift" in await world.say(VERA, "/shift off")
    assert "This command is for admins." in await world.say(ANNA, "/capacity boris 3")
    assert "Usage: /capacity" in await world.say(admin, "/capacity anna lots")
    assert "Unknown manager ghost." in await world.say(admin, "/capacity ghost 3")
    assert "Capacity of boris: 3." in await world.say(admin, "/capacity boris 3")
    assert "Usage: /leave" in await world.say(admin, "/leave anna")
    assert "anna is on leave; 1 open offers went to others." in await world.say(admin, "/leave anna on")
    # Anna's offer went to Boris (Vera is off shift); her card says why.
    assert "you are on leave" in (world.card(ANNA, order_id).text or "")
    assert [t for t, _ in world.card(BORIS, order_id).buttons] == ["✅ Accept", "✖ Decline"]

    mine = await world.say(BORIS, "/my")
    assert f"{order_id}" in mine and "Accept or decline, by 23.11 09:10" in mine
    assert "You have no open orders." in await world.say(VERA, "/my")
    assert "Order NOPE not found." in await world.say(admin, "/order NOPE")
    assert "Only the order's manager or an admin" in await world.say(VERA, f"/order {order_id}")
    details = await world.say(admin, f"/order {order_id}")
    assert "anna: withdrawn" in details and "boris: offered" in details and "on leave: 1" in details


async def test_forged_and_stale_buttons_are_answered_and_change_nothing(world: World) -> None:
    order_id = await offered_order(world)
    card = world.card(ANNA, order_id)
    for data in (
        "st:insp:999999",
        "cl:p:999999:1",
        "of:acc:notanumber",
        "st:",
        "cl:sub:abc",
        "of:why:1:bored",
    ):
        answer = await world.press_data(ANNA, card.message_id, data)
        assert answer, f"{data!r} got no explanation"
    assert world.tg.unanswered_callbacks() == []
    rows = await world.h.services.db.fetchall("SELECT state FROM ai_assignments")
    assert [r[0] for r in rows] == ["offered"]
    assert [t for t, _ in world.card(ANNA, order_id).buttons] == ["✅ Accept", "✖ Decline"]


async def test_cancel_asks_for_a_reason_and_a_change_in_the_crm_edits_the_card(world: World) -> None:
    assert world.h.simulator is not None
    first = await offered_order(world)
    await world.press(ANNA, "Accept")
    await world.press(ANNA, "Cancel the order")
    assert [t for t, _ in world.card(ANNA, first).buttons] == [
        "Client cancelled",
        "Seller withdrew the bike",
        "Failed inspection",
        "Other reason",
        "« Back",
    ]
    await world.press(ANNA, "« Back")
    assert "🔍 Start inspection" in [t for t, _ in world.card(ANNA, first).buttons]
    await world.press(ANNA, "Cancel the order")
    # A manager's cancel waits for an admin's approval (the whole story: tests/test_approvals.py).
    assert "requested" in await world.press(ANNA, "Seller withdrew")
    [signal] = await world.h.services.db.fetchall("SELECT id FROM ai_signals WHERE order_id = ?", (first,))
    await world.say(ADMIN_ID, f"/decide {signal['id']} approve")
    assert "Cancelled: Seller withdrew the bike" in (world.card(ANNA, first).text or "")
    writes = await world.crm_writes(first)
    assert writes[-1]["payload"] == {
        "status": "cancelled",
        "actor": f"admin:{ADMIN_ID}",
        "at": writes[-1]["payload"]["at"],
        "reason": "seller",
    }

    # Someone moves Boris's accepted order on in the CRM itself: the next sync edits his card.
    second = await world.crm_order()
    await world.sync()
    await world.press(BORIS, "Accept")
    await world.crm_writes(second)  # the CRM has our "accepted"; until then the bot's status stands
    world.h.simulator.change_status(second, "inspection", actor="crm")
    await world.sync()
    card = world.card(BORIS, second)
    assert "Inspection" in (card.text or "") and "📋 Open checklist" in [t for t, _ in card.buttons]
