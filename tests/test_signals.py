"""Signals and decisions over a real SQLite file: dedup updates the open signal and its pings, routing and
deadlines per severity, arbitration of conflicting signals, acknowledge / resolve / snooze / reassign /
approve / reject as decisions, "still on it?" for acknowledged signals, resolution notices, postmortems and
the effect sweep."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backbone import postmortems
from backbone.commands import Outcome, act
from backbone.decisions import approved_requests, sweep_effects
from backbone.signals import raise_signal, request_approval
from backbone.sweep import sweep_signals
from domain.actors import Actor
from domain.policy import Policy
from domain.signals import (
    Arbitration,
    Contacts,
    DecideAction,
    Ladder,
    Level,
    OpenSignal,
    SignalCommand,
    arbitrate,
    chats_for,
    next_weekly_review,
    permitted,
)
from domain.statuses import Status
from tests.support.sla_world import ADMIN, CRISIS_CHAT, LEAD, LEADS_CHAT, MANAGER_TG, OWNER, TZ, World, local

LEAD_ACTOR = Actor(LEAD, staff=True, approver=False)
ADMIN_ACTOR = Actor(ADMIN, staff=True, approver=True)
MANAGER_ACTOR = Actor(MANAGER_TG, staff=False, approver=False)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World.create(tmp_path, local(2, 10))
    await w.add_manager()
    yield w
    await w.db.close()


async def raise_(world: World, type: str = "sla.breach", key: str = "k", **kwargs: object) -> int:
    async with world.db.transaction() as conn:
        return await raise_signal(
            conn,
            type=type,
            dedup_key=key,
            now=world.now,
            settings=world.services.settings,
            **kwargs,  # type: ignore[arg-type]
        )


async def do(
    world: World, signal_id: int, action: DecideAction, actor: Actor = LEAD_ACTOR, **kw: str
) -> Outcome:
    return await act(world.services, SignalCommand(signal_id, action, **kw), actor, world.now)


# --- raising, dedup, routing --------------------------------------------------------------------------------


async def test_a_repeat_updates_the_open_signal_and_edits_its_ping(world: World) -> None:
    first = await raise_(world, order_id="O1", details={"status": "inspection", "attempt": 1})
    world.clock.advance(timedelta(minutes=5))
    second = await raise_(world, order_id="O1", details={"status": "inspection", "attempt": 2})
    assert first == second
    [signal] = await world.signals()
    assert signal.repeats == 1 and signal.details["attempt"] == 2 and signal.last_seen_at == world.now
    [ping] = await world.messages(LEADS_CHAT)
    assert ping["version"] == 2 and "Seen 1 more time" in ping["body"]


async def test_a_resolved_problem_that_comes_back_opens_a_new_signal(world: World) -> None:
    first = await raise_(world, order_id="O1")
    assert (await do(world, first, DecideAction.RESOLVE)).ok
    second = await raise_(world, order_id="O1")
    assert second != first
    assert [s.state for s in await world.signals()] == ["resolved", "open"]


async def test_a_worse_repeat_raises_the_severity_and_reaches_the_crisis_chat(world: World) -> None:
    signal_id = await raise_(world, order_id="O1", severity="high")
    await raise_(world, order_id="O1", severity="critical")
    [signal] = await world.signals()
    assert signal.id == signal_id and signal.severity == "critical"
    assert set(signal.ping_chats) == {LEADS_CHAT, CRISIS_CHAT, OWNER}


@pytest.mark.parametrize(
    ("severity", "owner", "chats", "level"),
    [
        ("low", MANAGER_TG, (MANAGER_TG,), 0),
        ("medium", MANAGER_TG, (MANAGER_TG,), 0),
        ("medium", None, (LEADS_CHAT,), 1),
        ("high", MANAGER_TG, (LEADS_CHAT,), 1),
        ("critical", None, (CRISIS_CHAT, OWNER), 1),  # a lead owns it at first, so it can climb
    ],
)
async def test_routing_per_severity(
    world: World, severity: str, owner: int | None, chats: tuple[int, ...], level: int
) -> None:
    await raise_(world, severity=severity, owner_person=owner)
    [signal] = await world.signals()
    assert signal.ping_chats == chats and signal.escalation_level == level
    assert sorted({m["chat_id"] for m in await world.messages()}) == sorted(chats)


@pytest.mark.parametrize(
    ("severity", "deadline"),
    [
        ("critical", local(2, 10, 15)),
        ("high", local(2, 12)),
        ("medium", local(3, 10)),
        ("low", local(9, 10)),  # the next weekly review, Monday 10:00
    ],
)
async def test_response_deadline_per_severity(world: World, severity: str, deadline: datetime) -> None:
    await raise_(world, severity=severity, owner_person=MANAGER_TG)
    [signal] = await world.signals()
    assert signal.deadline_at == deadline


def test_the_weekly_review_is_the_next_monday_morning() -> None:
    tz = TZ
    ladder = Ladder.of(Policy.default().signals)
    assert next_weekly_review(local(2, 9, 59), tz, ladder) == local(2, 10)
    assert next_weekly_review(local(2, 10), tz, ladder) == local(9, 10)
    assert next_weekly_review(local(8, 23), tz, ladder) == local(9, 10)


async def test_without_settings_a_signal_is_stored_and_the_sweep_routes_it(world: World) -> None:
    async with world.db.transaction() as conn:
        await raise_signal(conn, type="order.unassigned", dedup_key="u:1", now=world.now, order_id="O9")
    assert await world.messages() == []
    report = await sweep_signals(world.services, world.now)
    assert report.routed == 1
    assert [m["chat_id"] for m in await world.messages()] == [LEADS_CHAT]


async def test_an_unknown_type_is_refused() -> None:
    from domain.signals import UnknownSignalType, signal_type

    with pytest.raises(UnknownSignalType, match=r"sla\.breach"):
        signal_type("sla.braech")


# --- arbitration --------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_arbitration_orders_by_priority_then_severity_then_age() -> None:
    breach = OpenSignal(1, "sla.breach", "critical", T0)
    defect = OpenSignal(2, "quality.severe_defect", "high", T0 + timedelta(hours=1))
    stuck = OpenSignal(3, "order.stuck_72h", "high", T0)
    result = arbitrate([breach, stuck, defect])
    assert isinstance(result, Arbitration)
    assert result.winner == defect and result.reason == "priority"  # client money beats SLA speed
    assert [s.id for s in result.ranked] == [2, 1, 3]  # then severity among SLA signals

    same_class = arbitrate(
        [OpenSignal(4, "order.unassigned", "high", T0), OpenSignal(5, "sla.breach", "medium", T0)]
    )
    assert same_class is not None and (same_class.winner.id, same_class.reason) == (4, "severity")
    earlier = arbitrate(
        [
            OpenSignal(6, "sla.breach", "high", T0 + timedelta(1)),
            OpenSignal(7, "order.unassigned", "high", T0),
        ]
    )
    assert earlier is not None and (earlier.winner.id, earlier.reason) == (7, "earlier")
    # Two signals asking for the same thing do not conflict.
    assert (
        arbitrate([OpenSignal(8, "sla.breach", "high", T0), OpenSignal(9, "order.no_progress", "low", T0)])
        is None
    )


async def test_conflicting_signals_on_one_order_record_the_winner_as_a_decision(world: World) -> None:
    breach = await raise_(world, key="b", order_id="O1")
    assert await world.decisions("arbitrate") == []
    defect = await raise_(world, type="quality.severe_defect", key="d", order_id="O1")
    [decision] = await world.decisions("arbitrate")
    details = json.loads(decision["details"])
    assert decision["signal_id"] == defect and details["winner"] == defect and details["by"] == "priority"
    assert [r["id"] for r in details["ranked"]] == [defect, breach]
    assert "quality.severe_defect" in decision["reason"]


# --- acting on signals: decisions, rights, refusals ---------------------------------------------------------


async def test_acknowledge_and_resolve_are_logged_and_edit_every_ping(world: World) -> None:
    signal_id = await raise_(world, severity="critical")
    outcome = await do(world, signal_id, DecideAction.ACK)
    assert outcome.ok and outcome.signal is not None and outcome.signal.owner_person == LEAD
    for chat in (CRISIS_CHAT, OWNER):
        [ping] = await world.messages(chat)
        assert "Acknowledged by" in ping["body"] and "Acknowledge" not in ping["markup"]
    assert (await do(world, signal_id, DecideAction.ACK)).refusal == "already_acknowledged"

    outcome = await do(world, signal_id, DecideAction.RESOLVE, comment="driver found")
    assert outcome.ok and outcome.notes == ["postmortem"]
    [ping, request] = await world.messages(CRISIS_CHAT)
    assert "Resolved by" in ping["body"] and "driver found" in ping["body"]
    assert "needs a postmortem" in request["body"]  # the crisis chat is asked too
    assert json.loads(ping["markup"]) == {"inline_keyboard": []}
    assert [(d["action"], d["kind"], d["actor"]) for d in await world.decisions()] == [
        ("ack", "human", str(LEAD)),
        ("resolve", "human", str(LEAD)),
    ]
    # Critical: the resolver is asked for a postmortem privately.
    [question] = await world.messages(LEAD)
    assert "what was the cause" in question["body"]


async def test_refusals_change_nothing(world: World) -> None:
    signal_id = await raise_(world, severity="high")
    before = await world.snapshot()
    assert (await do(world, 999, DecideAction.ACK)).refusal == "not_found"
    assert (await do(world, signal_id, DecideAction.ACK, MANAGER_ACTOR)).refusal == "forbidden"
    assert (await do(world, signal_id, DecideAction.APPROVE, LEAD_ACTOR)).refusal == "forbidden"
    assert (await do(world, signal_id, DecideAction.APPROVE, ADMIN_ACTOR)).refusal == "not_a_decision"
    assert (await do(world, signal_id, DecideAction.REASSIGN, manager_id="NOPE")).refusal == "unknown_manager"
    assert (await do(world, signal_id, DecideAction.STILL_ON_IT)).refusal == "not_asked"
    assert await world.snapshot() == before
    critical = await raise_(world, key="c", severity="critical")
    before = await world.snapshot()
    assert (await do(world, critical, DecideAction.ESCALATE)).ok  # the lead's rung to the owner's
    before = await world.snapshot()
    assert (await do(world, critical, DecideAction.ESCALATE)).refusal == "top_of_ladder"
    assert await world.snapshot() == before


def test_rights() -> None:
    assert permitted(DecideAction.ACK, MANAGER_ACTOR, owner_person=MANAGER_TG)
    assert not permitted(DecideAction.REASSIGN, MANAGER_ACTOR, owner_person=MANAGER_TG)
    assert not permitted(DecideAction.ACK, MANAGER_ACTOR, owner_person=None)
    assert not permitted(DecideAction.APPROVE, LEAD_ACTOR, owner_person=LEAD)
    assert permitted(DecideAction.REJECT, ADMIN_ACTOR, owner_person=None)


async def test_the_manager_who_owns_a_signal_may_acknowledge_it(world: World) -> None:
    signal_id = await raise_(world, severity="medium", owner_person=MANAGER_TG)
    assert (await do(world, signal_id, DecideAction.ACK, MANAGER_ACTOR)).ok


async def test_reassign_hands_the_signal_to_a_manager_and_pings_them(world: World) -> None:
    await world.add_manager("M2", 502)
    signal_id = await raise_(world, severity="high")
    outcome = await do(world, signal_id, DecideAction.REASSIGN, manager_id="M2", comment="knows the seller")
    assert outcome.ok and outcome.signal is not None
    assert (outcome.signal.owner_person, outcome.signal.escalation_level) == (502, 0)
    assert [m["chat_id"] for m in await world.messages(502)] == [502]
    [decision] = await world.decisions("reassign")
    assert decision["reason"] == "knows the seller" and json.loads(decision["details"])["manager_id"] == "M2"


async def test_snooze_quiets_a_signal_then_it_reopens(world: World) -> None:
    signal_id = await raise_(world, severity="high")
    outcome = await do(world, signal_id, DecideAction.SNOOZE_1H)
    assert outcome.signal is not None and outcome.signal.snoozed_until == world.now + timedelta(hours=1)
    world.clock.advance(timedelta(minutes=59))
    assert (await sweep_signals(world.services, world.now)).snooze_ended == 0
    world.clock.advance(timedelta(minutes=1))
    assert (await sweep_signals(world.services, world.now)).snooze_ended == 1
    [signal] = await world.signals()
    assert signal.state == "open" and signal.deadline_at == world.now + timedelta(hours=2)


async def test_approval_waits_for_an_admin_and_records_the_outcome(world: World) -> None:
    async with world.db.transaction() as conn:
        signal_id, request_id = await request_approval(
            conn,
            action="cancel",
            reason="client withdrew",
            now=world.now,
            settings=world.services.settings,
            requested_by=str(MANAGER_TG),
            order_id="O1",
        )
    [pending] = await world.decisions("cancel")
    assert (pending["id"], pending["state"], pending["kind"]) == (request_id, "pending_approval", "human")
    [ping] = await world.messages(LEADS_CHAT)
    assert "Approve" in ping["markup"] and "Reject" in ping["markup"] and "Resolve" not in ping["markup"]
    assert (await do(world, signal_id, DecideAction.RESOLVE)).refusal == "needs_decision"
    assert (await do(world, signal_id, DecideAction.APPROVE, LEAD_ACTOR)).refusal == "forbidden"
    assert not await approved_requests(world.db, signal_id)

    assert (await do(world, signal_id, DecideAction.APPROVE, ADMIN_ACTOR, comment="ok")).ok
    assert await approved_requests(world.db, signal_id)
    [request] = await world.decisions("cancel")
    assert request["state"] == "approved"
    [approve] = await world.decisions("approve")
    assert approve["actor"] == str(ADMIN) and approve["kind"] == "human"
    [signal] = await world.signals()
    # Order O1 is not in the store, so the cancel itself is not carried out (tests/test_approvals.py).
    assert signal.state == "resolved" and signal.resolution == "moot: ok"
    # The manager who asked hears about it.
    [notice] = await world.messages(MANAGER_TG)
    assert notice["ref"] == f"signal:{signal_id}:resolved"


async def test_reject_leaves_the_request_rejected(world: World) -> None:
    async with world.db.transaction() as conn:
        signal_id, _ = await request_approval(
            conn,
            action="compensation",
            reason="scratch",
            now=world.now,
            settings=world.services.settings,
            order_id="O2",
        )
    assert (await do(world, signal_id, DecideAction.REJECT, ADMIN_ACTOR)).ok
    [request] = await world.decisions("compensation")
    assert request["state"] == "rejected"
    assert not await approved_requests(world.db, signal_id)


async def test_whoever_escalated_hears_when_it_is_resolved(world: World) -> None:
    signal_id = await raise_(world, severity="medium", owner_person=MANAGER_TG)
    assert (await do(world, signal_id, DecideAction.ESCALATE, MANAGER_ACTOR)).ok
    assert (await do(world, signal_id, DecideAction.RESOLVE, LEAD_ACTOR)).ok
    notices = [m for m in await world.messages(MANAGER_TG) if m["ref"].endswith(":resolved")]
    assert len(notices) == 1 and "resolved by" in notices[0]["body"]


# --- "still on it?" for acknowledged signals ----------------------------------------------------------------


async def test_an_acknowledged_signal_without_progress_asks_and_unacknowledges(world: World) -> None:
    signal_id = await raise_(world, severity="high")  # Monday 10:00
    assert (await do(world, signal_id, DecideAction.ACK)).ok
    world.clock.set(local(2, 13, 59))
    assert (await sweep_signals(world.services, world.now)).asked == 0
    world.clock.set(local(2, 14))  # 240 working minutes later
    assert (await sweep_signals(world.services, world.now)).asked == 1
    [question] = [m for m in await world.messages(LEAD) if ":still:" in m["ref"]]
    assert "Still on it?" in question["body"]

    world.clock.set(local(2, 15))  # no answer within the hour
    report = await sweep_signals(world.services, world.now)
    assert report.unacknowledged == 1
    [signal] = await world.signals()
    assert (signal.state, signal.acked_by, signal.escalation_level) == ("open", None, 2)
    assert OWNER in signal.ping_chats
    [escalation] = await world.decisions("escalate")
    assert json.loads(escalation["details"])["unacknowledged"] is True


async def test_answering_still_on_it_keeps_the_signal(world: World) -> None:
    signal_id = await raise_(world, severity="high")
    await do(world, signal_id, DecideAction.ACK)
    world.clock.set(local(2, 14))
    await sweep_signals(world.services, world.now)
    world.clock.set(local(2, 14, 30))
    assert (await do(world, signal_id, DecideAction.STILL_ON_IT)).ok
    [question] = [m for m in await world.messages(LEAD) if ":still:" in m["ref"]]
    assert "stays with you" in question["body"] and json.loads(question["markup"]) == {"inline_keyboard": []}
    world.clock.set(local(2, 15))
    assert (await sweep_signals(world.services, world.now)).changed == 0
    [signal] = await world.signals()
    assert signal.state == "acknowledged"


# --- postmortems --------------------------------------------------------------------------------------------


async def test_postmortem_dialogue_and_the_missing_postmortem_signal(world: World) -> None:
    critical = await raise_(world, severity="critical")
    await do(world, critical, DecideAction.RESOLVE, comment="fixed")
    world.clock.set(local(3, 9, 59))
    assert (await sweep_signals(world.services, world.now)).postmortems_missing == 0
    world.clock.set(local(3, 10))
    assert (await sweep_signals(world.services, world.now)).postmortems_missing == 1
    assert (await sweep_signals(world.services, world.now)).postmortems_missing == 0
    [missing] = [s for s in await world.signals() if s.type == "postmortem.missing"]
    assert missing.owner_person == LEAD and missing.details["signal"] == critical

    steps = []
    for answer in ("carrier lost it", "rebooked", "2 days late", "tracking alerts"):
        result = await postmortems.answer_step(world.services, LEAD, answer, world.now)
        assert result is not None and result.refusal is None
        steps.append(result.next_step)
    assert steps == ["action", "effect", "prevention", "done"]
    assert await postmortems.answer_step(world.services, LEAD, "more", world.now) is None
    [row] = await world.rows("SELECT * FROM postmortems")
    assert (row["cause"], row["prevention"], row["step"]) == ("carrier lost it", "tracking alerts", "done")
    [missing] = [s for s in await world.signals() if s.type == "postmortem.missing"]
    assert missing.state == "resolved"


async def test_a_postmortem_answer_must_not_be_empty_or_huge(world: World) -> None:
    signal_id = await raise_(world, severity="high")
    await do(world, signal_id, DecideAction.RESOLVE)
    empty = await postmortems.answer_step(world.services, LEAD, "   ", world.now)
    huge = await postmortems.answer_step(world.services, LEAD, "x" * 5000, world.now)
    assert empty is not None and empty.refusal == "empty"
    assert huge is not None and huge.refusal == "too_long"
    [row] = await world.rows("SELECT step, cause FROM postmortems")
    assert row == {"step": "cause", "cause": None}


# --- observed effect ----------------------------------------------------------------------------------------


async def test_the_effect_of_a_reminder_is_filled_in_later(world: World) -> None:
    await world.add_order("MOVES", Status.PENDING_MANAGER, local(2, 10), "M1")
    await world.add_order("STAYS", Status.PENDING_MANAGER, local(2, 10), "M1")
    await world.sweep_at(local(2, 10, 12))  # two reminders
    assert len(await world.decisions("remind")) == 2
    await world.move("MOVES", Status.PENDING_MANAGER, Status.ACCEPTED, local(2, 10, 14))

    # A reminder expects the next status before the breach (10:15): known for MOVES at once, for STAYS once
    # the breach time has passed.
    world.clock.set(local(2, 10, 14))
    assert await sweep_effects(world.services, world.now) == 1
    world.clock.set(local(2, 10, 15))
    assert await sweep_effects(world.services, world.now) == 1
    assert await sweep_effects(world.services, world.now) == 0
    effects = {d["order_id"]: json.loads(d["effect"]) for d in await world.decisions("remind")}
    assert effects == {
        "MOVES": {
            "expected": "next_status",
            "window_min": 3,
            "helped": True,
            "moved_to": "accepted",
            "minutes": 2,
        },
        "STAYS": {
            "expected": "next_status",
            "window_min": 3,
            "helped": False,
            "moved_to": None,
            "minutes": 3,
        },
    }


def test_routing_falls_back_when_a_chat_is_not_configured() -> None:
    bare = Contacts(owner_id=OWNER, lead_ids=(LEAD, 801), admin_ids=(ADMIN,))
    assert chats_for("high", Level.LEAD, None, bare) == [LEAD, 801]  # no leads chat: the leads privately
    # No crisis chat: the leads; at the owner's rung the admins are called in.
    assert chats_for("critical", Level.OWNER, None, bare) == [LEAD, 801, OWNER, ADMIN]
    nobody = Contacts(admin_ids=(ADMIN,))
    assert chats_for("high", Level.LEAD, None, nobody) == [ADMIN]  # no leads at all: the admins
    assert chats_for("critical", Level.OWNER, None, nobody) == [ADMIN]  # no owner either
