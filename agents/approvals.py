"""Carrying out what waited for an admin (SPEC §6): once `/decide ID approve|reject` (or the ping's button)
settles a request, the action's settler here does what was approved, or puts things back after a reject,
inside the same transaction. Keyed by the request's action; agents.signals calls `settle`.

A cancel approved goes through the same status change as any other (agents.orders.apply_status: history row,
CRM write through the outbox, SLA visit closed, card edited) with the admin as the actor; an order that moved
on (or was cancelled in the CRM) meanwhile is left as it is and the admin is told so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from agents.orders import Actor, apply_status, put_card_for
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from domain.statuses import FINAL_STATUSES, Status
from keyboards.orders import done_text
from storage import governance as governance_store
from storage import orders as order_store
from storage import signals as store
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)

Note = Literal["carried_out", "rejected", "moved_on"]


@dataclass(frozen=True)
class Verdict:
    """The admin's answer to a request."""

    approved: bool
    by: int  # the admin's Telegram id
    comment: str


@dataclass(frozen=True)
class Settled:
    """What settling did: the signal's resolution, a note for the admin's answer, and the people already told
    (so the generic "your signal was resolved" notice does not reach them twice)."""

    resolution: str
    note: Note
    told: frozenset[int] = field(default_factory=frozenset)


Settler = Callable[[aiosqlite.Connection, Services, store.Decision, Verdict, datetime], Awaitable[Settled]]


async def settle(
    conn: aiosqlite.Connection, services: Services, request: store.Decision, verdict: Verdict, now: datetime
) -> Settled | None:
    """Carry out (or put back after a reject) the request; None for an action with no settler here."""
    settler = _SETTLERS.get(request.action)
    if settler is None:
        return None
    settled = await settler(conn, services, request, verdict, now)
    log_event(log, "approval.settled", request=request.id, action=request.action, note=settled.note)
    return settled


async def _tell(
    conn: aiosqlite.Connection,
    services: Services,
    chat_id: int,
    ref: str,
    now: datetime,
    code: str,
    **facts: Any,
) -> None:
    lang = await chat_language(conn, chat_id, services.settings.default_language)
    with in_locale(lang):
        text = done_text(code, **facts)
    await put_message(conn, chat_id=chat_id, ref=ref, body=text, now=now)


async def _settle_cancel(
    conn: aiosqlite.Connection, services: Services, request: store.Decision, verdict: Verdict, now: datetime
) -> Settled:
    order = await order_store.get_order(conn, request.order_id) if request.order_id else None
    requester = request.details.get("telegram_id")
    told = frozenset({requester}) if isinstance(requester, int) else frozenset()
    ref = f"order:{request.order_id}:cancel:{request.id}"
    word = "approved" if verdict.approved else "rejected"
    minutes = round((now - request.created_at).total_seconds() / 60)
    if order is None or order.status in FINAL_STATUSES or order.status.value != request.details.get("status"):
        # The order moved on (or the CRM cancelled it) while the request waited: the request is moot.
        status = order.status if order is not None else None
        await store.set_effect(
            conn, request.id, {"moved_to": status, "minutes": minutes, "carried_out": False}, now
        )
        if order is not None:
            await put_card_for(conn, services, order, now=now)
        for person in told:
            await _tell(
                conn, services, person, ref, now, "cancel_moot", order=request.order_id, status=status
            )
        why = f"the order was {status} by then" if status is not None else "the order is not known"
        return Settled(f"{verdict.comment or word}; {why}: nothing changed", "moved_on", told)
    if not verdict.approved:
        await store.set_effect(
            conn, request.id, {"moved_to": None, "minutes": minutes, "carried_out": False}, now
        )
        await put_card_for(conn, services, order, now=now)  # back to the normal card
        for person in told:
            await _tell(
                conn,
                services,
                person,
                ref,
                now,
                "cancel_rejected",
                order=order.id,
                comment=verdict.comment or "—",
            )
        return Settled(verdict.comment or word, "rejected", told)
    admin = Actor(verdict.by, None).name
    cancelled = await apply_status(
        conn, services, order, Status.CANCELLED, actor=admin, now=now, reason=request.reason
    )
    effect = {"moved_to": cancelled.status.value, "minutes": minutes, "carried_out": True}
    await store.set_effect(conn, request.id, effect, now)
    for person in told:
        await _tell(conn, services, person, ref, now, "cancel_approved", order=order.id)
    return Settled(f"{verdict.comment or word}; order cancelled", "carried_out", told)


async def _settle_sanctions_review(
    conn: aiosqlite.Connection, services: Services, request: store.Decision, verdict: Verdict, now: datetime
) -> Settled:
    """A sanctions hit (circles/governance/sanctions.py): approve = a false positive, the hold ends and the
    order goes to dispatch (the next dispatch pass, within a minute); reject = the order is cancelled."""
    admin = Actor(verdict.by, None).name
    order = await order_store.get_order(conn, request.order_id) if request.order_id else None
    minutes = round((now - request.created_at).total_seconds() / 60)
    outcome = "false_positive" if verdict.approved else "cancelled"
    released = await governance_store.release_holds(
        conn, request.order_id or "", by=admin, outcome=outcome, now=now
    )
    effect: dict[str, Any] = {"outcome": outcome, "minutes": minutes, "holds_released": released}
    if verdict.approved:
        await store.set_effect(conn, request.id, effect, now)
        return Settled(f"{verdict.comment or 'false positive'}; order released to dispatch", "carried_out")
    if order is not None and order.status not in FINAL_STATUSES:
        cancelled = await apply_status(
            conn, services, order, Status.CANCELLED, actor=admin, now=now, reason="sanctions hit confirmed"
        )
        effect["moved_to"] = cancelled.status.value
    await store.set_effect(conn, request.id, effect, now)
    return Settled(f"{verdict.comment or 'sanctions hit confirmed'}; order cancelled", "rejected")


_SETTLERS: dict[str, Settler] = {"cancel": _settle_cancel, "sanctions_review": _settle_sanctions_review}
