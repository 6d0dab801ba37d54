"""A manager's cancel waits for an admin (SPEC §6): the request raises one approval signal per order and the
card says it waits; an approval cancels through the ordinary status change (history, CRM outbox, SLA visit,
card) with the admin as the actor; a reject puts the card back and tells the manager; an order that moved on
meanwhile is left alone. Use cases over real SQLite on a ManualClock, and one run of the real bot against the
Bot API emulator and the BikeWerk simulator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backbone.commands import Outcome, act
from bot.services import Services
from circles.sales_ops import orders
from circles.sales_ops.orders import Cancellation
from domain.actors import Actor
from domain.signals import DecideAction, SignalCommand
from domain.statuses import Status
from storage.people import set_language
from testkit.emulator import BotMessage
from tests.support.e2e_world import ANNA, World, offered_order, world  # noqa: F401 - `world` is the e2e fixture
from tests.support.harness import ADMIN_CHAT_ID, ADMIN_ID
from tests.support.order_world import ADMIN, LEADS_CHAT, add_manager, add_order, clock_of, make_services, rows

MANAGER = 1001
ADMIN_ACTOR = Actor(ADMIN, staff=True, approver=True)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    s = await make_services(tmp_path)
    await add_manager(s, "m1", MANAGER)
    await add_order(s, "A-1", status=Status.INSPECTION, manager_id="m1")
    yield s
    await s.db.close()


async def request_cancel(services: Services, reason: str = "seller") -> Cancellation:
    return await orders.cancel_order(
        services, "A-1", actor_telegram_id=MANAGER, now=services.clock.now(), reason=reason
    )


async def decide(services: Services, signal_id: int, action: DecideAction, comment: str = "") -> Outcome:
    command = SignalCommand(signal_id, action, comment=comment)
    return await act(services, command, ADMIN_ACTOR, services.clock.now())


async def message(services: Services, chat_id: int, ref: str) -> dict[str, Any]:
    [found] = await rows(services, "SELECT * FROM tg_messages WHERE chat_id = ? AND ref = ?", chat_id, ref)
    return found


async def card(services: Services) -> dict[str, Any]:
    return await message(services, MANAGER, "order:A-1:card")


async def status_of(services: Services) -> str:
    [row] = await rows(services, "SELECT status FROM orders WHERE id = 'A-1'")
    return str(row["status"])


async def crm_writes(services: Services) -> list[dict[str, Any]]:
    found = await rows(services, "SELECT payload FROM crm_outbox WHERE order_id = 'A-1' ORDER BY id")
    return [json.loads(w["payload"]) for w in found]


async def request_of(services: Services) -> dict[str, Any]:
    [found] = await rows(services, "SELECT * FROM ai_decisions WHERE action = 'cancel'")
    return found


async def test_a_managers_cancel_waits_for_an_admin_and_a_repeat_joins_it(services: Services) -> None:
    requested = await request_cancel(services)

    assert requested.requested and requested.order.status is Status.INSPECTION
    assert await status_of(services) == "inspection" and await crm_writes(services) == []
    shown = await card(services)
    assert "waiting for an admin's approval" in shown["body"]
    assert "Cancel the order" not in (shown["markup"] or "") and "Open checklist" in shown["markup"]
    for chat in (LEADS_CHAT, ADMIN):  # only admins approve: their chat has the ping too
        ping = await message(services, chat, f"signal:{requested.signal_id}")
        assert "cancel the order" in ping["body"] and "Approve" in ping["markup"]
    request = await request_of(services)
    assert request["state"] == "pending_approval" and request["actor"] == str(MANAGER)
    assert json.loads(request["details"])["manager_id"] == "m1" and request["reason"] == "seller"

    again = await request_cancel(services, "client")
    assert again.signal_id == requested.signal_id
    assert len(await rows(services, "SELECT id FROM ai_signals")) == 1
    assert len(await rows(services, "SELECT id FROM ai_decisions WHERE action = 'cancel'")) == 1


async def test_an_approval_cancels_through_the_status_change_with_the_admin_as_actor(
    services: Services,
) -> None:
    requested = await request_cancel(services)
    assert requested.signal_id is not None
    clock_of(services).advance(timedelta(minutes=30))

    outcome = await decide(services, requested.signal_id, DecideAction.APPROVE, "client confirmed")

    assert outcome.ok and outcome.notes == ["carried_out"]
    assert await status_of(services) == "cancelled"
    [event] = await rows(services, "SELECT actor, reason, to_status FROM order_status_events")
    assert event == {"actor": f"admin:{ADMIN}", "reason": "seller", "to_status": "cancelled"}
    [write] = await crm_writes(services)
    assert write["status"] == "cancelled" and write["reason"] == "seller"
    assert await rows(services, "SELECT id FROM sla_timers WHERE closed_at IS NULL") == []
    shown = await card(services)
    assert "Cancelled: Seller withdrew the bike" in shown["body"] and shown["markup"] is None
    notice = await message(services, MANAGER, f"order:A-1:cancel:{(await request_of(services))['id']}")
    assert "an admin approved your request" in notice["body"]
    # The manager hears it once, in those words, not also as a generic "signal resolved".
    assert await rows(services, "SELECT id FROM tg_messages WHERE ref LIKE '%:resolved'") == []
    [signal] = await rows(services, "SELECT state, resolution FROM ai_signals")
    # A code the texts translate, then the admin's own words.
    assert signal == {"state": "resolved", "resolution": "approved: client confirmed"}
    request = await request_of(services)
    assert request["state"] == "approved"
    assert json.loads(request["effect"]) == {"moved_to": "cancelled", "minutes": 30, "carried_out": True}


async def test_a_reject_leaves_the_order_and_puts_the_card_back(services: Services) -> None:
    requested = await request_cancel(services)
    assert requested.signal_id is not None

    outcome = await decide(services, requested.signal_id, DecideAction.REJECT, "call the seller first")

    assert outcome.ok and outcome.notes == ["rejected"]
    assert await status_of(services) == "inspection" and await crm_writes(services) == []
    shown = await card(services)
    assert "waiting for an admin" not in shown["body"] and "Cancel the order" in shown["markup"]
    request = await request_of(services)
    notice = await message(services, MANAGER, f"order:A-1:cancel:{request['id']}")
    assert "Cancellation rejected" in notice["body"] and "call the seller first" in notice["body"]
    assert request["state"] == "rejected"
    # A new request after a reject opens a new signal.
    assert (await request_cancel(services)).signal_id != requested.signal_id


async def test_approving_after_the_order_moved_on_changes_nothing(services: Services) -> None:
    requested = await request_cancel(services)
    assert requested.signal_id is not None
    async with services.db.transaction() as conn:  # the CRM cancelled it meanwhile, as the sync stores it
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = 'A-1'")

    outcome = await decide(services, requested.signal_id, DecideAction.APPROVE)

    assert outcome.ok and outcome.notes == ["moved_on"]
    assert await rows(services, "SELECT id FROM order_status_events") == []
    assert await crm_writes(services) == []
    [signal] = await rows(services, "SELECT state, resolution FROM ai_signals")
    assert signal["state"] == "resolved" and signal["resolution"].startswith("moot")
    notice = await message(services, MANAGER, f"order:A-1:cancel:{(await request_of(services))['id']}")
    assert "was not carried out" in notice["body"]


async def test_an_admins_cancel_happens_at_once_as_a_human_decision(services: Services) -> None:
    done = await orders.cancel_order(
        services, "A-1", actor_telegram_id=ADMIN, now=services.clock.now(), reason="client"
    )

    assert not done.requested and done.order.status is Status.CANCELLED
    assert await rows(services, "SELECT id FROM ai_signals") == []
    [decision] = await rows(services, "SELECT kind, actor, reason, state FROM ai_decisions")
    assert decision == {"kind": "human", "actor": str(ADMIN), "reason": "client", "state": "done"}
    assert [w["status"] for w in await crm_writes(services)] == ["cancelled"]


async def test_a_cancel_needs_a_known_reason_and_the_right_person(services: Services) -> None:
    await add_manager(services, "m2", 1002)
    now = services.clock.now()
    for who, reason, code in (
        (MANAGER, None, "reason_required"),
        (MANAGER, "x", "bad_reason"),
        (1002, "client", "forbidden"),
    ):
        with pytest.raises(orders.ActionRefused) as refused:
            await orders.cancel_order(services, "A-1", actor_telegram_id=who, now=now, reason=reason)
        assert refused.value.code == code
    assert await rows(services, "SELECT id FROM ai_signals") == []


# --- end to end: the real bot, the Bot API emulator and the BikeWerk simulator


async def accepted_order(flow: World) -> str:
    order_id = await offered_order(flow)
    assert "is yours" in await flow.press(ANNA, "Accept")
    async with flow.h.services.db.transaction() as conn:  # the admin reads English, like the managers
        await set_language(conn, telegram_id=ADMIN_ID, lang="en", now=flow.h.clock.now())
    return order_id


def approval_ping(flow: World, order_id: str) -> BotMessage:
    """The ping in the admins' group (which reads the default language, Russian)."""
    found = [m for m in flow.tg.transcript(ADMIN_CHAT_ID) if order_id in (m.text or "")]
    assert len(found) == 1, f"expected one approval ping for {order_id}, found {len(found)}"
    return found[0]


async def signal_of(flow: World, order_id: str) -> int:
    [row] = await flow.h.services.db.fetchall("SELECT id FROM ai_signals WHERE order_id = ?", (order_id,))
    return int(row["id"])


async def test_e2e_a_managers_cancel_is_approved_by_an_admin(world: World) -> None:
    order_id = await accepted_order(world)

    await world.press(ANNA, "Cancel the order")
    assert "an admin will approve or reject it" in await world.press(ANNA, "Seller withdrew the bike")
    card = world.card(ANNA, order_id)
    assert "waiting for an admin's approval" in (card.text or "")
    assert "Cancel the order" not in [t for t, _ in card.buttons]
    assert {"✅", "⛔"} <= {text[0] for text, _ in approval_ping(world, order_id).buttons}

    signal_id = await signal_of(world, order_id)
    answer = await world.say(ADMIN_ID, f"/decide {signal_id} approve client confirmed")

    assert f"Signal #{signal_id}: approved." in answer and "carried out" in answer
    card = world.card(ANNA, order_id)
    assert "Cancelled: Seller withdrew the bike" in (card.text or "") and not card.buttons
    ping = approval_ping(world, order_id)
    assert ping.edits >= 1 and not ping.buttons
    writes = await world.crm_writes(order_id)
    assert [w["payload"].get("status") for w in writes if w["kind"] == "status"] == ["accepted", "cancelled"]
    assert world.tg.unanswered_callbacks() == []


async def test_e2e_a_rejected_cancel_leaves_the_order_and_tells_the_manager(world: World) -> None:
    order_id = await accepted_order(world)
    await world.press(ANNA, "Cancel the order")
    await world.press(ANNA, "Client cancelled")
    ping = approval_ping(world, order_id)
    reject = next(data for text, data in ping.buttons if text.startswith("⛔"))

    await world.answer_of(world.tg.press_button(ADMIN_ID, ADMIN_CHAT_ID, ping.message_id, reject))

    assert "Cancellation rejected" in "\n".join(m.text or "" for m in world.tg.transcript(ANNA))
    card = world.card(ANNA, order_id)
    assert "waiting for an admin" not in (card.text or "") and "Cancel the order" in [
        t for t, _ in card.buttons
    ]
    writes = await world.crm_writes(order_id)
    assert [w["payload"].get("status") for w in writes if w["kind"] == "status"] == ["accepted"]
