"""The ladder and the routing that apply to a signal are frozen on it when it is raised (issue 11, as budgets
are per status visit): a policy or settings edit afterwards changes signals raised later, not open ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from backbone.commands import act
from backbone.signals import raise_signal
from backbone.sweep import sweep_signals
from domain.actors import Actor
from domain.signals import DecideAction, SignalCommand
from tests.support.sla_world import LEAD, LEADS_CHAT, OWNER, World, local, make_policy

NEW_LEADS_CHAT = -2001
NEW_OWNER = 901


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World.create(tmp_path, local(2, 10))  # Monday 10:00
    await w.add_manager()
    yield w
    await w.db.close()


async def raise_high(world: World, key: str) -> int:
    async with world.db.transaction() as conn:
        return await raise_signal(
            conn,
            type="order.unassigned",
            dedup_key=key,
            now=world.now,
            settings=world.services.settings,
            policy=world.services.policy,
        )


def edit_policy_and_chats(world: World) -> None:
    """An operator shortens the ladder, lengthens the short snooze and moves the leads and the owner."""
    old = world.services
    signals = old.policy.signals.model_copy(
        update={"response_minutes": {"critical": 5, "high": 30, "medium": 60}, "snooze_short_hours": 2}
    )
    settings = old.settings.model_copy(update={"leads_chat_id": NEW_LEADS_CHAT, "owner_id": NEW_OWNER})
    world.services = replace(old, policy=make_policy("edited", signals=signals), settings=settings)


def chats_of(rows: list[dict[str, object]], signal_id: int) -> set[object]:
    return {m["chat_id"] for m in rows if m["ref"] == f"signal:{signal_id}"}


async def test_a_policy_edit_after_raising_does_not_change_an_open_signals_ladder(world: World) -> None:
    frozen = await raise_high(world, "before")  # high: 120 minutes to acknowledge, pinged in the leads chat
    edit_policy_and_chats(world)

    world.clock.set(local(2, 11))  # past the edited 30 minutes, inside the frozen 120
    assert (await sweep_signals(world.services, world.now)).escalated == 0

    world.clock.set(local(2, 12))
    assert (await sweep_signals(world.services, world.now)).escalated == 1
    [signal] = [s for s in await world.signals() if s.id == frozen]
    # Up to the owner of raise time, with the frozen 120 minutes again; the new chats hear nothing of it.
    assert (signal.escalation_level, signal.owner_person) == (2, OWNER)
    assert signal.deadline_at == local(2, 14)
    assert chats_of(await world.messages(), frozen) == {LEADS_CHAT, OWNER}
    [ping] = [m for m in await world.messages(LEADS_CHAT) if m["ref"] == f"signal:{frozen}"]
    assert "Snooze 1 h" in str(ping["markup"]) and "Snooze 2 h" not in str(ping["markup"])

    # A signal raised after the edit runs on the edited ladder and routing.
    fresh = await raise_high(world, "after")
    [signal] = [s for s in await world.signals() if s.id == fresh]
    assert signal.deadline_at == world.now + timedelta(minutes=30)
    assert chats_of(await world.messages(), fresh) == {NEW_LEADS_CHAT}
    [ping] = await world.messages(NEW_LEADS_CHAT)
    assert "Snooze 2 h" in json.loads(str(ping["markup"]))["inline_keyboard"][-2][0]["text"]


async def test_a_snooze_lasts_as_long_as_the_signals_own_ladder_says(world: World) -> None:
    frozen = await raise_high(world, "before")
    edit_policy_and_chats(world)
    lead = Actor(LEAD, staff=True, approver=False)
    outcome = await act(world.services, SignalCommand(frozen, DecideAction.SNOOZE_1H), lead, world.now)
    assert outcome.ok and outcome.signal is not None
    assert outcome.signal.snoozed_until == world.now + timedelta(hours=1)
