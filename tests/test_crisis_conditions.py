"""The agents' crises and the clearing rules over a real SQLite file (issue 12): a breach storm, the CRM
unreachable for 15 minutes (and cleared by the next good run, with a postmortem asked for), a severe defect on
a paid order; stuck orders and chat problems that clear themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from backbone.signals import raise_signal
from backbone.sweep import sweep_signals
from bikewerk.sync_health import record_sync_run
from domain.statuses import Status
from tests.support.sla_world import CRISIS_CHAT, LEAD, OWNER, World, local


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World.create(tmp_path, local(2, 10))
    await w.add_manager()
    yield w
    await w.db.close()


async def raise_(world: World, type: str, key: str, **kwargs: object) -> int:
    async with world.db.transaction() as conn:
        return await raise_signal(
            conn,
            type=type,
            dedup_key=key,
            now=world.now,
            settings=world.services.settings,
            **kwargs,  # type: ignore[arg-type]
        )


async def of_type(world: World, type_: str) -> list[dict[str, object]]:
    return await world.rows("SELECT * FROM ai_signals WHERE type = ? ORDER BY id", (type_,))


async def test_five_breaches_within_an_hour_raise_one_breach_storm(world: World) -> None:
    for number in range(4):
        await raise_(world, "sla.breach", f"b{number}")
        world.clock.advance(timedelta(minutes=10))
    await sweep_signals(world.services, world.now)
    assert await of_type(world, "crisis.breach_storm") == []  # four are not a storm
    await raise_(world, "sla.breach", "b4")
    await sweep_signals(world.services, world.now)
    await sweep_signals(world.services, world.now)
    [storm] = await of_type(world, "crisis.breach_storm")
    assert storm["severity"] == "critical" and '"breaches": 5' in str(storm["details"])
    [ping] = [m for m in await world.messages(CRISIS_CHAT) if f"#{storm['id']}" in m["body"]]
    assert "First steps" in ping["body"] and "/signals high" in ping["body"]
    assert [m for m in await world.messages(OWNER) if f"#{storm['id']}" in m["body"]]


async def test_the_crm_unreachable_for_15_minutes_is_a_crisis_until_the_next_good_run(world: World) -> None:
    crisis = world.services.policy.crisis

    async def run(reached: bool) -> None:
        async with world.db.transaction() as conn:
            await record_sync_run(
                conn,
                reached_crm=reached,
                clean_sources=("orders",) if reached else (),
                now=world.now,
                settings=world.services.settings,
                crisis=crisis,
            )

    await run(False)
    world.clock.advance(timedelta(minutes=14))
    await run(False)
    assert await of_type(world, "crisis.crm_unreachable") == []
    world.clock.advance(timedelta(minutes=1))
    await run(False)
    await run(False)
    [signal] = await of_type(world, "crisis.crm_unreachable")
    assert signal["state"] == "open" and signal["repeats"] == 1

    world.clock.advance(timedelta(minutes=3))
    await run(True)
    [signal] = await of_type(world, "crisis.crm_unreachable")
    assert signal["state"] == "resolved" and signal["resolution"] == "cleared:next_run_ok"
    assert signal["resolved_by"] is None
    # Critical: even cleared by itself, it wants a postmortem (policy [crisis] postmortem_when_cleared).
    [postmortem] = await world.rows("SELECT * FROM postmortems")
    assert postmortem["signal_id"] == signal["id"] and postmortem["author"] == LEAD
    assert [m for m in await world.messages(CRISIS_CHAT) if "needs a postmortem" in m["body"]]


async def test_a_severe_defect_on_a_paid_order_is_a_crisis(world: World) -> None:
    await world.add_order("O1", Status.INSPECTION, world.now, "M1")
    await world.add_order("O2", Status.READY_FOR_SHIPMENT, world.now, "M1")
    for order in ("O1", "O2"):
        await raise_(world, "quality.severe_defect", f"defect:{order}", order_id=order)
    await sweep_signals(world.services, world.now)
    await sweep_signals(world.services, world.now)
    [crisis] = await of_type(world, "crisis.paid_defect")
    assert crisis["order_id"] == "O2" and crisis["severity"] == "critical"


async def test_a_stuck_order_that_moves_clears_its_signal_and_one_that_does_not_stays(world: World) -> None:
    start = world.now - timedelta(hours=80)
    await world.add_order("O1", Status.AWAITING_CLIENT, start, "M1")
    await world.add_order("O2", Status.AWAITING_CLIENT, start, "M1")
    stuck = {o: await raise_(world, "order.stuck_72h", f"stuck:{o}", order_id=o) for o in ("O1", "O2")}
    world.clock.advance(timedelta(minutes=5))
    await world.move("O1", Status.AWAITING_CLIENT, Status.READY_FOR_SHIPMENT, world.now)
    report = await sweep_signals(world.services, world.now)
    assert report.cleared == 1
    states = {r["id"]: (r["state"], r["resolution"]) for r in await of_type(world, "order.stuck_72h")}
    assert states == {stuck["O1"]: ("resolved", "cleared:order_moved"), stuck["O2"]: ("open", None)}
    decisions = await world.decisions("resolve")
    assert [(d["kind"], d["actor"], d["reason"]) for d in decisions] == [
        ("auto", "system", "cleared:order_moved")
    ]
