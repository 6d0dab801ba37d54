"""Signals that tell the truth, end to end (issue 12): the real bot against the Bot API emulator and the
BikeWerk simulator on a ManualClock. A breach pings the leads; once the manager accepts, one escalation
sweep resolves the signal as the system, edits the ping to say what cleared it and when, and nothing climbs
afterwards. The same for an order nobody could take once a manager comes on shift."""

from __future__ import annotations

from datetime import timedelta

from backbone.sweep import sweep_signals
from bot.i18n import in_locale
from circles.sales_ops import sla
from domain.signals import ClearWhen
from keyboards.outcomes import cleared_what
from scheduler.jobs import dispatch_tick
from storage import signals as signal_store
from tests.support.e2e_world import ANNA, BORIS, VERA, World, offered_order, world  # noqa: F401
from tests.support.harness import CRISIS_CHAT_ID, LEADS_CHAT_ID, OWNER_ID


def _pings(world: World, chat_id: int, signal_id: int) -> list[str]:
    return [m.text or "" for m in world.tg.transcript(chat_id) if f"#{signal_id}" in (m.text or "")]


async def _only_signal(world: World, type_: str) -> int:
    rows = await world.h.services.db.fetchall("SELECT id FROM ai_signals WHERE type = ?", (type_,))
    assert len(rows) == 1, rows
    return int(rows[0]["id"])


async def _quiet_after(world: World, hours: int) -> None:
    """Hours pass with sweeps every few minutes: nothing climbs, nobody is asked anything."""
    chats = (LEADS_CHAT_ID, CRISIS_CHAT_ID, OWNER_ID, ANNA, BORIS, VERA)
    before = {c: [(m.message_id, m.edits) for m in world.tg.transcript(c)] for c in chats}
    for _ in range(hours * 4):
        world.h.clock.advance(timedelta(minutes=15))
        report = await sweep_signals(world.h.services, world.h.clock.now())
        assert report.escalated == report.asked == report.unacknowledged == 0
    await world.h.settle()
    after = {c: [(m.message_id, m.edits) for m in world.tg.transcript(c)] for c in chats}
    assert after == before


async def test_a_breach_clears_itself_when_the_manager_accepts(world: World) -> None:
    services = world.h.services
    await offered_order(world)  # 09:00, offered to Anna until 09:10
    world.h.clock.advance(timedelta(minutes=11))
    await dispatch_tick(services)  # Anna did not answer: Boris gets it until 09:21
    await world.h.settle()
    world.h.clock.advance(timedelta(minutes=5))  # 09:16: the 15 working minutes of pending_manager are over
    await sla.sweep(services, world.h.clock.now())
    await world.h.settle()
    signal_id = await _only_signal(world, "sla.breach")
    assert len(_pings(world, LEADS_CHAT_ID, signal_id)) == 1  # a high breach pings the leads

    assert "is yours" in await world.press(BORIS, "Accept")
    world.h.clock.advance(timedelta(minutes=1))
    report = await sweep_signals(services, world.h.clock.now())
    await world.h.settle()

    assert report.cleared == 1
    signal = await signal_store.get_signal(services.db, signal_id)
    assert signal is not None and signal.state == "resolved" and signal.resolved_by is None
    assert signal.resolution == f"cleared:{ClearWhen.ORDER_LEFT_STATUS}"
    assert signal.details["cleared"]["status"] == "accepted"
    [ping] = [m for m in world.tg.transcript(LEADS_CHAT_ID) if f"#{signal_id}" in (m.text or "")]
    with in_locale("ru"):
        what = cleared_what(str(ClearWhen.ORDER_LEFT_STATUS), {"status": "accepted"})
    assert what in (ping.text or "") and "09:16" in (ping.text or "") and not ping.buttons
    decisions = await signal_store.decisions_of_signal(services.db, signal_id)
    assert [(d.kind, d.action, d.actor, d.reason) for d in decisions][-1] == (
        "auto",
        "resolve",
        "system",
        "cleared:order_left_status",
    )
    await _quiet_after(world, 6)


async def test_an_unassigned_order_clears_itself_when_a_manager_comes_on_shift(world: World) -> None:
    services = world.h.services
    for person in (ANNA, BORIS, VERA):
        assert "off shift" in await world.say(person, "/shift off")
    order_id = await world.crm_order()
    await world.sync()
    signal_id = await _only_signal(world, "order.unassigned")
    assert len(_pings(world, LEADS_CHAT_ID, signal_id)) == 1

    await world.say(VERA, "/shift on")
    await dispatch_tick(services)
    await world.h.settle()
    assert "Accept" in (world.card(VERA, order_id).text or "")
    report = await sweep_signals(services, world.h.clock.now())
    await world.h.settle()

    assert report.cleared == 1
    signal = await signal_store.get_signal(services.db, signal_id)
    assert signal is not None and signal.state == "resolved"
    assert signal.resolution == f"cleared:{ClearWhen.ORDER_OFFERED}"
    [ping] = [m for m in world.tg.transcript(LEADS_CHAT_ID) if f"#{signal_id}" in (m.text or "")]
    with in_locale("ru"):
        what = cleared_what(str(ClearWhen.ORDER_OFFERED), {})
    assert what in (ping.text or "") and not ping.buttons
    await _quiet_after(world, 6)
