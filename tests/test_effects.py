"""Observed effects that mean something (issue 12): each kind of decision is judged by what it expects, once,
when known or when its window has passed, never before the decision is settled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from backbone.commands import act
from backbone.decisions import record_decision, sweep_effects
from backbone.signals import raise_signal
from circles.sales_ops.handover import reassign_order
from circles.sales_ops.orders import cancel_order
from domain.effects import NO_REPEAT_DAYS
from domain.signals import Actor, DecideAction, SignalCommand
from domain.statuses import Status
from tests.support.sla_world import ADMIN, LEAD, MANAGER_TG, World, local

ADMIN_ACTOR = Actor(ADMIN, staff=True, approver=True)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World.create(tmp_path, local(2, 10))
    await w.add_manager()
    await w.add_manager("M2", 502)
    yield w
    await w.db.close()


async def effect_of(world: World, action: str) -> dict[str, object] | None:
    [row] = await world.decisions(action)
    return None if row["effect"] is None else json.loads(row["effect"])


async def test_a_cancel_approved_after_two_hours_gets_its_real_effect(world: World) -> None:
    await world.add_order("O1", Status.ACCEPTED, world.now, "M1")
    requested = await cancel_order(
        world.services, "O1", actor_telegram_id=MANAGER_TG, now=world.now, reason="client"
    )
    assert requested.signal_id is not None
    for _ in range(8):  # two hours of effect sweeps while the request waits
        world.clock.advance(timedelta(minutes=15))
        await sweep_effects(world.services, world.now)
    assert await effect_of(world, "cancel") is None  # not settled: no effect

    outcome = await act(
        world.services, SignalCommand(requested.signal_id, DecideAction.APPROVE), ADMIN_ACTOR, world.now
    )
    assert outcome.ok
    assert await effect_of(world, "cancel") == {"moved_to": "cancelled", "minutes": 120, "carried_out": True}
    world.clock.advance(timedelta(hours=2))
    await sweep_effects(world.services, world.now)
    assert await effect_of(world, "cancel") == {"moved_to": "cancelled", "minutes": 120, "carried_out": True}


async def test_a_handover_expects_an_acceptance_within_the_timeout(world: World) -> None:
    await world.add_order("O1", Status.ACCEPTED, world.now, "M1")
    await reassign_order(world.services, "O1", "M2", actor_telegram_id=LEAD, reason="M1 ill", now=world.now)
    world.clock.advance(timedelta(minutes=1))
    assert await sweep_effects(world.services, world.now) == 1
    effect = await effect_of(world, "reassign")
    assert effect is not None and effect["expected"] == "accepted" and effect["helped"] is True


async def test_an_escalation_expects_the_order_to_move_within_the_window(world: World) -> None:
    await world.add_order("O1", Status.INSPECTION, world.now, "M1")
    async with world.db.transaction() as conn:
        await record_decision(
            conn,
            kind="auto",
            action="escalate",
            reason="deadline",
            now=world.now,
            order_id="O1",
            signal_id=None,
        )
    world.clock.advance(timedelta(minutes=59))
    assert await sweep_effects(world.services, world.now) == 0  # still inside the window
    world.clock.advance(timedelta(minutes=1))
    assert await sweep_effects(world.services, world.now) == 1
    effect = await effect_of(world, "escalate")
    assert effect == {
        "expected": "order_moves",
        "window_min": 60,
        "helped": False,
        "moved_to": None,
        "minutes": 60,
    }


async def test_a_postmortem_helped_when_the_breach_does_not_come_back(world: World) -> None:
    async def breach(key: str, status: str) -> int:
        async with world.db.transaction() as conn:
            return await raise_signal(
                conn,
                type="sla.breach",
                dedup_key=key,
                now=world.now,
                settings=world.services.settings,
                details={"status": status},
            )

    first = await breach("b1", "inspection")
    async with world.db.transaction() as conn:
        await record_decision(
            conn,
            kind="human",
            action="postmortem",
            reason="written",
            now=world.now,
            signal_id=first,
            actor=str(LEAD),
        )
    world.clock.advance(timedelta(days=1))
    await breach("b2", "accepted")  # another status: not the same problem
    world.clock.advance(timedelta(days=NO_REPEAT_DAYS))
    assert await sweep_effects(world.services, world.now) == 1
    effect = await effect_of(world, "postmortem")
    assert effect is not None and effect["helped"] is True and effect["expected"] == "no_repeat"
