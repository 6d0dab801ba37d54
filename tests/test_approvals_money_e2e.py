"""Compensation and bulk reassignment wait for an admin (issue 12), end to end on the emulator and the
simulator: nothing happens before the approval; approving carries it out once (the compensation reaches the
CRM through the outbox, the orders move to the managers the dispatcher picks); a rejection and a stale
approval change nothing."""

from __future__ import annotations

from storage.people import set_language
from tests.support.e2e_world import ANNA, BORIS, VERA, World, offered_order, world  # noqa: F401
from tests.support.harness import ADMIN_CHAT_ID, ADMIN_ID, LEAD_IDS

LEAD = LEAD_IDS[0]


async def _english(world: World, *people: int) -> None:
    async with world.h.services.db.transaction() as conn:
        for person in people:
            await set_language(conn, telegram_id=person, lang="en", now=world.h.clock.now())


async def _accepted_by_anna(world: World) -> str:
    order_id = await offered_order(world)
    assert "is yours" in await world.press(ANNA, "Accept")
    return order_id


async def _signal_of(world: World, action: str) -> int:
    rows = await world.h.services.db.fetchall(
        "SELECT id FROM ai_signals WHERE type = 'decision.approval_needed' AND details LIKE ?",
        (f'%"action": "{action}"%',),
    )
    assert len(rows) == 1
    return int(rows[0]["id"])


def _compensations(world: World, order_id: str) -> list[dict[str, str]]:
    assert world.h.simulator is not None
    return world.h.simulator.compensations.get(order_id, [])


async def test_a_compensation_is_paid_once_after_an_admin_approves(world: World) -> None:
    await _english(world, LEAD, ADMIN_ID)
    order_id = await _accepted_by_anna(world)
    answer = await world.say(LEAD, f"/compensate {order_id} 49,90 scratched frame")
    assert "nothing is paid until an admin approves" in answer
    signal_id = await _signal_of(world, "compensation")
    await world.crm_writes(order_id)
    assert _compensations(world, order_id) == []  # nothing before the approval

    # The admins' chat has the request with Approve / Reject.
    ping = next(m for m in world.tg.transcript(ADMIN_CHAT_ID) if f"#{signal_id}" in (m.text or ""))
    assert "€49.90" in (ping.text or "")
    [approve] = [data for _, data in ping.buttons if data.startswith(f"sg:{signal_id}:ap")]
    await world.answer_of(world.tg.press_button(ADMIN_ID, ADMIN_CHAT_ID, ping.message_id, approve))
    assert "was approved and goes to the CRM" in (world.tg.transcript(LEAD)[-1].text or "")

    writes = [w for w in await world.crm_writes(order_id) if w["kind"] == "compensation"]
    assert len(writes) == 1 and writes[0]["payload"]["amount_eur"] == "49.90"
    assert _compensations(world, order_id) == [
        {"amount_eur": "49.90", "reason": "scratched frame", "by": str(ADMIN_ID)}
    ]
    # A second approval of the same request (a double tap, a late /decide) changes nothing.
    assert "already resolved" in await world.say(ADMIN_ID, f"/decide {signal_id} approve")
    await world.crm_writes(order_id)
    assert len(_compensations(world, order_id)) == 1


async def test_a_rejected_compensation_writes_nothing(world: World) -> None:
    await _english(world, LEAD, ADMIN_ID)
    order_id = await _accepted_by_anna(world)
    await world.say(LEAD, f"/compensate {order_id} 20 late delivery")
    signal_id = await _signal_of(world, "compensation")
    assert "rejected" in await world.say(ADMIN_ID, f"/decide {signal_id} reject no evidence")
    assert "was rejected: no evidence" in (world.tg.transcript(LEAD)[-1].text or "")
    assert [w for w in await world.crm_writes(order_id) if w["kind"] == "compensation"] == []
    assert "is not an amount" in await world.say(LEAD, f"/compensate {order_id} -5 oops")


async def test_bulk_reassign_moves_every_open_order_of_a_manager_after_approval(world: World) -> None:
    await _english(world, LEAD, ADMIN_ID)
    first = await _accepted_by_anna(world)
    other = await world.crm_order()
    await world.sync()  # the next order goes to Boris: Anna is busier now
    assert "Accept" in (world.card(BORIS, other).text or "")

    assert "Handing over 1 open order of anna requested" in await world.say(LEAD, "/reassign_all anna ill")
    signal_id = await _signal_of(world, "bulk_reassign")
    assert "Start inspection" in str(world.card(ANNA, first).buttons)  # nothing moved yet

    assert "approved" in await world.say(ADMIN_ID, f"/decide {signal_id} approve get well")
    assert "handed over to another manager" in (world.card(ANNA, first).text or "")
    [row] = await world.h.services.db.fetchall(
        "SELECT assigned_manager_id FROM orders WHERE id = ?", (first,)
    )
    new_owner = row[0]
    assert new_owner == "vera"  # the least loaded: Boris has an offer waiting
    assigns = [w["payload"]["manager_id"] for w in await world.crm_writes(first) if w["kind"] == "assign"]
    assert assigns == ["anna", new_owner]
    assert "1 order of anna was handed over" in (world.tg.transcript(LEAD)[-1].text or "")


async def test_a_stale_bulk_approval_changes_nothing(world: World) -> None:
    await _english(world, LEAD, ADMIN_ID)
    order_id = await _accepted_by_anna(world)
    await world.say(LEAD, "/reassign_all anna ill")
    signal_id = await _signal_of(world, "bulk_reassign")
    await world.say(LEAD, f"/reassign {order_id} vera back from lunch")  # handled by hand meanwhile
    writes_before = await world.crm_writes(order_id)

    answer = await world.say(ADMIN_ID, f"/decide {signal_id} approve")
    assert "nothing was changed" in answer
    assert await world.crm_writes(order_id) == writes_before
    assert "🔍 Start inspection" in [t for t, _ in world.card(VERA, order_id).buttons]
