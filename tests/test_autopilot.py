"""Phase 4 autopilot: the policy's per-day limits, "ask a human" when a limit is reached or the action is off,
the accept-timeout reassign asking the leads instead of re-offering, and the switch-back to people (with the
owner told) when most automatic runs over the last weeks did not help. Real SQLite, a ManualClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.services import Services
from circles.sales_ops import dispatcher
from circles.strategy import autopilot
from circles.strategy.daily import run_daily
from domain.autopilot import REASSIGN_ON_TIMEOUT, REMIND, AutopilotAction, AutopilotPolicy
from storage.signals import set_effect
from tests.support.order_world import add_manager, add_order, clock_of, make_services, rows
from tests.support.sla_world import OWNER, World, local, make_policy


def _policy(**actions: AutopilotAction) -> AutopilotPolicy:
    return AutopilotPolicy(actions=actions, min_judged=4, max_bad_share=0.5, review_weeks=2)


async def _gate(services: Services, action: str, order_id: str) -> str:
    async with services.db.transaction() as conn:
        verdict = await autopilot.gate(
            conn,
            services,
            action,
            services.clock.now(),
            reason="test",
            expected={"moved": True},
            order_id=order_id,
        )
    return f"{verdict.mode}:{verdict.reason}"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    policy = make_policy(
        autopilot=_policy(
            remind=AutopilotAction(enabled=True, per_day=2),
            reassign_on_accept_timeout=AutopilotAction(enabled=False, per_day=0),
        )
    )
    w = await World.create(tmp_path, local(2, 10), policy=policy)
    yield w
    await w.db.close()


async def test_an_action_runs_by_itself_up_to_its_daily_limit_then_asks(world: World) -> None:
    services = world.services
    assert await _gate(services, REMIND, "O1") == "auto:allowed"
    assert await _gate(services, REMIND, "O2") == "auto:allowed"
    assert await _gate(services, REMIND, "O3") == "ask:daily_limit"
    # Each run is a decision with its expected effect; the refused one left none.
    runs = await world.decisions(REMIND)
    assert [r["order_id"] for r in runs] == ["O1", "O2"] and all('"expected"' in r["details"] for r in runs)
    # Off in the policy, or not listed at all: always ask.
    assert await _gate(services, REASSIGN_ON_TIMEOUT, "O1") == "ask:disabled"
    assert await _gate(services, "cancel", "O1") == "ask:disabled"
    # A new local day: the limit starts again.
    world.clock.set(local(3, 0, 1))
    assert await _gate(services, REMIND, "O4") == "auto:allowed"


async def test_mostly_unhelpful_runs_switch_the_action_back_and_the_owner_is_told(world: World) -> None:
    services = world.services
    world.services.policy = make_policy(autopilot=_policy(remind=AutopilotAction(enabled=True, per_day=100)))
    for n in range(5):
        assert await _gate(services, REMIND, f"O{n}") == "auto:allowed"
    runs = await world.decisions(REMIND)
    async with services.db.transaction() as conn:  # the effect sweep's verdicts: 3 of 5 did not help
        for n, run in enumerate(runs):
            effect = {"moved_to": "accepted" if n < 2 else None, "minutes": 60}
            await set_effect(conn, run["id"], effect, world.now)

    # 5 runs judged (at least min_judged = 4), 3 of them unhelpful: more than half.
    world.clock.set(local(3, 9, 0))
    sent = await run_daily(services, world.now)
    assert sent == [OWNER]
    notice = [m for m in await world.messages(OWNER) if m["ref"].startswith("autopilot:switch:remind")]
    assert len(notice) == 1 and "3 of 5 automatic runs did not help" in notice[0]["body"]
    assert "asks a person first" in notice[0]["body"]
    assert [d["action"] for d in await world.decisions("autopilot_switch")] == ["autopilot_switch"]
    assert await _gate(services, REMIND, "O9") == "ask:switched_back"
    # The daily summary went to the owner too, once a day.
    assert await run_daily(services, world.now) == []

    # The retrospective's numbers per action kind.
    report = {r["action"]: r for r in await autopilot.week_report(services, local(2, 0), local(9, 0))}
    assert (report["remind"]["ran"], report["remind"]["helped"], report["remind"]["mode"]) == (5, 2, "ask")


async def test_too_few_known_effects_or_mostly_helpful_runs_keep_the_autopilot(world: World) -> None:
    services = world.services
    world.services.policy = make_policy(autopilot=_policy(remind=AutopilotAction(enabled=True, per_day=100)))
    for n in range(6):
        await _gate(services, REMIND, f"O{n}")
    runs = await world.decisions(REMIND)
    async with services.db.transaction() as conn:
        for run in runs[:3]:  # three known, all bad: fewer than min_judged (4)
            await set_effect(conn, run["id"], {"moved_to": None, "minutes": 60}, world.now)
    assert await autopilot.review(services, world.now) == []
    async with services.db.transaction() as conn:
        for run in runs[3:]:  # three more, all good: 3 bad of 6 is not more than half
            await set_effect(conn, run["id"], {"moved_to": "accepted", "minutes": 5}, world.now)
    assert await autopilot.review(services, world.now) == []
    # Runs older than review_weeks do not count.
    assert await autopilot.review(services, world.now + timedelta(weeks=3)) == []
    assert await _gate(services, REMIND, "O7") == "auto:allowed"


async def test_an_accept_timeout_over_the_limit_asks_the_leads_instead_of_re_offering(tmp_path: Path) -> None:
    policy = make_policy(
        autopilot=_policy(reassign_on_accept_timeout=AutopilotAction(enabled=True, per_day=1))
    )
    services = await make_services(tmp_path, policy=policy)
    try:
        await add_manager(services, "m1", 1001)
        await add_manager(services, "m2", 1002)
        await add_order(services, "A-1")
        await add_order(services, "A-2")
        await dispatcher.dispatch_pending(services)
        clock_of(services).advance(timedelta(minutes=10))
        report = await dispatcher.dispatch_tick(services)
        # Both offers expired; the first reassign ran by itself, the second is over today's limit of one.
        assert sorted(report.expired) == [("A-1", "m1"), ("A-2", "m2")]
        assert list(report.offered) == ["A-1"]
        asked = await rows(services, "SELECT * FROM ai_signals WHERE type = 'order.accept_timeout'")
        assert [(s["order_id"], s["state"]) for s in asked] == [("A-2", "open")]
        assert '"daily_limit"' in asked[0]["details"]
        # The order waits for a person: later passes leave it alone, until the signal is resolved.
        assert "A-2" not in (await dispatcher.dispatch_pending(services)).offered
        await services.db.write(
            "UPDATE ai_signals SET state = 'resolved' WHERE type = 'order.accept_timeout'"
        )
        assert "A-2" in (await dispatcher.dispatch_pending(services)).offered
    finally:
        await services.db.close()
