"""Arbitration that acts (SPEC §6, issue 18): a compliance hold on an order parks the SLA escalation of the
same order (no ladder, no pings, its ping says why; the hold's chat hears what it holds back), and the
escalation resumes with a fresh deadline when the hold is cleared. End to end on the running bot."""

from __future__ import annotations

from datetime import timedelta

from backbone.signals import raise_signal
from backbone.sweep import sweep_signals
from tests.support.admin_bot import Harness, breach, h  # noqa: F401
from tests.support.sla_world import LEAD, LEADS_CHAT, OWNER, local


async def _hold(h: Harness, order_id: str = "O1") -> int:
    services = h.app.services
    async with services.db.transaction() as conn:
        signal_id = await raise_signal(
            conn,
            type="compliance.hold",
            dedup_key=f"compliance.hold:{order_id}",
            now=services.clock.now(),
            order_id=order_id,
            settings=services.settings,
            policy=services.policy,
        )
    services.wake_sender()
    return signal_id


async def test_a_compliance_hold_parks_the_sla_escalation_until_it_is_cleared(h: Harness) -> None:
    hold = await _hold(h)
    await breach(h)  # the SLA breach on the same order, raised after the hold
    ping = await h.shown(LEADS_CHAT, "SLA breach")
    breach_id = next(s.id for s in await h.world.signals() if s.type == "sla.breach")

    # The SLA side sees why it waits, the compliance side sees what it holds back.
    await h.shown(LEADS_CHAT, "Parked while #")
    parked_ping = h.latest(LEADS_CHAT, f"· #{breach_id}")
    assert parked_ping is not None and parked_ping.message_id == ping.message_id
    assert f"Parked while #{hold} (Compliance hold) is open" in (parked_ping.text or "")
    assert "security and compliance comes before speed and SLA" in (parked_ping.text or "")
    notice = await h.shown(LEADS_CHAT, f"#{breach_id} (SLA breach) on order O1 is parked until #{hold}")
    assert "security and compliance comes first" in (notice.text or "")

    # Parked: no ladder. Long past its 2 h deadline, the sweep does not take it to the owner.
    sent_to_owner = len(h.tg.transcript(OWNER))
    later = h.world.clock.now() + timedelta(hours=3)
    h.world.clock.set(later)
    await sweep_signals(h.app.services, later)
    signals = {s.id: s for s in await h.world.signals()}
    assert signals[breach_id].escalation_level == 1 and signals[breach_id].parked_by == hold
    # The hold itself is high and unacknowledged: it climbs, the parked breach does not.
    assert signals[hold].escalation_level == 2
    assert not any(f"#{breach_id}" in (m.text or "") for m in h.tg.transcript(OWNER)[sent_to_owner:])

    # The hold is cleared: the breach goes on, with a fresh deadline from now, and says so.
    hold_ping = await h.shown(LEADS_CHAT, f"· #{hold}")
    answer = await h.press_data(LEAD, LEADS_CHAT, hold_ping.message_id, f"sg:{hold}:rs:")
    assert "resolved" in answer["text"]
    await h.shown(LEADS_CHAT, f"#{breach_id} (SLA breach) goes on: #{hold} (Compliance hold) is settled")
    await h.until(
        lambda: "Parked while" not in ((h.latest(LEADS_CHAT, f"· #{breach_id}") or ping).text or "")
    )
    resumed = {s.id: s for s in await h.world.signals()}[breach_id]
    assert resumed.parked_by is None and resumed.deadline_at == later + timedelta(hours=2)
    actions = [d["action"] for d in await h.world.decisions() if d["signal_id"] == breach_id]
    assert "park" in actions and "resume" in actions

    # Now the ladder runs again: unacknowledged past the new deadline, it goes up to the owner.
    h.world.clock.set(later + timedelta(hours=2, minutes=1))
    await sweep_signals(h.app.services, later + timedelta(hours=2, minutes=1))
    assert {s.id: s for s in await h.world.signals()}[breach_id].escalation_level == 2


async def test_signals_of_one_priority_class_are_ordered_not_parked(h: Harness) -> None:
    await breach(h)
    services = h.app.services
    async with services.db.transaction() as conn:
        await raise_signal(
            conn,
            type="order.no_progress",
            dedup_key="no_progress:O1",
            now=local(2, 10, 20),
            order_id="O1",
            settings=services.settings,
            policy=services.policy,
        )
    assert all(s.parked_by is None for s in await h.world.signals())


async def test_a_hold_raised_after_the_breach_parks_it_too(h: Harness) -> None:
    await breach(h)
    breach_id = next(s.id for s in await h.world.signals() if s.type == "sla.breach")
    hold = await _hold(h)
    parked = {s.id: s for s in await h.world.signals()}[breach_id]
    assert parked.parked_by == hold and parked.parked_reason == "compliance.hold"
    await h.shown(LEADS_CHAT, f"Parked while #{hold} (Compliance hold) is open")
