"""Signals (SPEC §6): raise with dedup, route and ping; acknowledge, resolve, snooze, reassign, escalate,
approve or reject; the escalation sweep; "still on it?" for acknowledged signals; arbitration of conflicts.

Every state change re-renders the signal's ping in every chat that shows it (one tg_messages slot per chat
under ref ``signal:<id>``), so each chat shows the truth, and is logged as a decision. Texts live in
keyboards/signals.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiosqlite
from aiogram.types import InlineKeyboardMarkup

from agents.decisions import SYSTEM, actor_of, record_decision, settle_approval
from bot.config import Settings
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from domain.dispatch import Candidate, on_shift, score
from domain.policy import Severity
from domain.signals import (
    APPROVAL_ACTIONS,
    POSTMORTEM_DUE_HOURS,
    SNOOZE_HOURS,
    STILL_ON_IT_REPLY_MINUTES,
    Actor,
    Contacts,
    DecideAction,
    Level,
    Signal,
    SignalCommand,
    SignalFilter,
    arbitrate,
    chats_for,
    escalate_level,
    initial_level,
    needs_postmortem,
    owner_at,
    permitted,
    response_deadline,
    signal_type,
    worse,
)
from domain.sla import still_on_it_at
from keyboards import signals as cards
from storage import signals as store
from storage.assignments import DispatchManager, dispatch_managers
from storage.messages import put_message
from storage.orders import open_orders_by_manager
from storage.people import chat_language, manager_by_id

log = logging.getLogger(__name__)

_SWEEP_BATCH = 500


@dataclass(frozen=True)
class Routing:
    """Where pings go and how they are rendered, from the settings (chat ids, time zone, default language)."""

    contacts: Contacts
    tz: ZoneInfo
    default_lang: str

    @classmethod
    def from_settings(cls, settings: Settings | None) -> Routing:
        if settings is None:
            return cls(Contacts(), ZoneInfo("UTC"), "ru")
        return cls(
            Contacts(
                leads_chat_id=settings.leads_chat_id,
                crisis_chat_id=settings.crisis_chat_id,
                owner_id=settings.owner_id,
                lead_ids=tuple(settings.lead_ids),
                admin_ids=tuple(settings.admin_ids),
                admin_chat_id=settings.admin_chat_id,
            ),
            settings.tz,
            settings.default_language,
        )


Rendered = Callable[[], tuple[str, InlineKeyboardMarkup | None]]


async def _put(
    conn: aiosqlite.Connection, routing: Routing, chat_id: int, ref: str, now: datetime, render: Rendered
) -> None:
    """Write a message rendered by `render()` (text, keyboard or None) in the chat's language."""
    lang = await chat_language(conn, chat_id, routing.default_lang)
    with in_locale(lang):
        text, keyboard = render()
    markup = cards.markup_dict(keyboard) if keyboard is not None else None
    await put_message(conn, chat_id=chat_id, ref=ref, body=text, markup=markup, now=now)


async def _render_pings(
    conn: aiosqlite.Connection, signal: Signal, routing: Routing, now: datetime, add: list[int] | None = None
) -> Signal:
    """Show the signal's current state in every chat that has its ping, plus the chats in `add`."""
    chats = list(dict.fromkeys([*signal.ping_chats, *(add or [])]))
    if chats != list(signal.ping_chats):
        await store.update_signal(conn, signal.id, ping_chats=chats)
        signal = _with(signal, ping_chats=tuple(chats))
    names = await store.person_names(conn, [signal.acked_by, signal.resolved_by, signal.owner_person])
    for chat in chats:
        await _put(
            conn,
            routing,
            chat,
            f"signal:{signal.id}",
            now,
            lambda: (cards.ping_text(signal, names=names, tz=routing.tz), cards.ping_keyboard(signal)),
        )
    return signal


def _with(signal: Signal, **changes: Any) -> Signal:
    return replace(signal, **changes)


async def _change(
    conn: aiosqlite.Connection,
    signal: Signal,
    routing: Routing,
    now: datetime,
    *,
    add: list[int] | None = None,
    **changes: Any,
) -> Signal:
    """Store `changes` and re-render the pings."""
    if changes:
        await store.update_signal(conn, signal.id, **changes)
    return await _render_pings(conn, _with(signal, **changes), routing, now, add)


async def _reopen(
    conn: aiosqlite.Connection, signal: Signal, routing: Routing, now: datetime, **cleared: Any
) -> Signal:
    """Back to open and unacknowledged, with a fresh response deadline (a snooze or a check-in ran out)."""
    return await _change(
        conn,
        signal,
        routing,
        now,
        state="open",
        acked_at=None,
        acked_by=None,
        deadline_at=response_deadline(signal.severity, now, routing.tz),
        **cleared,
    )


# --- raising ------------------------------------------------------------------------------------------------


async def raise_signal(
    conn: aiosqlite.Connection,
    *,
    type: str,
    dedup_key: str,
    now: datetime,
    order_id: str | None = None,
    details: dict[str, Any] | None = None,
    raised_by: str = SYSTEM,
    owner_person: int | None = None,
    settings: Settings | None = None,
    severity: Severity | None = None,
    notify: Sequence[int] = (),
) -> int:
    """Raise a signal inside the caller's transaction, or update the live one with the same `dedup_key`.
    `notify`: more chats to ping when it is raised (e.g. the admins), besides those its severity routes to.

    Pass `settings=services.settings`: routing needs the configured chats. Without settings the signal is
    stored unrouted and the escalation sweep (every minute) routes and pings it. `severity` overrides the
    type's default (sla.breach takes the status budget's). Unknown `type` raises UnknownSignalType.
    Call `services.wake_sender()` after the commit.
    """
    kind = signal_type(type)
    routing = Routing.from_settings(settings)
    wanted: Severity = severity or kind.severity
    existing = await store.live_signal_by_dedup(conn, dedup_key)
    if existing is not None:
        return await _repeat(conn, existing, wanted, details, owner_person, routing, now)
    level = initial_level(wanted, owner_person)
    # Without settings the chats are unknown: store it unrouted; the escalation sweep routes it.
    chats = chats_for(wanted, level, owner_person, routing.contacts) if settings is not None else []
    if settings is not None and notify:
        chats = list(dict.fromkeys([*chats, *notify]))
    owner = owner_person if level is Level.MANAGER else owner_at(level, owner_person, routing.contacts)
    signal = await store.insert_signal(
        conn,
        store.NewSignal(
            type=type,
            severity=wanted,
            circle=str(kind.circle),
            order_id=order_id,
            dedup_key=dedup_key,
            owner_person=owner,
            escalation_level=int(level),
            needs_decision=kind.needs_decision,
            deadline_at=response_deadline(wanted, now, routing.tz),
            raised_at=now,
            raised_by=raised_by,
            title=f"{type} {order_id or dedup_key}"[:200],
            details=details or {},
            ping_chats=tuple(chats),
        ),
    )
    signal_id = signal.id
    await _render_pings(conn, signal, routing, now)
    log_event(
        log, "signal.raised", id=signal_id, type=type, severity=wanted, order=order_id, chats=len(chats)
    )
    if not chats:
        log_event(log, "signal.unrouted", logging.WARNING, id=signal_id, type=type)
    if order_id is not None:
        await _arbitrate(conn, order_id, now)
    return signal_id


async def _repeat(
    conn: aiosqlite.Connection,
    signal: Signal,
    wanted: Severity,
    details: dict[str, Any] | None,
    owner_person: int | None,
    routing: Routing,
    now: datetime,
) -> int:
    """The same problem again: count it, refresh its facts, and raise the severity if it got worse."""
    changes: dict[str, Any] = {"repeats": signal.repeats + 1, "last_seen_at": now}
    if details is not None:
        changes["details"] = details
    add: list[int] = []
    severity = worse(signal.severity, wanted)
    if severity != signal.severity:
        level = Level(max(signal.level, initial_level(severity, owner_person)))
        changes.update(severity=severity, escalation_level=int(level))
        if level != signal.level:
            changes["owner_person"] = owner_at(level, signal.owner_person, routing.contacts)
        if signal.state == "open":
            changes["deadline_at"] = min(signal.deadline_at, response_deadline(severity, now, routing.tz))
        if routing.contacts != Contacts():
            add = chats_for(severity, level, signal.owner_person, routing.contacts)
    await _change(conn, signal, routing, now, add=add, **changes)
    log_event(log, "signal.repeated", id=signal.id, type=signal.type, repeats=signal.repeats + 1)
    return signal.id


async def _arbitrate(conn: aiosqlite.Connection, order_id: str, now: datetime) -> None:
    """Several live signals on one order asking for different things: record which wins and why."""
    live = await store.live_signals_on_order(conn, order_id)
    result = arbitrate(s.as_open() for s in live)
    if result is None:
        return
    winner = result.winner
    await record_decision(
        conn,
        kind="auto",
        action="arbitrate",
        reason=f"{winner.type} (priority {int(winner.priority)}) wins by {result.reason}",
        now=now,
        signal_id=winner.id,
        order_id=order_id,
        details={
            "winner": winner.id,
            "by": result.reason,
            "ranked": [
                {
                    "id": s.id,
                    "type": s.type,
                    "priority": int(s.priority),
                    "severity": s.severity,
                    "asks_for": s.asks_for,
                }
                for s in result.ranked
            ],
        },
    )


async def request_approval(
    conn: aiosqlite.Connection,
    *,
    action: str,
    reason: str,
    now: datetime,
    settings: Settings | None,
    requested_by: str = SYSTEM,
    order_id: str | None = None,
    details: dict[str, Any] | None = None,
    signal_type: str = "decision.approval_needed",
) -> tuple[int, int]:
    """Ask an admin to approve a cancel, a compensation or a bulk reassignment (SPEC §6). Returns the signal
    id and the pending decision's id; the requester acts once `agents.decisions.approved_requests` says so."""
    if action not in APPROVAL_ACTIONS:
        raise ValueError(
            f"{action!r} needs no approval; approvals are for {', '.join(sorted(APPROVAL_ACTIONS))}"
        )
    facts = {**(details or {}), "action": action, "reason": reason}
    signal_id = await raise_signal(
        conn,
        type=signal_type,
        dedup_key=f"approval:{action}:{order_id or reason}",
        now=now,
        order_id=order_id,
        details=facts,
        raised_by=requested_by,
        settings=settings,
    )
    routing = Routing.from_settings(settings)
    signal = await store.get_signal(conn, signal_id)
    if signal is not None and routing.contacts.admins():
        # Only admins (and the owner) can approve: their chats get the ping too, wherever the type routes it.
        await _render_pings(conn, signal, routing, now, add=routing.contacts.admins())
    pending = await store.pending_approval(conn, signal_id)
    if pending is not None:
        return signal_id, pending.id
    decision_id = await record_decision(
        conn,
        kind="human",
        action=action,
        actor=requested_by,
        reason=reason,
        now=now,
        signal_id=signal_id,
        order_id=order_id,
        details=facts,
        state="pending_approval",
    )
    return signal_id, decision_id


# --- acting on a signal -------------------------------------------------------------------------------------

Refusal = Literal[
    "not_found",
    "forbidden",
    "resolved",
    "already_acknowledged",
    "needs_decision",
    "not_a_decision",
    "top_of_ladder",
    "unknown_manager",
    "manager_unreachable",
    "not_asked",
]


@dataclass(frozen=True)
class Outcome:
    """What came of a command: `refusal` is None when it was done."""

    signal: Signal | None
    refusal: Refusal | None = None
    notes: list[str] = field(default_factory=list)  # extra facts for the answer, e.g. "postmortem"

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass
class _Context:
    conn: aiosqlite.Connection
    services: Services
    routing: Routing
    now: datetime
    actor: Actor

    @property
    def who(self) -> str:
        return actor_of(self.actor.user_id)

    def still_on_it_due(self, since: datetime) -> datetime:
        return still_on_it_at(since, self.services.policy, self.services.calendar)


async def act(services: Services, command: SignalCommand, actor: Actor, now: datetime) -> Outcome:
    """Carry out one command on one signal (a button press or /decide), after checking the actor's rights
    against the stored signal. A refusal changes nothing."""
    routing = Routing.from_settings(services.settings)
    async with services.db.transaction() as conn:
        signal = await store.get_signal(conn, command.signal_id)
        if signal is None:
            return Outcome(None, "not_found")
        if not permitted(command.action, actor, signal.owner_person):
            return Outcome(signal, "forbidden")
        if signal.state == "resolved":
            return Outcome(signal, "resolved")
        ctx = _Context(conn, services, routing, now, actor)
        outcome = await _ACTIONS[command.action](ctx, signal, command)
    if outcome.ok:
        services.wake_sender()
        log_event(log, "signal.action", id=command.signal_id, action=str(command.action), actor=actor.user_id)
    return outcome


async def _acknowledge(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    if signal.state == "acknowledged":
        return Outcome(signal, "already_acknowledged")
    user = ctx.actor.user_id
    updated = await _change(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        state="acknowledged",
        acked_at=ctx.now,
        acked_by=user,
        owner_person=user,
        checked_in_at=ctx.now,
        still_on_it_asked_at=None,
        snoozed_until=None,
        deadline_at=ctx.still_on_it_due(ctx.now),
    )
    await _decide(ctx, signal, "ack", command.comment or "acknowledged")
    return Outcome(updated)


async def _snooze(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    until = ctx.now + timedelta(hours=SNOOZE_HOURS[command.action])
    user = ctx.actor.user_id
    updated = await _change(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        state="acknowledged",
        acked_at=signal.acked_at or ctx.now,
        acked_by=signal.acked_by or user,
        owner_person=user,
        checked_in_at=ctx.now,
        still_on_it_asked_at=None,
        snoozed_until=until,
        deadline_at=until,
    )
    await _decide(
        ctx,
        signal,
        "snooze",
        command.comment or f"snoozed for {SNOOZE_HOURS[command.action]} h",
        {"until": until.isoformat()},
    )
    return Outcome(updated)


async def _resolve(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    if signal.needs_decision:
        return Outcome(signal, "needs_decision")
    updated = await resolve_signal(
        ctx.conn, signal, ctx.routing, ctx.now, by=ctx.actor.user_id, resolution=command.comment or "resolved"
    )
    await _decide(ctx, signal, "resolve", command.comment or "resolved")
    notes = ["postmortem"] if await _start_postmortem(ctx, updated) else []
    return Outcome(updated, notes=notes)


async def _decision(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    if not signal.needs_decision:
        return Outcome(signal, "not_a_decision")
    # Lazy: agents.approvals carries out orders' changes, and agents.orders imports this module.
    from agents.approvals import Verdict, settle

    approved = command.action is DecideAction.APPROVE
    word = "approved" if approved else "rejected"
    request = await store.pending_approval(ctx.conn, signal.id)
    await settle_approval(
        ctx.conn,
        signal.id,
        approved=approved,
        actor=ctx.who,
        comment=command.comment,
        now=ctx.now,
        order_id=signal.order_id,
    )
    verdict = Verdict(approved, ctx.actor.user_id, command.comment)
    settled = None if request is None else await settle(ctx.conn, ctx.services, request, verdict, ctx.now)
    updated = await resolve_signal(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        by=ctx.actor.user_id,
        resolution=settled.resolution if settled else command.comment or word,
        told=settled.told if settled else frozenset(),
    )
    return Outcome(updated, notes=[settled.note] if settled else [])


async def _reassign(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    manager = await manager_by_id(ctx.conn, command.manager_id or "")
    if manager is None:
        return Outcome(signal, "unknown_manager")
    if not manager["active"] or manager["telegram_id"] is None:
        return Outcome(signal, "manager_unreachable")
    person = int(manager["telegram_id"])
    updated = await _change(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        add=[person],
        state="open",
        owner_person=person,
        escalation_level=int(Level.MANAGER),
        acked_at=None,
        acked_by=None,
        snoozed_until=None,
        still_on_it_asked_at=None,
        deadline_at=response_deadline(signal.severity, ctx.now, ctx.routing.tz),
    )
    await _decide(
        ctx,
        signal,
        "reassign",
        command.comment or f"reassigned to {manager['id']}",
        {"manager_id": manager["id"], "telegram_id": person},
    )
    return Outcome(updated)


async def _escalate_cmd(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    updated = await escalate(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        actor=ctx.who,
        kind="human",
        reason=command.comment or "escalated by hand",
    )
    return Outcome(signal, "top_of_ladder") if updated is None else Outcome(updated)


async def _still_on_it(ctx: _Context, signal: Signal, command: SignalCommand) -> Outcome:
    if signal.state != "acknowledged" or signal.still_on_it_asked_at is None:
        return Outcome(signal, "not_asked")
    updated = await _change(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        still_on_it_asked_at=None,
        checked_in_at=ctx.now,
        deadline_at=ctx.still_on_it_due(ctx.now),
    )
    # Edit the question itself, so the button disappears.
    await _put(
        ctx.conn,
        ctx.routing,
        ctx.actor.user_id,
        _still_ref(signal.id, signal.still_on_it_asked_at),
        ctx.now,
        lambda: (cards.still_on_it_answered_text(signal.id), cards.no_buttons()),
    )
    await _decide(ctx, signal, "still_on_it", command.comment or "still on it")
    return Outcome(updated)


_ACTIONS = {
    DecideAction.ACK: _acknowledge,
    DecideAction.RESOLVE: _resolve,
    DecideAction.APPROVE: _decision,
    DecideAction.REJECT: _decision,
    DecideAction.REASSIGN: _reassign,
    DecideAction.ESCALATE: _escalate_cmd,
    DecideAction.SNOOZE_1H: _snooze,
    DecideAction.SNOOZE_4H: _snooze,
    DecideAction.STILL_ON_IT: _still_on_it,
}


def _still_ref(signal_id: int, asked_at: datetime) -> str:
    # One message per question: a later "still on it?" is a new message, not an edit of an old one far above.
    return f"signal:{signal_id}:still:{int(asked_at.timestamp())}"


async def _decide(
    ctx: _Context, signal: Signal, action: str, reason: str, details: dict[str, Any] | None = None
) -> None:
    await record_decision(
        ctx.conn,
        kind="human",
        action=action,
        actor=ctx.who,
        reason=reason,
        now=ctx.now,
        signal_id=signal.id,
        order_id=signal.order_id,
        details=details,
    )


async def _start_postmortem(ctx: _Context, signal: Signal) -> bool:
    """Critical and high signals ask their resolver for a postmortem, privately, one question at a time."""
    if not (needs_postmortem(signal.severity) and signal.kind.postmortem):
        return False
    if not await store.create_postmortem(
        ctx.conn, signal_id=signal.id, author=ctx.actor.user_id, now=ctx.now
    ):
        return False
    await _put(
        ctx.conn,
        ctx.routing,
        ctx.actor.user_id,
        f"postmortem:{signal.id}:cause",
        ctx.now,
        lambda: (cards.postmortem_question("cause", signal), None),
    )
    return True


async def resolve_signal(
    conn: aiosqlite.Connection,
    signal: Signal,
    routing: Routing,
    now: datetime,
    *,
    by: int | None,
    resolution: str,
    told: Collection[int] = (),
) -> Signal:
    """Resolve, re-render the pings, and tell whoever raised or escalated it (except the resolver and the
    people in `told`, who heard about it in their own words already)."""
    updated = await _change(
        conn,
        signal,
        routing,
        now,
        state="resolved",
        resolved_at=now,
        resolved_by=by,
        resolution=resolution,
        snoozed_until=None,
        still_on_it_asked_at=None,
    )
    people = {int(signal.raised_by)} if signal.raised_by.isdigit() else set()
    for decision in await store.decisions_of_signal(conn, signal.id):
        if decision.action == "escalate" and decision.actor.isdigit():
            people.add(int(decision.actor))
    people.discard(by or 0)
    people.difference_update(told)
    names = await store.person_names(conn, [by])
    for person in sorted(people):
        await _put(
            conn,
            routing,
            person,
            f"signal:{signal.id}:resolved",
            now,
            lambda: (cards.resolved_notice(updated, names=names), None),
        )
    log_event(log, "signal.resolved", id=signal.id, by=by, notified=len(people))
    return updated


async def escalate(
    conn: aiosqlite.Connection,
    signal: Signal,
    routing: Routing,
    now: datetime,
    *,
    actor: str,
    kind: Literal["auto", "human"],
    reason: str,
    unacknowledge: bool = False,
) -> Signal | None:
    """One rung up the ladder: the next level owns it, is pinged, and has a fresh response deadline.
    None at the top (nothing changes then)."""
    level = escalate_level(signal.escalation_level)
    if level is None:
        return None
    owner = owner_at(level, signal.owner_person, routing.contacts)
    updated = await _change(
        conn,
        signal,
        routing,
        now,
        add=chats_for(signal.severity, level, signal.owner_person, routing.contacts),
        state="open",
        escalation_level=int(level),
        owner_person=owner,
        acked_at=None,
        acked_by=None,
        snoozed_until=None,
        still_on_it_asked_at=None,
        deadline_at=response_deadline(signal.severity, now, routing.tz),
    )
    await record_decision(
        conn,
        kind=kind,
        action="escalate",
        actor=actor,
        reason=reason,
        now=now,
        signal_id=signal.id,
        order_id=signal.order_id,
        details={"from": signal.escalation_level, "to": int(level), "unacknowledged": unacknowledge},
    )
    log_event(log, "signal.escalated", id=signal.id, level=int(level), by=actor)
    return updated


async def reassign_candidates(services: Services) -> list[tuple[str, str]]:
    """Managers a signal can be handed to: active, not on leave, with Telegram linked, as (id, name)."""
    managers = await dispatch_managers(services.db.conn)
    return [(m.id, m.name) for m in managers if m.active and not m.on_leave and m.telegram_id is not None]


CheckinAnswer = Literal["done", "not_found", "forbidden", "too_late"]


async def answer_checkin(services: Services, timer_id: int, user_id: int, now: datetime) -> CheckinAnswer:
    """The manager answers "still on it?" for an accepted order; only they can, and only before the leads
    were told (order.no_progress)."""
    routing = Routing.from_settings(services.settings)
    async with services.db.transaction() as conn:
        checkin = await store.get_checkin(conn, timer_id)
        if checkin is None:
            return "not_found"
        if checkin.telegram_id != user_id:
            return "forbidden"
        if not await store.answer_checkin(conn, timer_id, now):
            return "too_late"
        await _put(
            conn,
            routing,
            user_id,
            f"checkin:{timer_id}",
            now,
            lambda: (cards.checkin_answered_text(checkin.order_id), cards.no_buttons()),
        )
        await record_decision(
            conn,
            kind="human",
            action="still_on_it",
            actor=actor_of(user_id),
            reason="still on it",
            now=now,
            order_id=checkin.order_id,
            details={"timer": timer_id},
        )
    services.wake_sender()
    return "done"


# --- the escalation sweep -----------------------------------------------------------------------------------


@dataclass
class SignalSweepReport:
    routed: int = 0
    escalated: int = 0
    asked: int = 0
    unacknowledged: int = 0
    snooze_ended: int = 0
    no_progress: int = 0
    postmortems_missing: int = 0

    @property
    def changed(self) -> int:
        return sum(vars(self).values())


async def sweep_signals(services: Services, now: datetime) -> SignalSweepReport:
    """The escalation sweep (every minute): route unrouted signals; escalate open ones past their deadline;
    end snoozes; ask "still on it?" of acknowledged ones without progress and, without an answer,
    unacknowledge and escalate; turn unanswered order check-ins into order.no_progress; flag critical signals
    without a postmortem after 24 h. One transaction per signal; each step is guarded against repeats."""
    routing = Routing.from_settings(services.settings)
    report = SignalSweepReport()
    db = services.db
    for unrouted in await store.unrouted_signals(db, _SWEEP_BATCH):
        chats = chats_for(unrouted.severity, unrouted.level, unrouted.owner_person, routing.contacts)
        if chats:
            async with db.transaction() as conn:
                await _render_pings(conn, unrouted, routing, now, chats)
            report.routed += 1
    for due in await store.due_signals(db, now, _SWEEP_BATCH):
        async with db.transaction() as conn:
            signal = await store.get_signal(conn, due.id)
            if signal is None or signal.state == "resolved" or signal.deadline_at > now:
                continue
            await _sweep_one(conn, services, signal, routing, now, report)
    for checkin in await store.unanswered_checkins(db, now, _SWEEP_BATCH):
        async with db.transaction() as conn:
            signal_id = await raise_signal(
                conn,
                type="order.no_progress",
                dedup_key=f"order.no_progress:{checkin.timer_id}",
                now=now,
                order_id=checkin.order_id,
                settings=services.settings,
                details={"manager": checkin.telegram_id, "asked_at": checkin.asked_at.isoformat()},
            )
            await store.set_checkin_signal(conn, checkin.timer_id, signal_id)
        report.no_progress += 1
    due_before = now - timedelta(hours=POSTMORTEM_DUE_HOURS)
    for critical in await store.critical_without_postmortem(db, due_before, _SWEEP_BATCH):
        async with db.transaction() as conn:
            await raise_signal(
                conn,
                type="postmortem.missing",
                dedup_key=f"postmortem.missing:{critical.id}",
                now=now,
                order_id=critical.order_id,
                owner_person=critical.resolved_by,
                settings=services.settings,
                details={"signal": critical.id, "type": critical.type},
            )
            await store.update_signal(conn, critical.id, postmortem_flagged_at=now)
        report.postmortems_missing += 1
    if report.changed:
        services.wake_sender()
        log_event(log, "signals.sweep", **vars(report))
    return report


async def _sweep_one(
    conn: aiosqlite.Connection,
    services: Services,
    signal: Signal,
    routing: Routing,
    now: datetime,
    report: SignalSweepReport,
) -> None:
    if signal.state == "open":
        if (
            await escalate(
                conn,
                signal,
                routing,
                now,
                actor=SYSTEM,
                kind="auto",
                reason="not acknowledged by the deadline",
            )
            is not None
        ):
            report.escalated += 1
        return
    if signal.snoozed_until is not None:
        await _reopen(conn, signal, routing, now, snoozed_until=None)
        await record_decision(
            conn,
            kind="auto",
            action="snooze_ended",
            reason="the snooze is over",
            now=now,
            signal_id=signal.id,
            order_id=signal.order_id,
        )
        report.snooze_ended += 1
        return
    if signal.still_on_it_asked_at is not None:
        reopened = _with(signal, state="open")
        escalated = await escalate(
            conn,
            reopened,
            routing,
            now,
            actor=SYSTEM,
            kind="auto",
            reason='no answer to "still on it?"',
            unacknowledge=True,
        )
        if escalated is None:  # already at the top: unacknowledge it there
            await _reopen(conn, signal, routing, now, still_on_it_asked_at=None)
        report.unacknowledged += 1
        return
    owner = signal.owner_person or signal.acked_by
    if owner is None:
        return
    reply_by = services.calendar.add_working_minutes(now, STILL_ON_IT_REPLY_MINUTES)
    await store.update_signal(conn, signal.id, still_on_it_asked_at=now, deadline_at=reply_by)
    await _put(
        conn,
        routing,
        owner,
        _still_ref(signal.id, now),
        now,
        lambda: (
            cards.still_on_it_text(signal, reply_by=reply_by, tz=routing.tz),
            cards.still_on_it_keyboard(signal.id),
        ),
    )
    await record_decision(
        conn,
        kind="auto",
        action="still_on_it_asked",
        reason="no progress since the last check-in",
        now=now,
        signal_id=signal.id,
        order_id=signal.order_id,
        details={"owner": owner},
    )
    report.asked += 1


# --- what the admin commands show ---------------------------------------------------------------------------


async def signal_page(
    services: Services, where: SignalFilter, *, limit: int, offset: int
) -> tuple[list[Signal], int]:
    """Live signals matching the filter, worst and oldest first, and how many there are in all."""
    return await store.list_signals(services.db, where, limit=limit, offset=offset)


async def signal_with_history(
    services: Services, signal_id: int
) -> tuple[Signal, list[store.Decision], dict[int, str]] | None:
    """A signal, every decision taken on it, and the names of the people involved."""
    signal = await store.get_signal(services.db, signal_id)
    if signal is None:
        return None
    decisions = await store.decisions_of_signal(services.db, signal_id)
    people = [signal.acked_by, signal.resolved_by, signal.owner_person]
    people += [int(d.actor) for d in decisions if d.actor.isdigit()]
    return signal, decisions, await store.person_names(services.db, people)


@dataclass(frozen=True)
class ManagerLine:
    manager: DispatchManager
    candidate: Candidate
    on_shift: bool


async def managers_overview(services: Services, now: datetime) -> list[ManagerLine]:
    """Every manager with load, shift, capacity and misses, scored exactly as the dispatcher scores them."""
    # Imported here: the dispatcher imports this module (raise_signal) at load time.
    from agents.dispatcher import manager_snapshots

    conn = services.db.conn
    managers = await dispatch_managers(conn)
    loads = await open_orders_by_manager(conn)
    working = services.calendar.is_working(now)
    candidates = score(manager_snapshots(managers, loads, working), services.policy.load_weights)
    return [
        ManagerLine(m, c, on_shift(working, m.shift_override))
        for m, c in zip(managers, candidates, strict=True)
    ]
