"""Signals (SPEC §6), the backbone's core: raise with dedup, route and ping, update, resolve, escalate a rung,
ask for an approval, and record arbitration of conflicts.

Every state change re-renders the signal's ping in every chat that shows it (one tg_messages slot per chat
under ref ``signal:<id>``), so each chat shows the truth, and is logged as a decision. Texts live in
keyboards/signals.py. The commands people give (backbone/commands.py), the sweep (backbone/sweep.py) and the
read views (backbone/views.py) are built on the functions here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiosqlite
from aiogram.types import InlineKeyboardMarkup

from backbone.decisions import SYSTEM, record_decision
from bot.config import Settings
from bot.i18n import in_locale
from bot.logs import log_event
from domain.orchestration import next_rung
from domain.policy import Policy, Severity
from domain.signals import (
    APPROVAL_ACTIONS,
    Contacts,
    Ladder,
    Level,
    Signal,
    arbitrate,
    chats_for,
    initial_level,
    owner_at,
    response_deadline,
    signal_type,
    worse,
)
from keyboards import signals as cards
from storage import signals as store
from storage.messages import TextMessage, put_message, put_messages
from storage.people import chat_language

log = logging.getLogger(__name__)


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


def contacts_of(signal: Signal, routing: Routing) -> Contacts:
    """The routing frozen on the signal when it was routed; the current settings' until then."""
    return signal.contacts if signal.contacts is not None else routing.contacts


Rendered = Callable[[], tuple[str, InlineKeyboardMarkup | None]]


async def put_rendered(
    conn: aiosqlite.Connection, routing: Routing, chat_id: int, ref: str, now: datetime, render: Rendered
) -> None:
    """Write a message rendered by `render()` (text, keyboard or None) in the chat's language."""
    lang = await chat_language(conn, chat_id, routing.default_lang)
    with in_locale(lang):
        text, keyboard = render()
    markup = cards.markup_dict(keyboard) if keyboard is not None else None
    await put_message(conn, chat_id=chat_id, ref=ref, body=text, markup=markup, now=now)


async def render_pings(
    conn: aiosqlite.Connection, signal: Signal, routing: Routing, now: datetime, add: list[int] | None = None
) -> Signal:
    """Show the signal's current state in every chat that has its ping, plus the chats in `add`."""
    chats = list(dict.fromkeys([*signal.ping_chats, *(add or [])]))
    if chats != list(signal.ping_chats):
        await store.update_signal(conn, signal.id, ping_chats=chats)
        signal = _with(signal, ping_chats=tuple(chats))
    names = await store.person_names(conn, [signal.acked_by, signal.resolved_by, signal.owner_person])
    for chat in chats:
        await put_rendered(
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


async def change_signal(
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
    return await render_pings(conn, _with(signal, **changes), routing, now, add)


async def reopen(
    conn: aiosqlite.Connection, signal: Signal, routing: Routing, now: datetime, **cleared: Any
) -> Signal:
    """Back to open and unacknowledged, with a fresh response deadline (a snooze or a check-in ran out)."""
    return await change_signal(
        conn,
        signal,
        routing,
        now,
        state="open",
        acked_at=None,
        acked_by=None,
        deadline_at=response_deadline(signal.severity, now, routing.tz, signal.ladder),
        **cleared,
    )


# --- raising ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalRequest:
    """One signal to raise (the arguments of `raise_signal`), for `raise_signals`."""

    type: str
    dedup_key: str
    order_id: str | None = None
    details: dict[str, Any] | None = None
    raised_by: str = SYSTEM
    owner_person: int | None = None
    severity: Severity | None = None
    notify: tuple[int, ...] = ()  # more chats to ping when it is raised (e.g. the admins)


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
    policy: Policy | None = None,
) -> int:
    """Raise a signal inside the caller's transaction, or update the live one with the same `dedup_key`.
    `notify`: more chats to ping when it is raised (e.g. the admins), besides those its severity routes to.

    Pass `settings=services.settings`: routing needs the configured chats. Without settings the signal is
    stored unrouted and the escalation sweep (every minute) routes and pings it. Pass
    `policy=services.policy`: its [signals] ladder is frozen on the new signal (without it, the shipped
    policy's), as are the routing contacts. `severity` overrides the
    type's default (sla.breach takes the status budget's). Unknown `type` raises UnknownSignalType.
    Call `services.wake_sender()` after the commit.
    """
    request = SignalRequest(
        type, dedup_key, order_id, details, raised_by, owner_person, severity, tuple(notify)
    )
    routing = Routing.from_settings(settings)
    existing = await store.live_signal_by_dedup(conn, dedup_key)
    if existing is not None:
        wanted: Severity = severity or signal_type(type).severity
        return await _repeat(conn, existing, wanted, details, owner_person, routing, now)
    new = _new_signal(request, routing, _ladder(policy), now, routed=settings is not None)
    signal = await store.insert_signal(conn, new)
    await render_pings(conn, signal, routing, now)
    _log_raised(signal)
    if order_id is not None:
        await _arbitrate(conn, order_id, now)
    return signal.id


async def raise_signals(
    conn: aiosqlite.Connection,
    requests: list[SignalRequest],
    *,
    now: datetime,
    settings: Settings | None,
    policy: Policy | None = None,
) -> list[int]:
    """`raise_signal` for many signals in a few statements (an SLA sweep's breaches): the new ones are
    inserted together and their pings written together; a request whose dedup key is live (or repeated in
    the list) goes through `raise_signal` and updates that signal. Returns the ids in request order."""
    routing = Routing.from_settings(settings)
    live = await store.live_dedup_keys(conn, [r.dedup_key for r in requests])
    fresh: dict[str, SignalRequest] = {}
    for r in requests:
        if r.dedup_key not in live and r.dedup_key not in fresh:
            fresh[r.dedup_key] = r
    stored = await store.insert_signals(
        conn,
        [_new_signal(r, routing, _ladder(policy), now, routed=settings is not None) for r in fresh.values()],
    )
    await _render_new_pings(conn, stored, routing, now)
    for signal in stored:
        _log_raised(signal)
    ids = {s.dedup_key: s.id for s in stored}
    result: list[int] = []
    for r in requests:
        if r.dedup_key in ids and fresh.get(r.dedup_key) is r:
            result.append(ids[r.dedup_key])
        else:
            result.append(
                await raise_signal(
                    conn,
                    type=r.type,
                    dedup_key=r.dedup_key,
                    now=now,
                    order_id=r.order_id,
                    details=r.details,
                    raised_by=r.raised_by,
                    owner_person=r.owner_person,
                    settings=settings,
                    severity=r.severity,
                    policy=policy,
                )
            )
    orders = [s.order_id for s in stored if s.order_id is not None]
    for order_id in await store.orders_with_live_signals(conn, orders, at_least=2):
        await _arbitrate(conn, order_id, now)
    return result


def _ladder(policy: Policy | None) -> Ladder:
    return Ladder.of((policy or Policy.default()).signals)


def _new_signal(
    request: SignalRequest, routing: Routing, ladder: Ladder, now: datetime, *, routed: bool
) -> store.NewSignal:
    """A new signal's row: severity, rung, owner, chats and deadline, with the ladder and the contacts frozen
    on it. Without settings (`routed=False`) the chats are unknown: it is stored unrouted (no contacts) and
    the escalation sweep routes it."""
    kind = signal_type(request.type)
    wanted: Severity = request.severity or kind.severity
    owner_person = request.owner_person
    level = initial_level(wanted, owner_person)
    chats = chats_for(wanted, level, owner_person, routing.contacts) if routed else []
    if routed and request.notify:
        chats = list(dict.fromkeys([*chats, *request.notify]))
    owner = owner_person if level is Level.MANAGER else owner_at(level, owner_person, routing.contacts)
    return store.NewSignal(
        type=request.type,
        severity=wanted,
        circle=str(kind.circle),
        order_id=request.order_id,
        dedup_key=request.dedup_key,
        owner_person=owner,
        escalation_level=int(level),
        needs_decision=kind.needs_decision,
        deadline_at=response_deadline(wanted, now, routing.tz, ladder),
        raised_at=now,
        raised_by=request.raised_by,
        title=f"{request.type} {request.order_id or request.dedup_key}"[:200],
        details=request.details or {},
        ping_chats=tuple(chats),
        ladder=ladder,
        contacts=routing.contacts if routed else None,
    )


def _log_raised(signal: Signal) -> None:
    chats = len(signal.ping_chats)
    log_event(
        log,
        "signal.raised",
        id=signal.id,
        type=signal.type,
        severity=signal.severity,
        order=signal.order_id,
        chats=chats,
    )
    if not chats:
        log_event(log, "signal.unrouted", logging.WARNING, id=signal.id, type=signal.type)


async def _render_new_pings(
    conn: aiosqlite.Connection, signals: list[Signal], routing: Routing, now: datetime
) -> None:
    """The first pings of new signals, written in one statement (each chat's language read once)."""
    names = await store.person_names(conn, [s.owner_person for s in signals])
    langs: dict[int, str] = {}
    messages: list[TextMessage] = []
    for signal in signals:
        for chat in signal.ping_chats:
            if chat not in langs:
                langs[chat] = await chat_language(conn, chat, routing.default_lang)
            with in_locale(langs[chat]):
                text = cards.ping_text(signal, names=names, tz=routing.tz)
                markup = cards.markup_dict(cards.ping_keyboard(signal))
            messages.append(TextMessage(chat, f"signal:{signal.id}", text, markup))
    await put_messages(conn, messages, now=now)


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
        contacts = contacts_of(signal, routing)
        level = Level(max(signal.level, initial_level(severity, owner_person)))
        changes.update(severity=severity, escalation_level=int(level))
        if level != signal.level:
            changes["owner_person"] = owner_at(level, signal.owner_person, contacts)
        if signal.state == "open":
            deadline = response_deadline(severity, now, routing.tz, signal.ladder)
            changes["deadline_at"] = min(signal.deadline_at, deadline)
        if contacts != Contacts():
            add = chats_for(severity, level, signal.owner_person, contacts)
    await change_signal(conn, signal, routing, now, add=add, **changes)
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
    policy: Policy | None = None,
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
        policy=policy,
    )
    routing = Routing.from_settings(settings)
    signal = await store.get_signal(conn, signal_id)
    if signal is not None and contacts_of(signal, routing).admins():
        # Only admins (and the owner) can approve: their chats get the ping too, wherever the type routes it.
        await render_pings(conn, signal, routing, now, add=contacts_of(signal, routing).admins())
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


def still_ref(signal_id: int, asked_at: datetime) -> str:
    # One message per question: a later "still on it?" is a new message, not an edit of an old one far above.
    return f"signal:{signal_id}:still:{int(asked_at.timestamp())}"


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
    updated = await change_signal(
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
        await put_rendered(
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
    rung = next_rung(signal.severity, signal.escalation_level, now, routing.tz, signal.ladder)
    if rung is None:
        return None
    level = rung.level
    contacts = contacts_of(signal, routing)
    owner = owner_at(level, signal.owner_person, contacts)
    updated = await change_signal(
        conn,
        signal,
        routing,
        now,
        add=chats_for(signal.severity, level, signal.owner_person, contacts),
        state="open",
        escalation_level=int(level),
        owner_person=owner,
        acked_at=None,
        acked_by=None,
        snoozed_until=None,
        still_on_it_asked_at=None,
        deadline_at=rung.deadline,
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
