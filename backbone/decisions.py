"""The decision log (ai_decisions): every action taken on a signal or an order, automatic or human, with who,
what and why, and later its observed effect.

Automatic decisions are only the low-risk ones (a reminder, a reassignment after an accept timeout, an
escalation); cancel, compensation and bulk reassignment are recorded as `pending_approval` and wait for an
admin (`backbone.signals.request_approval`, `/decide ID approve|reject`). `sweep_effects` fills in the effect
each kind of decision expects (domain/effects.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from backbone.effects import observe_effects
from bot.logs import log_event
from bot.services import Services
from storage import signals as store

log = logging.getLogger(__name__)

DecisionKind = Literal["auto", "human"]
DecisionState = Literal["done", "pending_approval", "approved", "rejected"]
SYSTEM = "system"


def actor_of(user_id: int | None) -> str:
    """How a decision names who took it: a Telegram user id, or "system" for automatic ones."""
    return SYSTEM if user_id is None else str(user_id)


async def record_decision(
    conn: aiosqlite.Connection,
    *,
    kind: DecisionKind,
    action: str,
    reason: str,
    now: datetime,
    actor: str = SYSTEM,
    signal_id: int | None = None,
    order_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    state: DecisionState = "done",
) -> int:
    """Write one decision inside the caller's transaction; returns its id."""
    if kind == "auto" and state == "pending_approval":
        raise ValueError("an automatic decision cannot wait for approval; record the request as kind='human'")
    decision_id = await store.insert_decision(
        conn,
        kind=kind,
        action=action,
        actor=actor,
        reason=reason,
        now=now,
        signal_id=signal_id,
        order_id=order_id,
        state=state,
        details=details,
    )
    log_event(
        log,
        "decision.recorded",
        id=decision_id,
        kind=kind,
        action=action,
        actor=actor,
        signal=signal_id,
        order=order_id,
        state=state,
    )
    return decision_id


async def settle_approval(
    conn: aiosqlite.Connection,
    signal_id: int,
    *,
    approved: bool,
    actor: str,
    comment: str,
    now: datetime,
    order_id: str | None,
) -> int | None:
    """Mark the request waiting on `signal_id` approved or rejected and log the human decision; returns the
    request's id (None when there was no pending request)."""
    pending = await store.pending_approval(conn, signal_id)
    if pending is not None:
        await store.set_decision_state(conn, pending.id, "approved" if approved else "rejected")
    await record_decision(
        conn,
        kind="human",
        action="approve" if approved else "reject",
        actor=actor,
        reason=comment or ("approved" if approved else "rejected"),
        now=now,
        signal_id=signal_id,
        order_id=order_id,
        details={
            "request": pending.id if pending else None,
            "action": pending.details.get("action") if pending else None,
        },
    )
    return pending.id if pending else None


async def approved_requests(source: store.Source, signal_id: int) -> bool:
    """Whether the request on a signal was approved (what the requesting agent checks before acting)."""
    return any(d.state == "approved" for d in await store.decisions_of_signal(source, signal_id))


async def sweep_effects(services: Services, now: datetime) -> int:
    """Fill in the observed effect of decisions whose expected effect is known or whose window has passed
    (backbone/effects.py, domain/effects.py). Safe to repeat: an effect is written once."""
    return await observe_effects(services, now)


async def decision_page(
    services: Services, *, limit: int, offset: int
) -> tuple[list[store.Decision], int, dict[int, str]]:
    """One page of the decision log (newest first), its total, and the names of the people in it."""
    decisions, total = await store.decision_log(services.db, limit=limit, offset=offset)
    names = await store.person_names(services.db, (int(d.actor) for d in decisions if d.actor.isdigit()))
    return decisions, total, names
