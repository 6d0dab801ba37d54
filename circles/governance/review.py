"""The human decision on a sanctions hit (circles/governance/sanctions.py), registered as the settler of the
`sanctions_review` approval: approve = a false positive, the hold ends and the order goes to dispatch (the
next dispatch pass, within a minute); reject = the order is cancelled through the usual status change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from backbone.approvals import Settled, Verdict, register_settler
from bot.services import Services
from domain.actors import Actor
from domain.statuses import FINAL_STATUSES, Status
from storage import governance as governance_store
from storage import orders as order_store
from storage import signals as store


async def settle_sanctions_review(
    conn: aiosqlite.Connection, services: Services, request: store.Decision, verdict: Verdict, now: datetime
) -> Settled:
    admin = Actor(verdict.by).name
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
        # Imported here: the orders' use cases pull in aiogram (the card), which a sync process (this module
        # is imported with the sync, which screens new orders) does not need; only the bot settles decisions.
        from circles.sales_ops.orders import apply_status

        cancelled = await apply_status(
            conn, services, order, Status.CANCELLED, actor=admin, now=now, reason="sanctions hit confirmed"
        )
        effect["moved_to"] = cancelled.status.value
    await store.set_effect(conn, request.id, effect, now)
    return Settled(f"{verdict.comment or 'sanctions hit confirmed'}; order cancelled", "rejected")


register_settler("sanctions_review", settle_sanctions_review)
