"""Russian, whole (issue 12): every message type the signals, decisions, crisis protocol, handovers and
approvals produce, rendered in Russian, carries no English word from the code. The English words are every
word of the catalog's msgids; data (ids, names, commands) is allowed through."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from bot.i18n import in_locale
from domain.crisis import DEFAULT_PLAYBOOKS
from domain.effects import EXPECTED
from domain.policy import Policy
from domain.signals import SIGNAL_TYPES, ClearWhen, DecideAction, Ladder, Signal, SignalCommand
from keyboards import outcomes, reasons
from keyboards import signals as cards
from storage.signals import Decision

TZ = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ALLOWED = {"crm", "sla", "bikewerk", "telegram", "html"}
NAMES = {501: "Анна", 502: "Борис", 301: "Лена"}


@cache
def english_words() -> frozenset[str]:
    with Path("locales/messages.pot").open("rb") as pot:
        catalog = read_po(pot)
    words: set[str] = set()
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
        for msgid in ids:
            text = re.sub(r"\{[^}]*\}|<[^>]+>|/\w+", " ", str(msgid or ""))
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", text))
    return frozenset(words - ALLOWED)


def english_in(text: str) -> list[str]:
    text = re.sub(r"<code>.*?</code>", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"/[a-z_]+", " ", text)  # commands
    return [w for w in re.findall(r"[A-Za-z]{3,}", text) if w.lower() in english_words()]


def check(texts: list[str]) -> None:
    bad = {t: english_in(t) for t in texts if english_in(t)}
    assert not bad, "English in Russian texts:\n" + "\n".join(f"{w}: {t!r}" for t, w in bad.items())


DETAILS: dict[str, dict[str, Any]] = {
    "sla.breach": {
        "status": "inspection",
        "budget_minutes": 1440,
        "clock": "working",
        "policy_version": "2026-11-1",
        "since": T0.isoformat(),
        "breach_at": T0.isoformat(),
        "manager_id": "m-01",
    },
    "order.stuck_72h": {"status": "awaiting_client", "since": T0.isoformat(), "manager_id": "m-01"},
    "order.unassigned": {"order_id": "O-1", "bike": "Canyon Spectral"},
    "order.accept_timeout": {"order_id": "O-1"},
    "order.no_progress": {"manager": 501, "asked_at": T0.isoformat()},
    "quality.severe_defect": {"order_id": "O-1", "item": 5, "bike": "Canyon Spectral"},
    "sync.contract_violation": {
        "source": "orders",
        "records": 3,
        "record": "O-9",
        "reason": "bike: поле пустое",
    },
    "telegram.chat_blocked": {"chat_id": 501, "via": "send"},
    "postmortem.missing": {"signal": 7, "type": "crisis.manual"},
    "crisis.manual": {"text": "в CRM нет заказов", "by": 501, "by_name": "Анна"},
    "crisis.breach_storm": {"breaches": 5, "window_minutes": 60},
    "crisis.crm_unreachable": {"failing_since": T0.isoformat()},
    "crisis.paid_defect": {"order_id": "O-1"},
    "decision.approval_needed": {"action": "compensation", "reason": "царапина", "amount_eur": "49.90"},
}


def make_signal(type_: str, **changes: Any) -> Signal:
    details = dict(DETAILS.get(type_, {}))
    if type_.startswith("crisis."):
        details["playbook"] = DEFAULT_PLAYBOOKS.get(type_, DEFAULT_PLAYBOOKS["crisis.manual"])
    signal = Signal(
        id=7,
        type=type_,
        severity=SIGNAL_TYPES[type_].severity,
        circle=str(SIGNAL_TYPES[type_].circle),
        order_id="O-1",
        dedup_key="k",
        state="open",
        owner_person=501,
        escalation_level=1,
        needs_decision=SIGNAL_TYPES[type_].needs_decision,
        deadline_at=T0 + timedelta(hours=2),
        raised_at=T0,
        raised_by="system",
        acked_at=None,
        acked_by=None,
        resolved_at=None,
        resolved_by=None,
        resolution=None,
        snoozed_until=None,
        still_on_it_asked_at=None,
        checked_in_at=None,
        repeats=2,
        last_seen_at=T0,
        details=details,
        ping_chats=(),
        ladder=Ladder.of(Policy.default().signals),
        contacts=None,
    )
    return replace(signal, **changes)


def states(type_: str) -> list[Signal]:
    later = T0 + timedelta(minutes=30)
    cleared = {"code": "order_left_status", "at": later.isoformat(), "status": "accepted"}
    return [
        make_signal(type_),
        make_signal(type_, state="acknowledged", acked_at=later, acked_by=301, snoozed_until=later),
        make_signal(type_, state="resolved", resolved_at=later, resolved_by=301, resolution="resolved"),
        make_signal(
            type_,
            state="resolved",
            resolved_at=later,
            resolution="cleared:order_left_status",
            details={**DETAILS.get(type_, {}), "cleared": cleared},
        ),
        make_signal(type_, state="resolved", resolved_at=later, resolved_by=301, resolution="approved: ок"),
    ]


def buttons(markup: Any) -> list[str]:
    return [b.text for row in markup.inline_keyboard for b in row]


@pytest.mark.parametrize("type_", sorted(SIGNAL_TYPES))
def test_every_signal_type_reads_in_russian_in_every_state(type_: str) -> None:
    texts: list[str] = []
    with in_locale("ru"):
        for signal in states(type_):
            texts.append(cards.ping_text(signal, names=NAMES, tz=TZ))
            texts += buttons(cards.ping_keyboard(signal))
            texts.append(cards.signal_line(signal, TZ))
            texts.append(cards.resolved_notice(signal, names=NAMES))
        signal = make_signal(type_)
        texts.append(cards.still_on_it_text(signal, reply_by=T0, tz=TZ))
        texts += [
            cards.postmortem_question(step, signal) for step in ("cause", "action", "effect", "prevention")
        ]
        snoozed = replace(signal, snoozed_until=T0)
        for action in DecideAction:
            command = SignalCommand(7, action, "m-01" if action is DecideAction.REASSIGN else None)
            texts.append(cards.done_text(snoozed if "snooze" in action else signal, command, TZ))
            texts += [cards.refusal_text(r, command) for r in ("not_found", "forbidden", "resolved")]
    check(texts)


REASONS = [
    "acknowledged",
    "resolved",
    "still on it",
    "escalated by hand",
    "not acknowledged by the deadline",
    "the snooze is over",
    "no progress since the last check-in",
    'no answer to "still on it?"',
    "postmortem written",
    "on leave",
    "back from leave",
    "accepted order without progress",
    "handover",
    "80% of the inspection budget used",
    "not accepted within 10 working minutes",
    "declined by the manager: busy",
    "capacity 12",
    "capacity reset",
    "reassigned to m-02",
    "snoozed for 4 h",
    "sla.breach (priority 3) wins by severity",
    "client",
    "seller",
    "client_no",
    *(f"cleared:{code}" for code in ClearWhen),
]
EFFECTS: list[dict[str, Any]] = [
    {"expected": "accepted", "helped": True, "minutes": 4, "window_min": 10},
    {"expected": "accepted", "helped": False, "minutes": 10, "window_min": 10},
    {"expected": "next_status", "helped": True, "moved_to": "inspection", "minutes": 3, "window_min": 5},
    {"expected": "order_moves", "helped": False, "moved_to": None, "minutes": 60, "window_min": 60},
    {"expected": "no_repeat", "helped": True, "window_min": 10080},
    {"expected": "no_repeat", "helped": False, "repeat": 9, "minutes": 100, "window_min": 10080},
    {"moved_to": "cancelled", "minutes": 120, "carried_out": True},
    {"carried_out": False, "amount_eur": "20"},
    {"moved_to": None, "minutes": 60},
    {"expected": "order_moves", "helped": None, "unobservable": True},
]


@pytest.mark.parametrize("reason", REASONS)
def test_every_decision_reason_the_code_writes_reads_in_russian(reason: str) -> None:
    decision = Decision(
        1, 7, "O-1", "auto", "remind", "done", "system", reason, {"status": "accepted"}, None, None, T0
    )
    with in_locale("ru"):
        check([reasons.reason_text(reason, {"status": "accepted"}, cards.type_title)])
        check([cards.decision_line(decision, TZ, NAMES)])


def test_effects_actions_and_the_new_answers_read_in_russian() -> None:
    with in_locale("ru"):
        texts = [outcomes.effect_text(effect) for effect in EFFECTS]
        actions = [
            *EXPECTED,
            "arbitrate",
            "approve",
            "reject",
            "resolve",
            "snooze_ended",
            "set_capacity",
            "set_leave",
        ]
        texts += [outcomes.action_label(action) for action in actions]
        texts += [outcomes.cleared_what(str(code), {"status": "accepted"}) for code in ClearWhen]
        texts += [
            outcomes.crisis_usage(),
            outcomes.crisis_raised(7),
            outcomes.crisis_no_role(),
            outcomes.reassign_usage(),
            outcomes.reassign_forbidden(),
            outcomes.reassign_done("O-1", "Анна", "Борис"),
            outcomes.reassign_done("O-1", None, "Борис"),
            *(outcomes.decision_state_label(s) for s in ("pending_approval", "approved", "rejected")),
            *(outcomes.agent_label(a) for a in ("system", "dispatcher", "sync", "crm_outbox", "telegram")),
            outcomes.compensation_usage(),
            outcomes.compensation_requested(7, "49.90", "O-1"),
            outcomes.bulk_usage(),
            outcomes.postmortem_requested(
                make_signal("crisis.manual"), author="Лена", due=T0, tz=TZ, title="Кризис"
            ),
        ]
        for code in (
            "not_found",
            "order_closed",
            "unknown_manager",
            "manager_unreachable",
            "same_manager",
            "x",
        ):
            texts.append(outcomes.reassign_refused(code, {"order": "O-1", "manager": "m-01"}))
        for code in ("not_found", "bad_amount", "reason_required", "unknown_manager", "nothing_open", "x"):
            texts.append(outcomes.request_refused(code, {"order": "O-1", "amount": "-5", "manager": "m-01"}))
        for outcome in ("approved", "rejected", "moot"):
            texts.append(outcomes.compensation_told(outcome, order="O-1", amount="20", comment="нет фото"))
            for moved, left in ((1, 0), (3, 2), (5, 1)):
                texts.append(outcomes.bulk_told(outcome, manager="m-01", moved=moved, left=left))
        for count in (1, 2, 5, 21):
            texts.append(outcomes.bulk_requested(7, "m-01", count))
            texts += outcomes.approval_facts(
                {"action": "bulk_reassign", "manager_id": "m-01", "orders": ["O"] * count}
            )
        cancel = make_signal("decision.approval_needed", details={"action": "cancel", "reason": "seller"})
        texts.append(cards.ping_text(cancel, names=NAMES, tz=TZ))
        texts.append(cards.notes_text(["postmortem", "carried_out", "rejected", "moved_on", "order_moved"]))
    check(texts)


def test_the_checker_finds_english() -> None:
    assert english_in("Заказ передан: the order moved on") == ["the", "order", "moved"]
    assert english_in("Команда <code>/reassign 1042 boris</code> и /signals") == []


async def test_a_day_of_signals_crisis_handover_and_approvals_reads_in_russian(tmp_path: Path) -> None:
    """The real bot on the emulator and the simulator, everybody in Russian: every message in every chat."""
    from backbone.sweep import sweep_signals
    from bikewerk.sync import Syncer
    from circles.sales_ops import sla
    from scheduler.jobs import dispatch_tick
    from testkit.emulator import RateLimits
    from tests.support.e2e_world import UNLIMITED, World
    from tests.support.harness import ADMIN_ID, LEAD_IDS, start_harness

    h = await start_harness(
        tmp_path, simulator=True, rate_limits=RateLimits(enabled=False), send_limits=UNLIMITED
    )
    try:
        services = h.services
        syncer = Syncer(
            services.db,
            h.app.bikewerk,
            services.policy,
            services.calendar,
            h.clock,
            settings=services.settings,
            wake_sender=services.wake_sender,
        )
        world = World(h, syncer)
        assert h.simulator is not None
        people = {"anna": (1001, "Анна Петрова"), "boris": (1002, "Борис Смирнов")}
        for manager_id, (telegram_id, name) in people.items():
            h.simulator.upsert_manager(
                {"id": manager_id, "name": name, "telegram_id": telegram_id, "active": True, "capacity": 10}
            )
            h.emulator.add_user(telegram_id, name.split()[0], language_code="ru")
        await world.sync()
        lead, anna, boris = LEAD_IDS[0], 1001, 1002

        order_id = await world.crm_order()
        await world.sync()
        h.clock.advance(timedelta(minutes=11))
        await dispatch_tick(services)
        h.clock.advance(timedelta(minutes=5))
        await sla.sweep(services, h.clock.now())
        await h.settle()
        holder = (
            anna
            if any(order_id in (m.text or "") and m.buttons for m in h.emulator.transcript(anna))
            else boris
        )
        await world.press(holder, "✅ Принять")
        await sweep_signals(services, h.clock.now())
        await h.settle()

        await world.say(anna, "/crisis в CRM пропали заказы")
        [row] = await services.db.fetchall("SELECT id FROM ai_signals WHERE type = 'crisis.manual'")
        h.clock.advance(timedelta(minutes=16))
        await sweep_signals(services, h.clock.now())
        await world.say(lead, f"/decide {row['id']} resolve хостинг перезапустил базу")
        for answer in ("упала база", "перезапустили", "два часа без заказов", "мониторинг базы"):
            await world.say(lead, answer)

        other = "boris" if holder == anna else "anna"
        await world.say(lead, f"/reassign {order_id} {other} заболел")
        await world.say(lead, f"/compensate {order_id} 30 царапина на раме")
        [request] = await services.db.fetchall(
            "SELECT id FROM ai_signals WHERE type = 'decision.approval_needed' ORDER BY id DESC LIMIT 1"
        )
        await world.say(ADMIN_ID, f"/decide {request['id']} approve ок")
        await world.say(lead, "/reassign_all никто")
        await world.say(ADMIN_ID, "/log")
        await world.say(ADMIN_ID, f"/signal {row['id']}")
        await world.say(ADMIN_ID, "/signals")
        await h.settle()

        chats = [lead, anna, boris, ADMIN_ID, *(c for c in (-1001, -1002, -1003, 200))]
        texts = [m.text or m.caption or "" for chat in chats for m in h.emulator.transcript(chat)]
        texts += [text for chat in chats for m in h.emulator.transcript(chat) for text, _ in m.buttons]
        assert len(texts) > 20  # messages are edited in place: one per card, ping and answer
        check(texts)
    finally:
        await h.stop()
