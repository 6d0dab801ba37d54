"""The crisis protocol end to end (issue 12): `/crisis` from a manager reaches the crisis chat and the owner
with a playbook; without an acknowledgement in 15 minutes it climbs; resolving it asks the crisis chat for the
postmortem; without one by the due time the bot raises postmortem.missing."""

from __future__ import annotations

from datetime import timedelta

from backbone.sweep import sweep_signals
from domain.crisis import DEFAULT_PLAYBOOKS
from storage import signals as signal_store
from tests.support.e2e_world import ANNA, World, world  # noqa: F401
from tests.support.harness import ADMIN_CHAT_ID, CRISIS_CHAT_ID, LEAD_IDS, LEADS_CHAT_ID, OWNER_ID

LEAD = LEAD_IDS[0]


def _with(world: World, chat_id: int, needle: str) -> list[str]:
    return [m.text or "" for m in world.tg.transcript(chat_id) if needle in (m.text or "")]


async def test_a_crisis_raised_by_a_manager_climbs_and_wants_its_postmortem(world: World) -> None:
    services = world.h.services
    answer = await world.say(ANNA, "/crisis the CRM shows no orders since 10:00")
    assert "Crisis #" in answer
    [row] = await services.db.fetchall("SELECT id FROM ai_signals WHERE type = 'crisis.manual'")
    signal_id = int(row["id"])
    first_step_ru = DEFAULT_PLAYBOOKS["crisis.manual"]["ru"][0]
    for chat in (CRISIS_CHAT_ID, OWNER_ID):
        [ping] = _with(world, chat, f"#{signal_id}")
        assert "the CRM shows no orders since 10:00" in ping and "Manager1001" in ping and "09:00" in ping
        assert first_step_ru in ping  # the playbook, in the chat's language (Russian)
    assert _with(world, LEADS_CHAT_ID, f"#{signal_id}") == []  # critical: the crisis chat, not the leads

    world.h.clock.advance(timedelta(minutes=14))
    assert (await sweep_signals(services, world.h.clock.now())).escalated == 0
    world.h.clock.advance(timedelta(minutes=2))
    assert (await sweep_signals(services, world.h.clock.now())).escalated == 1
    await world.h.settle()
    signal = await signal_store.get_signal(services.db, signal_id)
    assert signal is not None and signal.owner_person == OWNER_ID and signal.escalation_level == 2
    assert len(_with(world, ADMIN_CHAT_ID, f"#{signal_id}")) == 1  # the admins are called in

    await world.say(LEAD, f"/decide {signal_id} resolve the CRM hosting restarted the database")
    [request] = _with(world, CRISIS_CHAT_ID, "📝")  # the crisis chat (Russian) is asked for the postmortem
    assert f"#{signal_id}" in request and "Lena" in request
    assert _with(world, LEAD, "1/4")  # the resolver is asked privately, one question at a time
    # The manager who raised it hears the outcome, in her language.
    [told] = _with(world, ANNA, "you took part in was resolved")
    assert f"#{signal_id}" in told and "the CRM hosting restarted the database" in told

    world.h.clock.advance(timedelta(hours=24))
    report = await sweep_signals(services, world.h.clock.now())
    assert report.postmortems_missing == 1
    [missing] = await services.db.fetchall("SELECT details FROM ai_signals WHERE type = 'postmortem.missing'")
    assert f'"signal": {signal_id}' in missing["details"]


async def test_a_crisis_needs_a_role_and_a_text(world: World) -> None:
    assert "Write what happened" in await world.say(ANNA, "/crisis")
    assert await world.h.services.db.fetchall("SELECT id FROM ai_signals") == []
