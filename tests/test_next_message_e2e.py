"""One answer to "what does my next message mean?" (issue 12): one lookup per message decides whether a
free text is a tracking number, a checklist note or a postmortem answer (the question asked last wins); the
bot says so when it asks; /cancel leaves any of them, a postmortem included, which can be continued later."""

from __future__ import annotations

from backbone.postmortems import ask_postmortem
from backbone.signals import Routing, raise_signal
from storage.people import set_language
from storage.signals import get_signal
from tests.support.e2e_world import ANNA, World, offered_order, world  # noqa: F401
from tests.support.harness import LEAD_IDS

LEAD = LEAD_IDS[0]


async def _critical_resolved_by_lead(world: World) -> int:
    async with world.h.services.db.transaction() as conn:
        await set_language(conn, telegram_id=LEAD, lang="en", now=world.h.clock.now())
    await world.say(LEAD, "/crisis the CRM is down")
    [row] = await world.h.services.db.fetchall("SELECT id FROM ai_signals WHERE type = 'crisis.manual'")
    answer = await world.say(LEAD, f"/decide {row['id']} resolve fixed")
    assert "1/4" in answer and "Your next message here is the answer; /cancel puts it off." in answer
    return int(row["id"])


async def test_cancel_puts_a_postmortem_off_and_the_button_continues_it(world: World) -> None:
    signal_id = await _critical_resolved_by_lead(world)
    assert "2/4" in await world.say(LEAD, "the database filled its disk")

    answer = await world.say(LEAD, "/cancel")
    assert f"The postmortem of signal #{signal_id} waits" in answer
    assert "I did not understand" in await world.say(LEAD, "hello there")  # not taken as an answer
    [row] = await world.h.services.db.fetchall("SELECT step, action FROM postmortems")
    assert (row["step"], row["action"]) == ("action", None)

    await world.press(LEAD, f"✍️ Continue the postmortem of #{signal_id}")
    assert "2/4" in (world.tg.transcript(LEAD)[-1].text or "")
    assert "3/4" in await world.say(LEAD, "we cleaned the disk")


async def test_the_question_asked_last_takes_the_next_message(world: World) -> None:
    order_id = await offered_order(world)
    await world.press(ANNA, "Accept")
    await world.press(ANNA, "Start inspection")
    async with world.h.services.db.transaction() as conn:  # Anna is asked for a tracking number ...
        await conn.execute(
            "INSERT INTO input_focus (telegram_id, kind, order_id, since) VALUES (?, 'tracking', ?, ?)",
            (ANNA, order_id, "2026-11-23T08:00:00.000000+00:00"),
        )
        signal_id = await raise_signal(  # ... then for a postmortem (she resolved a breach of her own)
            conn, type="sla.breach", dedup_key="b", now=world.h.clock.now(), order_id=order_id
        )
        loaded = await get_signal(conn, signal_id)
        assert loaded is not None
        await ask_postmortem(
            conn, Routing.from_settings(world.h.services.settings), loaded, ANNA, world.h.clock.now()
        )
    world.h.services.wake_sender()
    await world.h.settle()

    assert "2/4" in await world.say(ANNA, "too many orders at once")  # the postmortem was asked last
    answer = await world.say(ANNA, "/cancel")
    assert "waits" in answer
    assert "I did not understand" in await world.say(ANNA, "1Z999AA10123456784")  # tracking was left too
