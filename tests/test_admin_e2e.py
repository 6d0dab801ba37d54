"""End to end against the Bot API emulator: the real bot process (BotApp: dispatcher, middlewares, sender)
on a ManualClock. A breach pings the leads chat with buttons, Acknowledge edits the ping, /decide approves and
rejects what waits for a human decision, the postmortem dialogue, and every refusal answered in one line with
nothing changed."""

from __future__ import annotations

from backbone.signals import raise_signal, request_approval
from tests.support.admin_bot import breach, h, running_bot  # noqa: F401
from tests.support.harness import Harness
from tests.support.sla_world import ADMIN, LEAD, LEADS_CHAT, MANAGER_TG, OWNER


async def test_a_breach_pings_the_leads_chat_and_acknowledge_edits_the_ping(h: Harness) -> None:
    ping = await breach(h)
    assert "SLA breach" in (ping.text or "") and "HIGH" in (ping.text or "")
    labels = [text for text, _ in ping.buttons]
    for wanted in ("Acknowledge", "Resolve", "Snooze 1 h", "Snooze 4 h", "Reassign"):
        assert any(wanted in label for label in labels), labels

    answer = await h.press(LEAD, LEADS_CHAT, "Acknowledge")
    assert "acknowledged" in answer["text"]
    await h.until(lambda: "Acknowledged by Lena" in (h.tg.transcript(LEADS_CHAT)[-1].text or ""))
    edited = h.tg.transcript(LEADS_CHAT)[-1]
    assert edited.message_id == ping.message_id and edited.edits == 1
    assert not any("Acknowledge" in text for text, _ in edited.buttons)
    assert h.tg.unanswered_callbacks() == []


async def test_decide_approves_and_rejects_what_waits_for_an_admin(h: Harness) -> None:
    world = h.world
    async with world.db.transaction() as conn:
        cancel, _ = await request_approval(
            conn,
            action="cancel",
            reason="client withdrew",
            now=world.now,
            settings=h.app.services.settings,
            order_id="O7",
            requested_by=str(MANAGER_TG),
        )
        refund, _ = await request_approval(
            conn,
            action="compensation",
            reason="scratched frame",
            now=world.now,
            settings=h.app.services.settings,
            order_id="O8",
        )
    h.app.services.wake_sender()
    ping = await h.shown(LEADS_CHAT, "cancel the order")
    assert {"✅ Approve", "⛔ Reject"} <= {text for text, _ in ping.buttons}
    # Only admins approve: they get the pings privately too.
    await h.shown(ADMIN, "cancel the order")
    await h.shown(ADMIN, "pay a compensation")

    assert (
        await h.say(LEAD, f"/decide {cancel} approve")
        == f"Only an admin or the owner can approve or reject signal #{cancel}."
    )
    # Order O7 is not in the store: the approval is recorded, and the cancel is not carried out.
    assert (await h.say(ADMIN, f"/decide {cancel} approve the client confirmed")).startswith(
        f"Signal #{cancel}: approved. "
    )
    await h.until(lambda: "Resolved by Adam" in (h.latest(LEADS_CHAT, "cancel the order").text or ""))  # type: ignore[union-attr]
    await h.shown(MANAGER_TG, "was resolved by Adam")  # the manager who asked hears the outcome

    # Order O8 is not in the store either: the compensation settler finds nothing to pay.
    assert await h.say(ADMIN, f"/decide {refund} reject no evidence") == (
        f"Signal #{refund}: rejected. The order had moved on meanwhile: nothing was changed."
    )
    decisions = {d["action"]: d for d in await world.decisions()}
    assert decisions["cancel"]["state"] == "approved" and decisions["compensation"]["state"] == "rejected"
    assert decisions["reject"]["reason"] == "no evidence"
    assert (
        await h.say(ADMIN, f"/decide {refund} approve")
        == f"Signal #{refund} is already resolved; nothing changed."
    )


async def test_resolving_a_high_signal_runs_the_postmortem_dialogue(h: Harness) -> None:
    await breach(h)
    answer = await h.press(LEAD, LEADS_CHAT, "Resolve")
    assert "resolved" in answer["text"] and "postmortem" in answer["text"]
    question = await h.shown(LEAD, "what was the cause?")
    assert "1/4" in (question.text or "")
    assert "2/4" in await h.say(LEAD, "Max was on a call with a seller")
    assert "3/4" in await h.say(LEAD, "Lena accepted it herself")
    assert "4/4" in await h.say(LEAD, "client waited 20 minutes")
    assert "is saved" in await h.say(LEAD, "second manager on shift at lunch")
    listing = await h.say(LEAD, "/postmortems")
    assert "Cause: Max was on a call with a seller" in listing and "Prevention: second manager" in listing


async def test_signals_signal_log_and_managers_show_the_state(h: Harness) -> None:
    await breach(h, "O1")
    await breach(h, "O2")
    listing = await h.say(LEAD, "/signals high")
    assert "Open signals (high): 2" in listing and "order O1" in listing and "order O2" in listing
    assert await h.say(LEAD, "/signals low") == "No open signals (low)."
    assert "Open signals (order O2): 1" in await h.say(ADMIN, "/signals order O2")
    details = await h.say(LEAD, "/signal 1")
    assert "SLA breach · #1" in details and "Decisions" in details
    assert "remind" not in details  # the breach was found at once: no reminder was sent
    assert await h.say(ADMIN, "/log") == "The decision log is empty."
    assert await h.say(LEAD, "/decide 1 ack calling Max") == "Signal #1 acknowledged: it is yours now."
    log = await h.say(ADMIN, "/log")
    assert "Decision log: 1" in log and "acknowledged #1 order O1 · Lena: calling Max" in log
    managers = await h.say(OWNER, "/managers")
    assert "Manager M1 (M1)" in managers and "2/10" in managers


async def test_every_refusal_gets_one_line_and_changes_nothing(h: Harness) -> None:
    ping = await breach(h)
    world = h.world
    before = await world.snapshot()
    refusals = {
        (ADMIN, "/decide"): "Which signal? Use: /decide ID ACTION [comment], e.g. /decide 12 ack.",
        (ADMIN, "/decide abc ack"): "“abc” is not a signal id.",
        (ADMIN, "/decide 1"): "What should happen?",
        (ADMIN, "/decide 1 frobnicate"): "Unknown action “frobnicate”.",
        (ADMIN, "/decide 1 reassign"): "Reassign to whom?",
        (ADMIN, "/decide 1 reassign M;1"): "“M;1” is not a manager id.",
        (ADMIN, "/decide 1 reassign NOBODY"): "There is no manager “NOBODY”.",
        (ADMIN, "/decide 999 ack"): "There is no signal #999.",
        (ADMIN, "/decide 1 approve"): "Signal #1 needs no approval",
        (ADMIN, "/decide 1 ack " + "x" * 600): "The comment is too long (600 characters)",
        (LEAD, "/decide 1 approve"): "Only an admin or the owner can approve or reject signal #1.",
        (MANAGER_TG, "/decide 1 ack"): "You cannot do this with signal #1",
        (MANAGER_TG, "/signals"): "Only leads, admins and the owner can use /signals.",
        (MANAGER_TG, "/log"): "Only leads, admins and the owner can use /log.",
        (MANAGER_TG, "/managers"): "Only leads, admins and the owner can use /managers.",
        (MANAGER_TG, "/postmortems"): "Only leads, admins and the owner can use /postmortems.",
        (MANAGER_TG, "/signal 1"): "Only leads, admins and the owner can use /signal.",
        (ADMIN, "/signals urgent"): "Unknown filter “urgent”.",
        (ADMIN, "/signals order"): "“” is not an order id.",
        (ADMIN, "/signal"): "Which signal? Use: /signal ID",
        (ADMIN, "/signal x1"): "“x1” is not a signal id.",
        (ADMIN, "/signal 42"): "There is no signal #42.",
    }
    for (user, text), expected in refusals.items():
        reply = await h.say(user, text)
        assert expected in reply, (text, reply)
        assert "\n" not in reply, (text, reply)
    # Buttons: a forged press, a manager pressing the leads' button, an approval button on a plain signal.
    forged = await h.press_data(LEAD, LEADS_CHAT, ping.message_id, "sg:1:zz:")
    assert forged["show_alert"] and "not valid" in forged["text"]
    foreign = await h.press(MANAGER_TG, LEADS_CHAT, "Acknowledge")
    assert foreign["show_alert"] and "You cannot do this with signal #1" in foreign["text"]
    no_decision = await h.press_data(ADMIN, LEADS_CHAT, ping.message_id, "sg:1:ap:")
    assert no_decision["show_alert"] and "needs no approval" in no_decision["text"]
    stale_page = await h.press_data(LEAD, LEADS_CHAT, ping.message_id, "sgl:-1:::")
    assert stale_page["show_alert"]
    assert h.tg.unanswered_callbacks() == []
    assert await world.snapshot() == before

    # A resolved signal refuses further actions.
    assert await h.say(LEAD, "/decide 1 resolve done") == "Signal #1 resolved. " + (
        "The postmortem questions are waiting in your private chat with the bot."
    )
    h.tg.send_text(
        LEAD, "/decide 1 ack"
    )  # the postmortem question may arrive in between: wait for the answer
    await h.shown(LEAD, "Signal #1 is already resolved; nothing changed.")


async def test_signals_are_paged_and_reassign_hands_one_to_a_picked_manager(h: Harness) -> None:
    world = h.world
    h.tg.add_user(502, "Mira")
    await world.add_manager("M2", 502)
    async with world.db.transaction() as conn:
        for n in range(12):
            await raise_signal(
                conn,
                type="order.unassigned",
                dedup_key=f"u{n}",
                now=world.now,
                order_id=f"U{n}",
                settings=h.app.services.settings,
            )
    h.app.services.wake_sender()

    first = await h.say(LEAD, "/signals")
    assert "Open signals: 12 · page 1/2" in first and "#10 " in first and "#11 " not in first
    assert (await h.press(LEAD, LEAD, "▶"))["text"] is None
    await h.until(lambda: "page 2/2" in (h.tg.transcript(LEAD)[-1].text or ""))
    assert "#12 " in (h.tg.transcript(LEAD)[-1].text or "")

    ping = await h.shown(LEADS_CHAT, "Order U0")
    assert (await h.press_data(LEAD, LEADS_CHAT, ping.message_id, "sg:1:ra:"))["text"] is None
    picker = await h.shown(LEADS_CHAT, "Reassign signal #1 to:")
    # Each candidate with their load and open orders, as the dispatcher scores them.
    assert [text for text, _ in picker.buttons] == ["Manager M1 · 0% · 0", "Manager M2 · 0% · 0"]
    answer = await h.press(LEAD, LEADS_CHAT, "Manager M2 · 0% · 0")
    assert answer["text"] == "Signal #1 reassigned to manager M2."
    await h.shown(502, "Order U0")  # the manager now owns it and has the ping
    await h.until(lambda: "Owner: Manager M2" in (h.latest(LEADS_CHAT, "Order U0").text or ""))  # type: ignore[union-attr]
