"""Handing orders over (issue 12): `/reassign ORDER MANAGER [reason]` and the Reassign button on an order's
signal move the ORDER, not only the signal; an approved bulk reassignment moves every open order of a manager
(e.g. one who fell ill) to the managers the dispatcher would pick.

A handover releases the live assignment (the old manager's card says it was handed over), gives the new
manager an accepted assignment (an order still waiting for acceptance gets a fresh offer instead) and the
card, keeps the running SLA visit, writes the assignment to the CRM through the outbox once, and logs a
decision with who and why. The candidates are scored exactly as the dispatcher scores them, and the
snapshot is kept with the new assignment (`/order ID` shows it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

from backbone.approvals import Note, Settled, Verdict, coded, register_settler
from backbone.decisions import actor_of, record_decision
from backbone.handover import register_order_mover
from backbone.signals import Routing, put_rendered, request_approval
from bikewerk.outbox import CrmWrite, enqueue_crm_writes
from bot.logs import log_event
from bot.services import Services
from circles.sales_ops.dispatcher import manager_snapshots
from circles.sales_ops.orders import ActionRefused, load_order, put_card
from domain.dispatch import Candidate, DispatchBoard, on_shift, score
from domain.models import Order
from domain.sla import accept_deadline
from domain.statuses import FINAL_STATUSES, Status
from keyboards import outcomes
from storage import assignments as store
from storage import orders as order_store
from storage import signals as signal_store
from storage.assignments import DispatchManager, NewOffers
from storage.handover import insert_accepted, release_for_handover

log = logging.getLogger(__name__)

HANDOVER_REASON = "handover"  # ai_assignments.reason of an assignment made by a handover


@dataclass(frozen=True)
class Handover:
    order: Order
    from_manager: str | None
    to_manager: str
    assignment_id: int
    from_name: str | None = None  # the managers' names, for the answers
    to_name: str = ""


@dataclass(frozen=True)
class ScoredManager:
    manager: DispatchManager
    candidate: Candidate
    on_shift: bool


async def scored_managers(
    conn: aiosqlite.Connection, services: Services, now: datetime
) -> list[ScoredManager]:
    """Managers an order can be handed to (active, not on leave, with Telegram), scored as the dispatcher
    scores them, lowest load first."""
    managers = await store.dispatch_managers(conn)
    loads = await order_store.open_orders_by_manager(conn)
    working = services.calendar.is_working(now)
    candidates = score(manager_snapshots(managers, loads, working), services.policy.load_weights)
    rows = [
        ScoredManager(m, c, on_shift(working, m.shift_override))
        for m, c in zip(managers, candidates, strict=True)
        if m.active and not m.on_leave and m.telegram_id is not None
    ]
    return sorted(rows, key=lambda r: (r.candidate.load, r.manager.id))


async def reassign_choices(services: Services, now: datetime) -> list[tuple[str, str]]:
    """(manager id, button label) for the Reassign picker: the name, the load and the open orders."""
    rows = await scored_managers(services.db.conn, services, now)
    return [
        (r.manager.id, f"{r.manager.name} · {r.candidate.load:.0%} · {r.candidate.open_orders}") for r in rows
    ]


async def hand_over(
    conn: aiosqlite.Connection,
    services: Services,
    order_id: str,
    manager_id: str,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> Handover:
    """Move the order to `manager_id` inside the caller's transaction. ActionRefused (nothing changed):
    not_found, order_closed, unknown_manager, manager_unreachable, same_manager."""
    order = await load_order(conn, order_id)
    if order.status in FINAL_STATUSES:
        raise ActionRefused("order_closed", order=order.id, status=order.status)
    manager = await store.get_manager(conn, manager_id)
    if manager is None:
        raise ActionRefused("unknown_manager", manager=manager_id)
    if not manager.active or manager.on_leave or manager.telegram_id is None:
        raise ActionRefused("manager_unreachable", manager=manager_id)
    if order.assigned_manager_id == manager_id:
        raise ActionRefused("same_manager", order=order.id, manager=manager_id)
    released = []
    for assignment in await store.assignments_of(conn, order.id):
        if assignment.state in ("offered", "accepted") and await release_for_handover(
            conn, assignment.id, now
        ):
            released.append(assignment)
    # The scores as they stood, kept with the new assignment like a pass (candidates_of replays them).
    managers = await store.dispatch_managers(conn)
    loads = await order_store.open_orders_by_manager(conn)
    pass_id = await store.insert_pass(
        conn,
        at=now,
        weights=services.policy.load_weights,
        managers=manager_snapshots(managers, loads, services.calendar.is_working(now)),
        unreachable={m.id for m in managers if m.telegram_id is None},
    )
    await store.set_pass_picks(conn, pass_id, [manager_id])
    new_id = await store.next_assignment_id(conn)
    reference = store.offer_reference(pass_id, 0, ())
    if order.status is Status.PENDING_MANAGER:
        offer = NewOffers(
            new_id,
            now,
            accept_deadline(now, services.policy, services.calendar),
            HANDOVER_REASON,
            [(order.id, manager_id, reference)],
        )
        await store.insert_offers(conn, offer)
        await store.end_waits(conn, [order.id])
    else:
        await insert_accepted(
            conn,
            assignment_id=new_id,
            order_id=order.id,
            manager_id=manager_id,
            now=now,
            candidates_json=reference,
            reason=HANDOVER_REASON,
        )
    await order_store.set_assigned_managers(conn, [(manager_id, order.id)])
    await store.stamp_last_assigned(conn, [(manager_id, now)])
    await enqueue_crm_writes(
        conn, [CrmWrite("assign", order.id, {"manager_id": manager_id}, f"assign:{new_id}")], now
    )
    moved = await load_order(conn, order.id)
    for old in released:
        if old.telegram_id is not None and old.manager_id != manager_id:
            gone = await store.get_assignment(conn, old.id)
            await put_card(conn, services, moved, chat_id=old.telegram_id, offer=gone, now=now)
    await put_card(
        conn,
        services,
        moved,
        chat_id=manager.telegram_id,
        offer=await store.get_assignment(conn, new_id),
        now=now,
    )
    previous = order.assigned_manager_id
    await record_decision(
        conn,
        kind="human" if actor.isdigit() else "auto",
        action="reassign",
        actor=actor,
        reason=reason,
        now=now,
        order_id=order.id,
        details={"from": previous, "to": manager_id, "assignment_id": new_id, "status": order.status.value},
    )
    log_event(log, "order.handed_over", order=order.id, old=previous, new=manager_id, by=actor)
    before = await store.get_manager(conn, previous) if previous is not None else None
    return Handover(moved, previous, manager_id, new_id, before.name if before else previous, manager.name)


async def reassign_order(
    services: Services, order_id: str, manager_id: str, *, actor_telegram_id: int, reason: str, now: datetime
) -> Handover:
    """`/reassign ORDER MANAGER [reason]` (the handler lets leads, admins and the owner in)."""
    async with services.db.transaction() as conn:
        handover = await hand_over(
            conn,
            services,
            order_id,
            manager_id,
            actor=actor_of(actor_telegram_id),
            reason=reason or "reassign",
            now=now,
        )
    services.wake_sender()
    return handover


async def _move_for_signal(
    conn: aiosqlite.Connection,
    services: Services,
    order_id: str,
    manager_id: str,
    actor: str,
    reason: str,
    now: datetime,
) -> bool:
    """The backbone's Reassign on an order's signal: the order moves with it when it can."""
    try:
        await hand_over(conn, services, order_id, manager_id, actor=actor, reason=reason, now=now)
    except ActionRefused:
        return False  # closed, already theirs: only the signal changes hands
    return True


register_order_mover(_move_for_signal)


# --- bulk reassignment: every open order of a manager, after an admin's approval ---------------------------


async def request_bulk_reassign(
    services: Services, *, manager_id: str, reason: str, requested_by: int, now: datetime
) -> tuple[int, int]:
    """Ask an admin to approve handing every open order of `manager_id` to the managers the dispatcher would
    pick. Changes nothing else. Returns (signal id, how many orders). ActionRefused: unknown_manager,
    nothing_open."""
    async with services.db.transaction() as conn:
        manager = await store.get_manager(conn, manager_id)
        if manager is None:
            raise ActionRefused("unknown_manager", manager=manager_id)
        orders = [o.order.id for o in await order_store.open_orders_of(conn, manager_id)]
        if not orders:
            raise ActionRefused("nothing_open", manager=manager_id)
        signal_id, _ = await request_approval(
            conn,
            action="bulk_reassign",
            reason=reason or "bulk_reassign",
            now=now,
            settings=services.settings,
            requested_by=actor_of(requested_by),
            details={
                "subject": f"manager:{manager_id}",
                "manager_id": manager_id,
                "orders": orders,
                "telegram_id": requested_by,
            },
        )
    services.wake_sender()
    return signal_id, len(orders)


async def _settle_bulk(
    conn: aiosqlite.Connection,
    services: Services,
    request: signal_store.Decision,
    verdict: Verdict,
    now: datetime,
) -> Settled:
    manager_id = str(request.details.get("manager_id", ""))
    requester = request.details.get("telegram_id")
    told = frozenset({requester}) if isinstance(requester, int) else frozenset()
    moved: dict[str, str] = {}
    left: list[str] = []
    still = [
        order
        for order_id in request.details.get("orders", [])
        if (order := await order_store.get_order(conn, str(order_id))) is not None
        and order.status not in FINAL_STATUSES
        and order.assigned_manager_id == manager_id
    ]
    outcome: Literal["approved", "rejected", "moot"] = (
        "rejected" if not verdict.approved else ("approved" if still else "moot")
    )
    if outcome == "approved":
        managers = await store.dispatch_managers(conn)
        loads = await order_store.open_orders_by_manager(conn)
        board = DispatchBoard(
            manager_snapshots(managers, loads, services.calendar.is_working(now)),
            services.policy.load_weights,
        )
        unreachable = {m.id for m in managers if m.telegram_id is None or m.on_leave or not m.active}
        for order in still:
            chosen = board.best({manager_id, *unreachable})
            if chosen is None:
                left.append(order.id)
                continue
            await hand_over(
                conn,
                services,
                order.id,
                chosen.manager_id,
                actor=actor_of(verdict.by),
                reason=request.reason,
                now=now,
            )
            board.record_assignment(chosen.manager_id, now, order.status)
            moved[order.id] = chosen.manager_id
    effect = {"carried_out": bool(moved), "moved": moved, "left": left}
    await signal_store.set_effect(conn, request.id, effect, now)
    routing = Routing.from_settings(services.settings)
    for person in told:
        await put_rendered(
            conn,
            routing,
            person,
            f"bulk_reassign:{request.id}",
            now,
            lambda: (outcomes.bulk_told(outcome, manager=manager_id, moved=len(moved), left=len(left)), None),
        )
    log_event(log, "bulk_reassign.settled", manager=manager_id, moved=len(moved), left=len(left))
    notes: dict[str, Note] = {"approved": "carried_out", "rejected": "rejected", "moot": "moved_on"}
    return Settled(coded(outcome, verdict.comment), notes[outcome], told)


register_settler("bulk_reassign", _settle_bulk)
