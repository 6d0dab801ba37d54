"""Status progression of an order (SPEC §2): the manager's or an admin's press re-checked against the
transition table and the checklist gate, recorded in order_status_events, written back to the CRM through the
outbox, with the next SLA visit opened and the order card edited in place. Also the card itself (shared with
the dispatcher), cards refreshed after changes the sync saw in the CRM, and the data of /my and /order ID.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from backbone.approvals import Settled, Verdict, coded, register_settler
from backbone.decisions import actor_of, record_decision
from backbone.signals import request_approval
from bikewerk.outbox import enqueue_crm_write
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from domain.actors import Actor
from domain.checklist import missing_for_submit
from domain.models import Order
from domain.orders import CANCEL_REASONS, CLIENT_SAID_NO
from domain.sla import plan_visit
from domain.statuses import FINAL_STATUSES, IllegalTransition, Status, check_transition
from keyboards.orders import (
    CardMode,
    CardView,
    MyOrder,
    OrderDetails,
    done_text,
    order_card,
)
from storage import assignments as assignment_store
from storage import checklist as checklist_store
from storage import orders as order_store
from storage import signals as signal_store
from storage.assignments import Assignment
from storage.messages import put_message
from storage.people import chat_language
from storage.timers import close_visit, open_visit

log = logging.getLogger(__name__)

_TRACKING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,62}[A-Za-z0-9]$")


class ActionRefused(Exception):
    """An action that cannot happen; `code` picks the one-line answer (keyboards.orders.refusal_text), `facts`
    fill it in. Nothing was changed."""

    def __init__(self, code: str, **facts: Any) -> None:
        self.code = code
        self.facts = facts
        super().__init__(f"{code}: {facts}")


def card_ref(order_id: str) -> str:
    return f"order:{order_id}:card"


async def authorise(conn: aiosqlite.Connection, services: Services, order: Order, telegram_id: int) -> Actor:
    """The order's assigned manager or an admin may act on it; anybody else is refused."""
    manager = await assignment_store.manager_of_telegram(conn, telegram_id)
    if manager is not None and manager.active and manager.id == order.assigned_manager_id:
        return Actor(telegram_id, manager_id=manager.id)
    if telegram_id in services.settings.admin_ids:
        return Actor(telegram_id, staff=True, approver=True)
    raise ActionRefused("forbidden", order=order.id)


async def load_order(conn: aiosqlite.Connection, order_id: str) -> Order:
    order = await order_store.get_order(conn, order_id)
    if order is None:
        raise ActionRefused("not_found", order=order_id)
    return order


async def checklist_complete(conn: aiosqlite.Connection, order: Order) -> bool:
    answers = await checklist_store.answers(conn, order.id)
    return not missing_for_submit(answers, is_ebike=order.is_ebike)


def _check(order: Order, to: Status, *, complete: bool) -> None:
    try:
        check_transition(order.status, to, checklist_complete=complete)
    except IllegalTransition as exc:
        raise ActionRefused(exc.reason, order=order.id, status=order.status) from None


async def change_status(
    services: Services,
    order_id: str,
    to: Status,
    *,
    actor_telegram_id: int,
    now: datetime,
    reason: str | None = None,
    tracking: str | None = None,
) -> Order:
    """Move an order to `to` for its manager or an admin; returns the order as it is now.

    Refuses (ActionRefused, nothing changed) a stranger, an illegal or premature step and "shipped" without
    a valid tracking number. Accepting is dispatcher.accept_offer; cancelling is `cancel_order`.
    """
    if to is Status.CANCELLED:
        raise ValueError("a cancel goes through cancel_order: a manager's needs an admin's approval")
    async with services.db.transaction() as conn:
        order = await load_order(conn, order_id)
        actor = await authorise(conn, services, order, actor_telegram_id)
        if to is Status.ACCEPTED:
            # Accepting is answering an offer (exactly one accepted assignment), never a bare status change.
            raise ActionRefused("not_allowed", order=order.id, status=order.status)
        complete = to is Status.AWAITING_CLIENT and await checklist_complete(conn, order)
        _check(order, to, complete=complete)
        if to is Status.IN_TRANSIT:
            tracking = (tracking or "").strip()
            if not tracking:
                raise ActionRefused("tracking_required")
            if not _TRACKING_RE.match(tracking):
                raise ActionRefused("bad_tracking")
        updated = await apply_status(
            conn, services, order, to, actor=actor.name, now=now, reason=reason, tracking=tracking
        )
    services.wake_sender()
    return updated


@dataclass(frozen=True)
class Cancellation:
    """What a cancel press did: `order` as it is now; `signal_id` set when it waits for an admin."""

    order: Order
    signal_id: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal_id is not None


async def cancel_order(
    services: Services, order_id: str, *, actor_telegram_id: int, now: datetime, reason: str | None
) -> Cancellation:
    """Cancel with a reason (SPEC §6: a human decision). An admin's cancel is their own decision and happens
    at once; a manager's becomes a request an admin approves or rejects (its settler below carries it out),
    and the card says it waits. A repeat while one waits joins the same request (one signal per order)."""
    async with services.db.transaction() as conn:
        order = await load_order(conn, order_id)
        actor = await authorise(conn, services, order, actor_telegram_id)
        _check(order, Status.CANCELLED, complete=False)
        if reason not in (*CANCEL_REASONS, CLIENT_SAID_NO):
            raise ActionRefused("reason_required" if not reason else "bad_reason")
        who = actor_of(actor_telegram_id)
        facts = {
            "status": order.status.value,
            "manager_id": actor.manager_id,
            "telegram_id": actor_telegram_id,
        }
        if actor_telegram_id in services.settings.admin_ids:
            decision_id = await record_decision(
                conn,
                kind="human",
                action="cancel",
                actor=who,
                reason=reason,
                now=now,
                order_id=order.id,
                details=facts,
            )
            admin = Actor(actor_telegram_id).name
            order = await apply_status(
                conn, services, order, Status.CANCELLED, actor=admin, now=now, reason=reason
            )
            await signal_store.set_effect(
                conn, decision_id, {"moved_to": order.status.value, "minutes": 0}, now
            )
            signal_id = None
        else:
            signal_id, _ = await request_approval(
                conn,
                action="cancel",
                reason=reason,
                now=now,
                settings=services.settings,
                policy=services.policy,
                requested_by=who,
                order_id=order.id,
                details=facts,
            )
            await put_card_for(conn, services, order, now=now)
            log_event(log, "order.cancel_requested", order=order.id, signal=signal_id, actor=actor.name)
    services.wake_sender()
    return Cancellation(order, signal_id)


async def apply_status(
    conn: aiosqlite.Connection,
    services: Services,
    order: Order,
    to: Status,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    tracking: str | None = None,
) -> Order:
    """Record a checked transition inside the caller's transaction: the history row, the order, the SLA visit,
    the CRM write (once, by its idempotency key) and the card."""
    event_id = await order_store.add_status_event(
        conn, order_id=order.id, from_status=order.status, to_status=to, actor=actor, at=now, reason=reason
    )
    await order_store.set_status(conn, order.id, to, now, tracking_number=tracking)
    # A question put about the order's previous step (a tracking number, a checklist note) is moot now.
    await order_store.clear_focus(conn, order_id=order.id)
    if to in FINAL_STATUSES:
        await close_visit(conn, order.id, now)
    else:
        await open_visit(conn, order.id, plan_visit(to, now, services.policy, services.calendar))
    payload: dict[str, Any] = {"status": to.value, "at": now.isoformat(), "actor": actor}
    if reason:
        payload["reason"] = reason
    if tracking:
        payload["tracking_number"] = tracking
    await enqueue_crm_write(
        conn, kind="status", order_id=order.id, payload=payload, idempotency_key=f"status:{event_id}", now=now
    )
    updated = await load_order(conn, order.id)
    await put_card_for(conn, services, updated, now=now)
    log_event(log, "order.status", order=order.id, frm=order.status.value, to=to.value, actor=actor)
    return updated


# --- the card


async def _render_card(
    conn: aiosqlite.Connection,
    services: Services,
    order: Order,
    *,
    chat_id: int,
    offer: Assignment | None,
    mode: CardMode = "normal",
) -> tuple[str, dict[str, Any] | None]:
    """The card's text and markup (as put_message takes it) in the chat's language."""
    deadline = None if order.status in FINAL_STATUSES else await order_store.step_deadline(conn, order.id)
    cancel_reason = None
    if order.status is Status.CANCELLED:
        history = await order_store.status_history(conn, order.id)
        cancel_reason = next((h.reason for h in reversed(history) if h.to_status is Status.CANCELLED), None)
    progressing = offer is None or offer.state == "accepted"
    view = CardView(
        order=order,
        tz=services.calendar.tz,
        handle=await order_store.order_handle(conn, order.id) if progressing else None,
        offer_id=offer.id if offer else None,
        offer_state=offer.state if offer else None,
        offer_expires_at=offer.expires_at if offer else None,
        answer_reason=offer.decline_reason if offer else None,
        deadline=deadline,
        cancel_reason=cancel_reason,
        cancel_requested=order.status not in FINAL_STATUSES
        and await signal_store.pending_request_on_order(conn, order.id, "cancel") is not None,
        mode=mode,
    )
    lang = await chat_language(conn, chat_id, services.settings.default_language)
    with in_locale(lang):
        text, markup = order_card(view)
    return text, markup


async def put_card(
    conn: aiosqlite.Connection,
    services: Services,
    order: Order,
    *,
    chat_id: int,
    offer: Assignment | None,
    now: datetime,
    mode: CardMode = "normal",
) -> None:
    text, markup = await _render_card(conn, services, order, chat_id=chat_id, offer=offer, mode=mode)
    await put_message(conn, chat_id=chat_id, ref=card_ref(order.id), body=text, markup=markup, now=now)


async def _card_offer(conn: aiosqlite.Connection, order: Order) -> Assignment | None:
    """The assignment the order's card belongs to: the latest one of its current manager."""
    mine = [
        a
        for a in await assignment_store.assignments_of(conn, order.id)
        if a.manager_id == order.assigned_manager_id
    ]
    return mine[-1] if mine else None


async def put_card_for(
    conn: aiosqlite.Connection, services: Services, order: Order, *, now: datetime, mode: CardMode = "normal"
) -> None:
    """Show the order's card to its current manager (when they have Telegram)."""
    if order.assigned_manager_id is None:
        return
    manager = await assignment_store.get_manager(conn, order.assigned_manager_id)
    if manager is None or manager.telegram_id is None:
        return
    offer = await _card_offer(conn, order)
    await put_card(conn, services, order, chat_id=manager.telegram_id, offer=offer, now=now, mode=mode)


async def show_card_mode(
    services: Services, order_id: str, mode: CardMode, *, actor_telegram_id: int, now: datetime
) -> None:
    """Switch an accepted order's card to its cancel reasons, the tracking question or back to normal."""
    async with services.db.transaction() as conn:
        order = await load_order(conn, order_id)
        actor = await authorise(conn, services, order, actor_telegram_id)
        if order.status in FINAL_STATUSES or order.status is Status.PENDING_MANAGER:
            raise ActionRefused("not_allowed", order=order.id, status=order.status)
        if mode == "tracking":
            _check(order, Status.IN_TRANSIT, complete=True)
            await order_store.set_focus(conn, actor_telegram_id, "tracking", order.id, now)
        else:
            await order_store.clear_focus(
                conn, order_id=order.id, telegram_id=actor_telegram_id, kind="tracking"
            )
        await put_card_for(conn, services, order, now=now, mode=mode)
        log_event(log, "order.card_mode", order=order.id, mode=mode, actor=actor.name)
    services.wake_sender()


async def order_id_of_handle(services: Services, handle: int) -> str:
    """The order a button's handle stands for (a forged or unknown handle is refused)."""
    order_id = await order_store.order_of_handle(services.db.reader, handle)
    if order_id is None:
        raise ActionRefused("stale_button")
    return order_id


async def awaited_input(services: Services, telegram_id: int) -> order_store.FocusKind | None:
    """What this person's next free message answers: a checklist note or file, a tracking number, or none."""
    focus = await order_store.get_focus(services.db.reader, telegram_id)
    return focus.kind if focus is not None else None


async def answer_tracking(services: Services, *, telegram_id: int, text: str, now: datetime) -> Order | None:
    """A manager's text after "Shipped" is the tracking number: the order moves to in_transit. None when
    no tracking number was asked for."""
    focus = await order_store.get_focus(services.db.reader, telegram_id)
    if focus is None or focus.kind != "tracking":
        return None
    order = await change_status(
        services, focus.order_id, Status.IN_TRANSIT, actor_telegram_id=telegram_id, now=now, tracking=text
    )
    return order


async def refresh_cards(services: Services, order_ids: Collection[str]) -> int:
    """After the sync saw orders change in the CRM: withdraw offers on orders that left pending_manager and
    edit the cards of the rest. Returns how many cards were queued for an edit."""
    if not order_ids:
        return 0
    now = services.clock.now()
    refreshed = 0
    async with services.db.transaction() as conn:
        orders = {o.id: o for o in await order_store.get_orders(conn, order_ids)}
        for offer in await assignment_store.offers_for_orders(conn, orders):
            order = orders[offer.order_id]
            if order.status is Status.PENDING_MANAGER:
                continue
            await assignment_store.answer(conn, offer.id, "released", now, decline_reason="crm")
            known = order.crm_manager_id and await assignment_store.get_manager(conn, order.crm_manager_id)
            await order_store.set_assigned_managers(
                conn, [(order.crm_manager_id if known else None, order.id)]
            )
            withdrawn = await assignment_store.get_assignment(conn, offer.id)
            if offer.telegram_id is not None and withdrawn is not None:
                await put_card(conn, services, order, chat_id=offer.telegram_id, offer=withdrawn, now=now)
                refreshed += 1
            orders[order.id] = await load_order(conn, order.id)
        for order in orders.values():
            if order.status in FINAL_STATUSES:
                await order_store.clear_focus(conn, order_id=order.id)
            if await _card_offer(conn, order) is not None:
                await put_card_for(conn, services, order, now=now)
                refreshed += 1
    if refreshed:
        services.wake_sender()
    log_event(log, "order.cards_refreshed", orders=len(order_ids), cards=refreshed)
    return refreshed


# --- /my and /order ID


async def my_orders(services: Services, *, telegram_id: int) -> list[MyOrder]:
    """A manager's open orders with their next step's deadline (an offer: its acceptance deadline)."""
    conn = services.db.reader
    manager = await assignment_store.manager_of_telegram(conn, telegram_id)
    if manager is None:
        raise ActionRefused("not_a_manager")
    offers = {a.order_id: a for a in await assignment_store.offers_of_manager(conn, manager.id)}
    items = []
    for item in await order_store.open_orders_of(conn, manager.id):
        offer = offers.get(item.order.id)
        deadline = offer.expires_at if offer is not None else item.deadline
        items.append(MyOrder(item.order, deadline, offered=offer is not None))
    return sorted(items, key=lambda i: (i.deadline is None, i.deadline or i.order.created_at, i.order.id))


async def order_details(services: Services, order_id: str, *, actor_telegram_id: int) -> OrderDetails:
    """History, assignment reasoning and checklist state of an order, for its manager and for admins."""
    conn = services.db.reader
    order = await load_order(conn, order_id)
    await authorise(conn, services, order, actor_telegram_id)
    assignments = await assignment_store.assignments_of(conn, order.id)
    session = await checklist_store.get_session(conn, order.id)
    answers = await checklist_store.answers(conn, order.id)
    files = await checklist_store.files_per_item(conn, order.id)
    return OrderDetails(
        order=order,
        tz=services.calendar.tz,
        deadline=None if order.status in FINAL_STATUSES else await order_store.step_deadline(conn, order.id),
        history=await order_store.status_history(conn, order.id),
        assignments=[(a, await assignment_store.candidates_of(conn, a)) for a in assignments],
        checklist_answered=len(answers) if session is not None or answers else None,
        checklist_missing=missing_for_submit(answers, is_ebike=order.is_ebike),
        checklist_submitted_at=session.submitted_at if session is not None else None,
        files=sum(files.values()),
    )


# --- a cancel that waited for an admin's approval ---------------------------------------------------------


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
    conn: aiosqlite.Connection,
    services: Services,
    request: signal_store.Decision,
    verdict: Verdict,
    now: datetime,
) -> Settled:
    order = await order_store.get_order(conn, request.order_id) if request.order_id else None
    requester = request.details.get("telegram_id")
    told = frozenset({requester}) if isinstance(requester, int) else frozenset()
    ref = f"order:{request.order_id}:cancel:{request.id}"
    minutes = round((now - request.created_at).total_seconds() / 60)
    if order is None or order.status in FINAL_STATUSES or order.status.value != request.details.get("status"):
        # The order moved on (or the CRM cancelled it) while the request waited: the request is moot.
        status = order.status if order is not None else None
        await signal_store.set_effect(
            conn, request.id, {"moved_to": status, "minutes": minutes, "carried_out": False}, now
        )
        if order is not None:
            await put_card_for(conn, services, order, now=now)
        for person in told:
            await _tell(
                conn, services, person, ref, now, "cancel_moot", order=request.order_id, status=status
            )
        return Settled(coded("moot", verdict.comment), "moved_on", told)
    if not verdict.approved:
        await signal_store.set_effect(
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
        return Settled(coded("rejected", verdict.comment), "rejected", told)
    admin = Actor(verdict.by).name
    cancelled = await apply_status(
        conn, services, order, Status.CANCELLED, actor=admin, now=now, reason=request.reason
    )
    effect = {"moved_to": cancelled.status.value, "minutes": minutes, "carried_out": True}
    await signal_store.set_effect(conn, request.id, effect, now)
    for person in told:
        await _tell(conn, services, person, ref, now, "cancel_approved", order=order.id)
    return Settled(coded("approved", verdict.comment), "carried_out", told)


register_settler("cancel", _settle_cancel)
