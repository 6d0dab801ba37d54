"""Dispatch (SPEC §3): who gets each new order, and making sure someone accepts it in time.

- `dispatch_pending`: every pending_manager order without a live offer goes to the eligible manager with the
  lowest weighted load (domain.dispatch); every candidate's score is kept with the offer (the pass's snapshot
  and the pick number, storage/assignments.py), the assignment goes to the CRM through the outbox and the
  manager gets a card with Accept / Decline. No candidate: `order.unassigned` for the leads, once per order.
- `expire_offers`: offers unanswered after the acceptance timeout (working minutes) expire, count a miss on
  the manager, are logged as automatic decisions, and the order goes to the next candidate.
- `accept_offer` / `decline_offer`: the manager's answer. Exactly one accepted assignment per order: every
  answer is a conditional update of the offer row (storage.assignments.answer) inside one transaction.
- `/shift`, `/capacity`, `/leave`: what makes a manager a candidate.

The sync calls `dispatch_pending(services)` right after new orders arrive; the scheduler runs `dispatch_tick`
every minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiosqlite

from backbone.decisions import record_decision
from backbone.signals import raise_signal
from bikewerk.outbox import enqueue_assigns
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from circles.sales_ops.orders import ActionRefused, apply_status, card_ref, load_order, put_card
from circles.strategy import autopilot
from domain.autopilot import REASSIGN_ON_TIMEOUT
from domain.dispatch import Candidate, DispatchBoard, ManagerSnapshot, on_shift, score
from domain.models import Order
from domain.orchestration import offer_expired, pick_managers
from domain.orders import DECLINE_REASONS
from domain.sla import accept_deadline
from domain.statuses import Status
from keyboards.orders import Headed, OfferCards
from storage import assignments as store
from storage import orders as order_store
from storage.assignments import Assignment, DispatchManager, dispatch_managers
from storage.db import bulk_work
from storage.messages import put_encoded_messages
from storage.orders import QueuedOrder, open_orders_by_manager
from storage.people import blocked_chats, chat_languages

log = logging.getLogger(__name__)

_NOBODY: frozenset[str] = frozenset()
# Offers written per batch inside the pass's transaction: bounds what a pass over a backlog holds in memory.
_BATCH = 1000
PICK_REASON = "lowest_load"  # ties go to the manager assigned longest ago (domain.dispatch)


@dataclass
class DispatchReport:
    offered: dict[str, str] = field(default_factory=dict)  # order id -> manager id
    unassigned: list[str] = field(default_factory=list)  # orders no manager could take now
    signals: int = 0  # order.unassigned signals raised by this pass
    # (order id, manager id) of the offers that timed out (dispatch_tick)
    expired: list[tuple[str, str]] = field(default_factory=list)


def manager_snapshots(
    managers: Sequence[DispatchManager], loads: dict[str, dict[Status, int]], working: bool
) -> list[ManagerSnapshot]:
    return [
        ManagerSnapshot(
            manager_id=m.id,
            active=m.active,
            on_leave=m.on_leave,
            capacity=m.capacity,
            on_shift=on_shift(working, m.shift_override),
            open_orders_by_status=loads.get(m.id, {}),
            last_assigned_at=m.last_assigned_at,
        )
        for m in managers
    ]


async def dispatch_pending(services: Services) -> DispatchReport:
    """Offer every waiting order to a manager (one transaction); raise `order.unassigned` for the rest."""
    now = services.clock.now()
    with bulk_work():
        async with services.db.transaction() as conn:
            report = await _dispatch(conn, services, now)
    if report.offered or report.signals:
        services.wake_sender()
    if report.offered or report.unassigned:
        log_event(
            log,
            "dispatch.pass",
            offered=len(report.offered),
            unassigned=len(report.unassigned),
            signals=report.signals,
        )
    return report


async def _dispatch(conn: aiosqlite.Connection, services: Services, now: datetime) -> DispatchReport:
    """The pass streams through the backlog a batch at a time: read, pick, write. One transaction holds it
    all, and each batch is one statement per table, so a backlog of thousands stays a short transaction.

    SQLite runs in its own thread (aiosqlite) and lets go of the interpreter lock while it works, so a batch's
    writes run while Python picks and renders the next batch: the next batch is read first, then the writes
    are queued together, and the pass only waits for them before queuing the following ones."""
    batch = await order_store.pending_without_offer(conn, limit=_BATCH)
    if not batch:
        return DispatchReport()
    managers = await store.dispatch_managers(conn)
    loads = await order_store.open_orders_by_manager(conn)
    chats = await _reachable_chats(conn, managers)
    dispatch = _Pass(
        services=services,
        now=now,
        snapshots=manager_snapshots(managers, loads, services.calendar.is_working(now)),
        chats=chats,
        languages=await chat_languages(conn, chats.values(), services.settings.default_language),
        refused=await store.refusals_of_pending(conn),
        waiting=await store.waiting_orders(conn),
        first_id=await store.next_assignment_id(conn),
    )
    writing: asyncio.Future[list[None]] | None = None
    while batch:
        chosen = dispatch.pick(batch)
        if chosen and dispatch.pass_id is None:  # stored at the first offer: see _Pass.pass_id
            dispatch.pass_id = await store.insert_pass(conn, **dispatch.pass_start())
        offers = dispatch.encode(chosen) if chosen else None
        if writing is not None:
            await writing
        # The next batch's read goes to SQLite first, this batch's writes right behind it.
        following = asyncio.ensure_future(
            order_store.pending_without_offer(conn, after=batch[-1], limit=_BATCH)
        )
        writing = await _queue(dispatch.writes(conn, offers)) if offers is not None else None
        try:
            batch = await following
        except BaseException:
            if writing is not None:  # their errors, if any, are not the one to report
                await asyncio.gather(writing, return_exceptions=True)
            raise
    if writing is not None:
        await writing
    return await dispatch.finish(conn)


async def _queue(statements: Sequence[Awaitable[None]]) -> asyncio.Future[list[None]]:
    """Start one-statement writes in order; return once each has handed its statement to SQLite's thread
    (behind those of tasks started before), which runs them one after another while the caller goes on."""
    writing = asyncio.gather(*statements)
    await asyncio.sleep(0)  # each task runs up to its statement's hand-over
    return writing


async def _reachable_chats(conn: aiosqlite.Connection, managers: Sequence[DispatchManager]) -> dict[str, int]:
    """Each manager's private chat, unless none is linked or they blocked the bot: a card there could never be
    answered, and the order would only wait out the accept window."""
    blocked = await blocked_chats(conn)
    return {
        m.id: m.telegram_id for m in managers if m.telegram_id is not None and m.telegram_id not in blocked
    }


@dataclass
class _Offers:
    """One batch's offers, ready to write: each statement's rows already encoded."""

    offers: store.NewOffers
    assigns: list[tuple[str, str, str]]  # (order id, manager id, idempotency key) for the CRM
    cards: list[tuple[int, str, str, str | None]]  # (chat, ref, text, encoded markup)
    waits_ended: list[str]  # orders that had raised order.unassigned


class _Pass:
    """One dispatch pass: the board of every manager, and what the pass decided so far. Picking and rendering
    are plain Python (`offer`); the caller writes what they return."""

    def __init__(
        self,
        *,
        services: Services,
        now: datetime,
        snapshots: list[ManagerSnapshot],
        chats: dict[str, int],
        languages: dict[int, str],
        refused: dict[str, set[str]],
        waiting: set[str],
        first_id: int,
    ) -> None:
        self.services, self.now = services, now
        self.snapshots = snapshots
        self.chats = chats  # manager -> private chat; a manager without one (or blocked) is never picked
        self.unreachable = {s.manager_id for s in snapshots} - chats.keys()
        self.refused = refused  # order -> managers who declined or missed it
        self.waiting = waiting  # orders that already raised order.unassigned
        self.board = DispatchBoard(snapshots, services.policy.load_weights)
        self.expires_at = accept_deadline(now, services.policy, services.calendar)
        self.next_id = first_id  # the assignment id of the next offer (the pass owns the write transaction)
        # Its row in dispatch_passes, stored at the first offer: a pass that offers nothing leaves none.
        self.pass_id: int | None = None
        self.picked: list[str] = []  # the manager of each offer of the pass, in order
        self.languages = languages  # chat -> language
        self.renderers: dict[str, Callable[[Headed, int], tuple[str, str | None]]] = {}  # language -> cards
        self.unassigned: list[QueuedOrder] = []
        self.report = DispatchReport()

    def pass_start(self) -> dict[str, Any]:
        """`store.insert_pass`'s arguments: the board the pass started from."""
        return {
            "at": self.now,
            "weights": self.services.policy.load_weights,
            "managers": self.snapshots,
            "unreachable": self.unreachable,
        }

    def pick(self, batch: Sequence[QueuedOrder]) -> list[tuple[QueuedOrder, str]]:
        """A manager for each order of the batch that someone can take: (order, manager id)."""
        refused = self.refused
        unreachable = self.unreachable
        waiting = []
        for order in batch:
            excluded = refused.get(order.id, _NOBODY)
            waiting.append((order.id, excluded | unreachable if unreachable else excluded))
        chosen: list[tuple[QueuedOrder, str]] = []
        for order, (_, manager_id) in zip(batch, pick_managers(self.board, waiting, self.now), strict=True):
            if manager_id is None:
                self.unassigned.append(order)
            else:
                chosen.append((order, manager_id))
        return chosen

    def encode(self, chosen: Sequence[tuple[QueuedOrder, str]]) -> _Offers:
        """The offers of picks, encoded for their statements (the pass's row is stored by now)."""
        assert self.pass_id is not None
        pass_id, first = self.pass_id, self.next_id
        self.next_id += len(chosen)
        picks = []
        for order, manager_id in chosen:
            excluded = self.refused.get(order.id, _NOBODY)
            picks.append((order.id, manager_id, store.offer_reference(pass_id, len(self.picked), excluded)))
            self.picked.append(manager_id)
            self.report.offered[order.id] = manager_id
        orders = [order for order, _ in chosen]
        return _Offers(
            offers=store.NewOffers(first, self.now, self.expires_at, PICK_REASON, picks),
            assigns=[
                (order.id, manager_id, f"assign:{first + k}") for k, (order, manager_id) in enumerate(chosen)
            ],
            cards=self._cards(first, chosen),
            waits_ended=[order.id for order in orders if order.id in self.waiting],
        )

    def _cards(
        self, first_id: int, chosen: Sequence[tuple[QueuedOrder, str]]
    ) -> list[tuple[int, str, str, str | None]]:
        """Each offer's card in its manager's language: (chat, ref, text, encoded markup)."""
        cards = []
        for k, (order, manager_id) in enumerate(chosen):
            chat = self.chats[manager_id]
            lang = self.languages[chat]
            render = self.renderers.get(lang)
            if render is None:
                with in_locale(lang):
                    render = self.renderers[lang] = OfferCards(self.services.calendar.tz).encoded(
                        self.expires_at
                    )
            text, markup = render(order, first_id + k)
            cards.append((chat, card_ref(order.id), text, markup))
        return cards

    def writes(self, conn: aiosqlite.Connection, batch: _Offers) -> list[Awaitable[None]]:
        """The batch's statements: the offers and their orders' manager, the CRM writes, the cards."""
        statements: list[Awaitable[None]] = [
            store.add_offer_rows(conn, batch.offers),
            store.mark_offered_orders(conn, batch.offers),
            enqueue_assigns(conn, batch.assigns, self.now),
            put_encoded_messages(conn, batch.cards, now=self.now),
        ]
        if batch.waits_ended:
            statements.append(store.end_waits(conn, batch.waits_ended))
        return statements

    async def finish(self, conn: aiosqlite.Connection) -> DispatchReport:
        if self.pass_id is not None:
            await store.set_pass_picks(conn, self.pass_id, self.picked)
            await store.stamp_last_assigned(conn, [(manager_id, self.now) for manager_id in set(self.picked)])
        self.report.unassigned = [o.id for o in self.unassigned]
        self.report.signals = await self._signal_unassigned(conn)
        return self.report

    async def _signal_unassigned(self, conn: aiosqlite.Connection) -> int:
        """`order.unassigned` once per order while it waits (dispatch_waits remembers it across passes)."""
        raised = 0
        for order in self.unassigned:
            if order.id in self.waiting:
                continue
            signal_id = await raise_signal(
                conn,
                type="order.unassigned",
                dedup_key=f"order.unassigned:{order.id}",
                now=self.now,
                order_id=order.id,
                details={"order_id": order.id, "bike": f"{order.bike_brand} {order.bike_model}".strip()},
                raised_by="dispatcher",
                settings=self.services.settings,
                policy=self.services.policy,
            )
            await store.add_wait(conn, order.id, self.now, signal_id)
            raised += 1
        return raised


# --- acceptance control


async def expire_offers(services: Services) -> list[tuple[str, str]]:
    """Expire the offers past their acceptance deadline: a miss on the manager, an automatic decision, the
    card edited. Returns (order id, manager id) of each; the caller dispatches the orders again."""
    now = services.clock.now()
    async with services.db.transaction() as conn:
        expired = []
        for offer in await store.due_offers(conn, now):
            if not offer_expired(state=offer.state, expires_at=offer.expires_at, now=now):
                continue
            if not await store.answer(conn, offer.id, "expired", now):
                continue
            expired.append((offer.order_id, offer.manager_id))
            await store.count_miss(conn, offer.manager_id)
            await order_store.set_assigned_managers(conn, [(None, offer.order_id)])
            facts = {
                "assignment_id": offer.id,
                "manager_id": offer.manager_id,
                "offered_at": offer.offered_at.isoformat(),
                "expires_at": offer.expires_at.isoformat(),
            }
            verdict = await autopilot.gate(
                conn,
                services,
                REASSIGN_ON_TIMEOUT,
                now,
                reason=f"not accepted within {services.policy.accept_timeout_minutes} working minutes",
                expected={"accepted_by_next_manager": True},
                order_id=offer.order_id,
                actor="dispatcher",
                details=facts,
                decision_action="reassign",
            )
            if verdict.mode == "ask":  # a person decides; dispatch leaves the order alone until then
                await raise_signal(
                    conn,
                    type="order.accept_timeout",
                    dedup_key=f"order.accept_timeout:{offer.order_id}",
                    now=now,
                    order_id=offer.order_id,
                    details={**facts, "autopilot": verdict.reason},
                    settings=services.settings,
                    policy=services.policy,
                )
            await _show_answered(conn, services, offer, now)
    for order_id, manager_id in expired:
        log_event(log, "dispatch.expired", order=order_id, manager=manager_id)
    if expired:
        services.wake_sender()
    return expired


async def _show_answered(
    conn: aiosqlite.Connection, services: Services, offer: Assignment, now: datetime
) -> None:
    """Edit the card of an offer that was just answered, expired or withdrawn."""
    if offer.telegram_id is None:
        return
    order = await load_order(conn, offer.order_id)
    answered = await store.get_assignment(conn, offer.id)
    await put_card(conn, services, order, chat_id=offer.telegram_id, offer=answered, now=now)


async def dispatch_tick(services: Services) -> DispatchReport:
    """The scheduler's minute: expire unanswered offers, then offer every waiting order."""
    expired = await expire_offers(services)
    report = await dispatch_pending(services)
    report.expired = expired
    return report


async def _own_offer(conn: aiosqlite.Connection, assignment_id: int, telegram_id: int) -> Assignment:
    offer = await store.get_assignment(conn, assignment_id)
    if offer is None or offer.telegram_id != telegram_id:
        raise ActionRefused("not_your_offer")
    return offer


@dataclass(frozen=True)
class Accepted:
    order: Order
    repeated: bool  # the manager had accepted it already (a double tap or a replayed update)


async def accept_offer(
    services: Services, assignment_id: int, *, actor_telegram_id: int, now: datetime
) -> Accepted:
    """The manager accepts: the offer becomes the order's one accepted assignment and the order moves to
    accepted (history, SLA visit, CRM write, card). Refuses someone else's offer and one no longer open."""
    async with services.db.transaction() as conn:
        offer = await _own_offer(conn, assignment_id, actor_telegram_id)
        if offer.state == "accepted":
            return Accepted(await load_order(conn, offer.order_id), repeated=True)
        order = await load_order(conn, offer.order_id)
        if order.status is not Status.PENDING_MANAGER or not await store.answer(
            conn, offer.id, "accepted", now
        ):
            raise ActionRefused("offer_gone", order=offer.order_id)
        updated = await apply_status(conn, services, order, Status.ACCEPTED, actor=offer.manager_id, now=now)
    services.wake_sender()
    log_event(log, "dispatch.accepted", order=offer.order_id, manager=offer.manager_id, assignment=offer.id)
    return Accepted(updated, repeated=False)


async def show_decline_reasons(
    services: Services, assignment_id: int, *, actor_telegram_id: int, now: datetime, asking: bool = True
) -> None:
    """Decline asks for a reason: the card shows the reason buttons (or, `asking=False`, the offer again)."""
    async with services.db.transaction() as conn:
        offer = await _own_offer(conn, assignment_id, actor_telegram_id)
        if offer.state != "offered":
            raise ActionRefused("offer_gone", order=offer.order_id)
        order = await load_order(conn, offer.order_id)
        await put_card(
            conn,
            services,
            order,
            chat_id=actor_telegram_id,
            offer=offer,
            now=now,
            mode="decline" if asking else "normal",
        )
    services.wake_sender()


async def decline_offer(
    services: Services, assignment_id: int, reason: str, *, actor_telegram_id: int, now: datetime
) -> DispatchReport:
    """The manager declines with a reason: logged, the card says so, and the order goes to the next candidate
    at once (this manager is not offered it again)."""
    if reason not in DECLINE_REASONS:
        raise ActionRefused("bad_reason")
    async with services.db.transaction() as conn:
        offer = await _own_offer(conn, assignment_id, actor_telegram_id)
        if not await store.answer(conn, offer.id, "declined", now, decline_reason=reason):
            raise ActionRefused(
                "already_accepted" if offer.state == "accepted" else "offer_gone", order=offer.order_id
            )
        await order_store.set_assigned_managers(conn, [(None, offer.order_id)])
        await record_decision(
            conn,
            kind="auto",
            action="reassign",
            reason=f"declined by the manager: {reason}",
            now=now,
            actor="dispatcher",
            order_id=offer.order_id,
            details={"assignment_id": offer.id, "manager_id": offer.manager_id, "decline_reason": reason},
        )
        await _show_answered(conn, services, offer, now)
    log_event(log, "dispatch.declined", order=offer.order_id, manager=offer.manager_id, reason=reason)
    services.wake_sender()
    return await dispatch_pending(services)


# --- shifts, capacity, leave


async def _release_offers(
    conn: aiosqlite.Connection, services: Services, manager_id: str, why: str, now: datetime
) -> int:
    """Withdraw a manager's open offers (on leave or off shift): no miss, the orders go elsewhere."""
    released = 0
    for offer in await store.offers_of_manager(conn, manager_id):
        if await store.answer(conn, offer.id, "released", now, decline_reason=why):
            await order_store.set_assigned_managers(conn, [(None, offer.order_id)])
            await _show_answered(conn, services, offer, now)
            released += 1
    return released


@dataclass(frozen=True)
class ShiftState:
    on_shift: bool
    override: str | None
    released: int  # offers withdrawn because the manager went off shift


async def set_shift(
    services: Services, *, actor_telegram_id: int, on: bool | None, now: datetime
) -> ShiftState:
    """`/shift on|off` (None: just report). The override records only a deviation from the working hours, so a
    manager who says what the calendar says anyway follows the calendar again from then on."""
    working = services.calendar.is_working(now)
    async with services.db.transaction() as conn:
        manager = await store.manager_of_telegram(conn, actor_telegram_id)
        if manager is None or not manager.active:
            raise ActionRefused("not_a_manager")
        override = manager.shift_override
        released = 0
        if on is not None:
            override = None if on == working else ("on" if on else "off")
            if override != manager.shift_override:  # saying it again (or a redelivered update) is no change
                await store.set_shift_override(conn, manager.id, override, now)
            if not on:
                released = await _release_offers(conn, services, manager.id, "shift", now)
    if on is not None:
        log_event(log, "dispatch.shift", manager=manager.id, on=on, override=override)
    if released:
        services.wake_sender()
        await dispatch_pending(services)
    return ShiftState(on_shift(working, override), override, released)


def _require_admin(services: Services, telegram_id: int) -> None:
    if telegram_id not in services.settings.admin_ids:
        raise ActionRefused("forbidden")


async def set_capacity(
    services: Services, manager_id: str, capacity: int | None, *, actor_telegram_id: int, now: datetime
) -> DispatchManager:
    """An admin sets a manager's capacity (None: back to the CRM's)."""
    _require_admin(services, actor_telegram_id)
    most = services.policy.dispatch.max_capacity
    if capacity is not None and not 0 <= capacity <= most:
        raise ActionRefused("bad_capacity", max=most)
    async with services.db.transaction() as conn:
        if await store.get_manager(conn, manager_id) is None:
            raise ActionRefused("no_manager", manager=manager_id)
        await store.set_capacity_override(conn, manager_id, capacity, now)
        await record_decision(
            conn,
            kind="human",
            action="set_capacity",
            reason=f"capacity {capacity if capacity is not None else 'reset'}",
            now=now,
            actor=str(actor_telegram_id),
            details={"manager_id": manager_id, "capacity": capacity},
        )
        updated = await store.get_manager(conn, manager_id)
    assert updated is not None
    log_event(log, "dispatch.capacity", manager=manager_id, capacity=capacity, by=actor_telegram_id)
    return updated


async def set_leave(
    services: Services, manager_id: str, on_leave: bool, *, actor_telegram_id: int, now: datetime
) -> tuple[DispatchManager, int]:
    """An admin sends a manager on leave (their open offers go to others at once) or back."""
    _require_admin(services, actor_telegram_id)
    async with services.db.transaction() as conn:
        if await store.get_manager(conn, manager_id) is None:
            raise ActionRefused("no_manager", manager=manager_id)
        await store.set_on_leave(conn, manager_id, on_leave, now)
        released = await _release_offers(conn, services, manager_id, "leave", now) if on_leave else 0
        await record_decision(
            conn,
            kind="human",
            action="set_leave",
            reason="on leave" if on_leave else "back from leave",
            now=now,
            actor=str(actor_telegram_id),
            details={"manager_id": manager_id, "released": released},
        )
        updated = await store.get_manager(conn, manager_id)
    assert updated is not None
    log_event(log, "dispatch.leave", manager=manager_id, on_leave=on_leave, by=actor_telegram_id)
    if released:
        services.wake_sender()
        await dispatch_pending(services)
    return updated, released


async def reassign_candidates(services: Services) -> list[tuple[str, str]]:
    """Managers a signal can be handed to: active, not on leave, with Telegram linked, as (id, name)."""
    managers = await dispatch_managers(services.db.reader)
    return [(m.id, m.name) for m in managers if m.active and not m.on_leave and m.telegram_id is not None]


@dataclass(frozen=True)
class ManagerLine:
    manager: DispatchManager
    candidate: Candidate
    on_shift: bool


async def managers_overview(services: Services, now: datetime) -> list[ManagerLine]:
    """Every manager with load, shift, capacity and misses, scored exactly as the dispatcher scores them."""
    conn = services.db.reader
    managers = await dispatch_managers(conn)
    loads = await open_orders_by_manager(conn)
    working = services.calendar.is_working(now)
    candidates = score(manager_snapshots(managers, loads, working), services.policy.load_weights)
    return [
        ManagerLine(m, c, on_shift(working, m.shift_override))
        for m, c in zip(managers, candidates, strict=True)
    ]
