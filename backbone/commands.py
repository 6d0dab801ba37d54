"""The commands people give on a signal (a button press or `/decide ID ACTION`): acknowledge, resolve, snooze,
approve or reject, reassign, escalate, "still on it". Each is checked against the stored signal and the
actor's rights first; a refusal changes nothing. One handler per action, looked up in `_ACTIONS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import aiosqlite

from backbone.approvals import Verdict, settle
from backbone.decisions import actor_of, record_decision, settle_approval
from backbone.handover import move_order
from backbone.postmortems import ask_postmortem
from backbone.signals import (
    Routing,
    change_signal,
    escalate,
    put_rendered,
    resolve_signal,
    still_ref,
)
from bot.logs import log_event
from bot.services import Services
from domain.actors import Actor
from domain.signals import (
    DecideAction,
    Level,
    Signal,
    SignalCommand,
    needs_postmortem,
    permitted,
    response_deadline,
)
from domain.sla import still_on_it_at
from keyboards import signals as cards
from storage import signals as store
from storage.people import manager_by_id

log = logging.getLogger(__name__)

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
    updated = await change_signal(
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
    hours = signal.ladder.snooze_hours(command.action) or 0
    until = ctx.now + timedelta(hours=hours)
    user = ctx.actor.user_id
    updated = await change_signal(
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
        command.comment or f"snoozed for {hours} h",
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
    reason = command.comment or f"reassigned to {manager['id']}"
    moved = signal.order_id is not None and await move_order(
        ctx.conn, ctx.services, signal.order_id, manager["id"], actor=ctx.who, reason=reason, now=ctx.now
    )
    updated = await change_signal(
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
        deadline_at=response_deadline(signal.severity, ctx.now, ctx.routing.tz, signal.ladder),
    )
    await _decide(
        ctx,
        signal,
        "reassign",
        reason,
        {"manager_id": manager["id"], "telegram_id": person, "order_moved": moved},
    )
    return Outcome(updated, notes=["order_moved"] if moved else [])


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
    updated = await change_signal(
        ctx.conn,
        signal,
        ctx.routing,
        ctx.now,
        still_on_it_asked_at=None,
        checked_in_at=ctx.now,
        deadline_at=ctx.still_on_it_due(ctx.now),
    )
    # Edit the question itself, so the button disappears.
    await put_rendered(
        ctx.conn,
        ctx.routing,
        ctx.actor.user_id,
        still_ref(signal.id, signal.still_on_it_asked_at),
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
    """Critical and high signals ask their resolver for a postmortem, privately, one question at a time (a
    critical one tells the crisis chat too)."""
    if not (needs_postmortem(signal.severity) and signal.kind.postmortem):
        return False
    return await ask_postmortem(ctx.conn, ctx.routing, signal, ctx.actor.user_id, ctx.now)
