"""Compensations (SPEC §6: money waits for an admin; issue 12). `request_compensation` asks an admin to
approve paying a client an amount for a reason; nothing changes until an admin approves (`/decide ID
approve` or the ping's button). Approved: the compensation is written to the CRM through the outbox, once;
rejected: nothing is written. Either way the requester hears the outcome in their language. A request whose
order is gone by then changes nothing.

Other circles (quality: a defect found, issue 14) call `request_compensation` with their own reason; the
settler here carries out every compensation request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

import aiosqlite

from backbone.approvals import Note, Settled, Verdict, coded, register_settler
from backbone.decisions import actor_of
from backbone.signals import Routing, put_rendered, request_approval
from bikewerk.outbox import CrmWrite, enqueue_crm_writes
from bot.logs import log_event
from bot.services import Services
from circles.sales_ops.orders import ActionRefused, load_order
from domain.models import Order
from keyboards import outcomes
from storage import signals as signal_store

log = logging.getLogger(__name__)

Outcome = Literal["approved", "rejected", "moot"]

MAX_AMOUNT_EUR = Decimal("10000")


def parse_amount(text: str) -> Decimal:
    """An amount in euros as people type it ("120", "49,90"); ActionRefused("bad_amount") otherwise."""
    try:
        amount = Decimal(text.replace(",", ".").removesuffix("€").strip())
    except InvalidOperation:
        raise ActionRefused("bad_amount", amount=text[:20]) from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT_EUR or amount != round(amount, 2):
        raise ActionRefused("bad_amount", amount=text[:20])
    return amount


@dataclass(frozen=True)
class CompensationRequest:
    signal_id: int
    decision_id: int


async def request_compensation(
    services: Services,
    *,
    order_id: str,
    amount_eur: Decimal,
    reason: str,
    requested_by: int | str,
    now: datetime,
) -> CompensationRequest:
    """Ask an admin to approve a compensation of `amount_eur` on the order; `requested_by` is a Telegram id or
    an agent's name. Changes nothing else. ActionRefused: not_found, bad_amount, reason_required."""
    if not reason.strip():
        raise ActionRefused("reason_required")
    if amount_eur <= 0 or amount_eur > MAX_AMOUNT_EUR:
        raise ActionRefused("bad_amount", amount=str(amount_eur))
    async with services.db.transaction() as conn:
        order = await load_order(conn, order_id)
        who = actor_of(requested_by) if isinstance(requested_by, int) else requested_by
        facts: dict[str, object] = {"amount_eur": str(amount_eur), "status": order.status.value}
        if isinstance(requested_by, int):
            facts["telegram_id"] = requested_by
        signal_id, decision_id = await request_approval(
            conn,
            action="compensation",
            reason=reason.strip()[:500],
            now=now,
            settings=services.settings,
            requested_by=who,
            order_id=order.id,
            details=facts,
        )
    services.wake_sender()
    log_event(log, "compensation.requested", order=order_id, amount=str(amount_eur), signal=signal_id)
    return CompensationRequest(signal_id, decision_id)


async def _load_or_none(conn: aiosqlite.Connection, order_id: str) -> Order | None:
    try:
        return await load_order(conn, order_id)
    except ActionRefused:
        return None


async def _settle_compensation(
    conn: aiosqlite.Connection,
    services: Services,
    request: signal_store.Decision,
    verdict: Verdict,
    now: datetime,
) -> Settled:
    routing = Routing.from_settings(services.settings)
    requester = request.details.get("telegram_id")
    told = frozenset({requester}) if isinstance(requester, int) else frozenset()
    order_id = request.order_id or ""
    amount = str(request.details.get("amount_eur", ""))
    ref = f"order:{order_id}:compensation:{request.id}"
    order = await _load_or_none(conn, order_id) if order_id else None
    outcome: Outcome = "rejected"
    if order is None:
        outcome = "moot"
    elif verdict.approved:
        write = CrmWrite(
            "compensation",
            order_id,
            {"amount_eur": amount, "reason": request.reason, "approved_by": actor_of(verdict.by)},
            f"compensation:{request.id}",
        )
        await enqueue_crm_writes(conn, [write], now)
        outcome = "approved"
    effect = {
        "carried_out": outcome == "approved",
        "amount_eur": amount,
        "written_to_crm": outcome == "approved",
    }
    await signal_store.set_effect(conn, request.id, effect, now)
    for person in told:
        await put_rendered(
            conn,
            routing,
            person,
            ref,
            now,
            lambda: (
                outcomes.compensation_told(outcome, order=order_id, amount=amount, comment=verdict.comment),
                None,
            ),
        )
    log_event(log, "compensation.settled", order=order_id, request=request.id, outcome=outcome)
    notes: dict[str, Note] = {"approved": "carried_out", "rejected": "rejected", "moot": "moved_on"}
    return Settled(coded(outcome, verdict.comment), notes[outcome], told)


register_settler("compensation", _settle_compensation)
