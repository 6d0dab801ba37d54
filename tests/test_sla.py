"""The SLA watchdog on an injected clock, over a real SQLite file: every status's budget in working and
calendar time across a weekend and a holiday, the 80 % reminder, the breach, the 72 h signal, "still on it?"
for an accepted order, the escalation ladder when nobody acknowledges, the frozen policy of a visit, and no
duplicate of anything when the sweep runs twice or dies between two writes.

`World` (a bot's store, services and people) is shared with the other signal tests.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from backbone.sweep import sweep_signals
from circles.sales_ops.sla import SweepReport, process_visit
from domain.policy import StatusBudget
from domain.statuses import Status
from tests.support.sla_world import (  # noqa: F401
    ADMIN,
    CRISIS_CHAT,
    HOLIDAY,
    LEAD,
    LEADS_CHAT,
    MANAGER_TG,
    OWNER,
    TZ,
    World,
    local,
    make_policy,
    world,
)

ENTERED = local(6, 17, 50)
# (status, breach severity, breach instant worked out by hand)
BUDGETS = [
    # 15 working minutes: 10 on Friday, 5 after the holiday
    (Status.PENDING_MANAGER, "high", local(10, 9, 5)),
    # 4 working hours: 10 min Friday + 3 h 50 on Tuesday
    (Status.ACCEPTED, "medium", local(10, 12, 50)),
    # 24 working hours: 10 min Fri + 9 h Tue + 9 h Wed + 5 h 50 on Thursday
    (Status.INSPECTION, "high", local(12, 14, 50)),
    # 48 calendar hours: straight through the weekend
    (Status.AWAITING_CLIENT, "medium", local(8, 17, 50)),
    (Status.READY_FOR_SHIPMENT, "high", local(12, 14, 50)),
    # 10 calendar days
    (Status.IN_TRANSIT, "medium", local(16, 17, 50)),
]


@pytest.mark.parametrize(("status", "severity", "breach_at"), BUDGETS, ids=[s for s, _, _ in BUDGETS])
async def test_each_status_breaches_exactly_at_its_budget(
    world: World, status: Status, severity: str, breach_at: datetime
) -> None:
    await world.add_order("O1", status, ENTERED, "M1")
    await world.sweep_at(breach_at - timedelta(seconds=1))
    assert await world.rows("SELECT * FROM ai_sla_violations WHERE kind = 'budget'") == []
    assert not [s for s in await world.signals() if s.type == "sla.breach"]

    report = await world.sweep_at(breach_at)
    assert report.breaches == 1
    [violation] = await world.rows("SELECT * FROM ai_sla_violations WHERE kind = 'budget'")
    assert violation["order_id"] == "O1" and violation["status"] == status.value
    assert violation["severity"] == severity and violation["policy_version"] == "test-1"
    [signal] = [s for s in await world.signals() if s.type == "sla.breach"]
    assert signal.severity == severity and signal.order_id == "O1"
    assert violation["signal_id"] == signal.id


async def test_reminder_at_80_percent_goes_once_to_the_steps_owner(world: World) -> None:
    await world.add_order("O1", Status.PENDING_MANAGER, local(2, 10), "M1")  # Monday
    await world.sweep_at(local(2, 10, 11))
    assert await world.messages(MANAGER_TG) == []

    report = await world.sweep_at(local(2, 10, 12))  # 12 of 15 minutes
    assert report.reminders == 1 and world.wakes == 1
    [reminder] = await world.messages(MANAGER_TG)
    assert "80%" in reminder["body"] and "O1" in reminder["body"] and "10:15" in reminder["body"]
    [decision] = await world.decisions("remind")
    assert decision["kind"] == "auto" and decision["order_id"] == "O1"

    again = await world.sweep_at(local(2, 10, 13))
    assert again.changed == 0
    assert len(await world.messages(MANAGER_TG)) == 1 and len(await world.decisions("remind")) == 1

    breach = await world.sweep_at(local(2, 10, 15))
    assert breach.breaches == 1 and breach.reminders == 0
    assert [s.type for s in await world.signals()] == ["sla.breach"]


async def test_a_breach_found_late_is_not_preceded_by_a_late_reminder(world: World) -> None:
    await world.add_order("O1", Status.PENDING_MANAGER, local(2, 10), "M1")
    report = await world.sweep_at(local(2, 11))
    assert (report.reminders, report.breaches) == (0, 1)
    assert await world.decisions("remind") == []


async def test_high_breach_pings_the_leads_chat_and_medium_goes_to_the_manager(world: World) -> None:
    await world.add_order("P", Status.PENDING_MANAGER, local(2, 10), "M1")  # high
    await world.add_order("A", Status.ACCEPTED, local(2, 10), "M1")  # medium
    await world.sweep_at(local(2, 15))
    by_order = {s.order_id: s for s in await world.signals()}
    assert by_order["P"].ping_chats == (LEADS_CHAT,)
    assert by_order["A"].ping_chats == (MANAGER_TG,) and by_order["A"].owner_person == MANAGER_TG
    [ping] = await world.messages(LEADS_CHAT)
    assert ping["ref"] == f"signal:{by_order['P'].id}"
    buttons = [b["text"] for row in json.loads(ping["markup"])["inline_keyboard"] for b in row]
    assert any("Acknowledge" in b for b in buttons) and any("Reassign" in b for b in buttons)


async def test_stuck_for_72_hours_raises_one_signal(world: World) -> None:
    await world.add_order("O1", Status.IN_TRANSIT, local(2, 10), "M1")
    await world.sweep_at(local(5, 9, 59))
    assert await world.signals() == []
    report = await world.sweep_at(local(5, 10))
    assert (report.stuck, report.breaches) == (1, 0)
    [signal] = await world.signals()
    assert (signal.type, signal.severity) == ("order.stuck_72h", "high")
    [violation] = await world.rows("SELECT * FROM ai_sla_violations")
    assert violation["kind"] == "stuck_72h" and violation["signal_id"] == signal.id
    assert (await world.sweep_at(local(6, 10))).changed == 0
    assert len(await world.signals()) == 1


async def test_awaiting_client_breaches_at_48h_then_is_stuck_at_72h(world: World) -> None:
    await world.add_order("O1", Status.AWAITING_CLIENT, local(2, 10), "M1")
    await world.sweep_at(local(4, 10))
    await world.sweep_at(local(5, 10))
    assert sorted(s.type for s in await world.signals()) == ["order.stuck_72h", "sla.breach"]
    kinds = [r["kind"] for r in await world.rows("SELECT kind FROM ai_sla_violations ORDER BY id")]
    assert kinds == ["budget", "stuck_72h"]


async def test_moving_on_closes_the_visit_and_nothing_fires_for_it(world: World) -> None:
    await world.add_order("O1", Status.PENDING_MANAGER, local(2, 10), "M1")
    await world.move("O1", Status.PENDING_MANAGER, Status.ACCEPTED, local(2, 10, 5))
    await world.sweep_at(local(2, 10, 30))
    assert await world.signals() == [] and await world.messages() == []


async def test_the_budget_in_force_on_entry_applies_after_a_policy_edit(world: World) -> None:
    await world.add_order("O1", Status.PENDING_MANAGER, local(2, 10), "M1")
    budgets = dict(world.services.policy.budgets)
    budgets[Status.PENDING_MANAGER] = StatusBudget(minutes=120, clock="working", severity="medium")
    world.services.policy = make_policy("test-2", budgets=budgets)
    await world.sweep_at(local(2, 10, 15))
    [violation] = await world.rows("SELECT * FROM ai_sla_violations")
    assert (violation["policy_version"], violation["budget_minutes"], violation["severity"]) == (
        "test-1",
        15,
        "high",
    )


# --- idempotency --------------------------------------------------------------------------------------------


async def test_running_the_sweep_twice_duplicates_nothing(world: World) -> None:
    for n, status in enumerate([Status.PENDING_MANAGER, Status.ACCEPTED, Status.AWAITING_CLIENT]):
        await world.add_order(f"O{n}", status, local(2, 10), "M1")
    await world.sweep_at(local(5, 11))
    first = await world.snapshot()
    assert first["ai_sla_violations"] and first["ai_signals"]
    report = await world.sweep_at(local(5, 11))
    assert report.changed == 0
    assert await world.snapshot() == first


async def test_a_sweep_killed_between_two_writes_leaves_nothing_half_done(world: World) -> None:
    await world.add_order("O1", Status.PENDING_MANAGER, local(2, 10), "M1")
    before = await world.snapshot()
    [timer] = await world.rows("SELECT id FROM sla_timers")

    class Killed(Exception):
        pass

    # The process dies after the violation, the signal and the ping were written, before the commit.
    with pytest.raises(Killed):
        async with world.db.transaction() as conn:
            report = SweepReport()
            await process_visit(conn, world.services, timer["id"], local(2, 11), report)
            assert report.breaches == 1
            raise Killed
    assert await world.snapshot() == before

    await world.sweep_at(local(2, 11))
    await world.sweep_at(local(2, 11, 1))
    assert await world.count("ai_sla_violations") == 1
    assert len(await world.signals()) == 1
    assert len(await world.messages(LEADS_CHAT)) == 1


# --- escalation and "still on it?" --------------------------------------------------------------------------


async def test_nobody_acknowledges_so_the_signal_climbs_manager_lead_owner(world: World) -> None:
    await world.add_order("O1", Status.AWAITING_CLIENT, local(2, 9), "M1")
    await world.sweep_at(local(4, 9))  # 48 h: a medium breach, owned by the manager
    [signal] = await world.signals()
    assert (signal.escalation_level, signal.ping_chats) == (0, (MANAGER_TG,))
    assert signal.deadline_at == local(5, 9)  # medium: 24 h

    world.clock.set(local(5, 8, 59))
    assert (await sweep_signals(world.services, world.now)).escalated == 0
    world.clock.set(local(5, 9))
    assert (await sweep_signals(world.services, world.now)).escalated == 1
    [signal] = await world.signals()
    assert (signal.escalation_level, signal.owner_person, signal.state) == (1, LEAD, "open")
    assert signal.ping_chats == (MANAGER_TG, LEADS_CHAT)

    world.clock.set(local(6, 9))
    assert (await sweep_signals(world.services, world.now)).escalated == 1
    [signal] = await world.signals()
    assert (signal.escalation_level, signal.owner_person) == (2, OWNER)
    assert signal.ping_chats == (MANAGER_TG, LEADS_CHAT, OWNER)
    # Every chat's ping shows where it stands now.
    for chat in signal.ping_chats:
        [ping] = [m for m in await world.messages(chat) if m["ref"] == f"signal:{signal.id}"]
        assert "with the owner" in ping["body"]

    world.clock.set(local(12, 9))
    assert (await sweep_signals(world.services, world.now)).escalated == 0  # the top of the ladder
    escalations = await world.decisions("escalate")
    assert [(d["kind"], json.loads(d["details"])["to"]) for d in escalations] == [("auto", 1), ("auto", 2)]


async def test_an_accepted_order_without_progress_asks_still_on_it_then_tells_the_leads(world: World) -> None:
    await world.add_order("O1", Status.ACCEPTED, local(2, 9), "M1")
    report = await world.sweep_at(local(2, 13))  # 240 working minutes
    assert report.checkins == 1
    [question] = [m for m in await world.messages(MANAGER_TG) if m["ref"].startswith("checkin:")]
    assert "Still on it?" in question["body"] and "Still on it" in question["markup"]
    assert (await world.sweep_at(local(2, 13, 30))).checkins == 0

    world.clock.set(local(2, 13, 59))
    assert (await sweep_signals(world.services, world.now)).no_progress == 0
    world.clock.set(local(2, 14))
    assert (await sweep_signals(world.services, world.now)).no_progress == 1
    no_progress = [s for s in await world.signals() if s.type == "order.no_progress"]
    assert len(no_progress) == 1 and no_progress[0].ping_chats == (LEADS_CHAT,)
    assert (await sweep_signals(world.services, world.now)).no_progress == 0
