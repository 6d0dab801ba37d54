"""The Head of Quality at work: after each sync, a dispute opened on an order is a signal to the leads, and so
is a repeat incident (a compensation or a dispute whose seller or bike model had another one, on another
order, within `repeat_days`). A compensation the team wants to pay goes through an admin's approval
(`request_compensation`), like a cancel.

Incidents are signalled once each (circle_findings remembers them); incidents older than FRESH_DAYS when first
seen (the CRM's history) are recorded without a ping.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from backbone.signals import raise_signal, request_approval
from bot.logs import log_event
from bot.services import Services
from domain.economics import Incident
from domain.kpi import Window
from domain.quality import repeats
from storage import money
from storage.db import ts

log = logging.getLogger(__name__)

FRESH_DAYS = 2


async def watch(services: Services, now: datetime) -> list[tuple[str, Incident]]:
    """Signal the disputes opened and the repeat incidents that are new since the last run."""
    db = services.db
    days = services.policy.quality.repeat_days
    fresh = Window(now - timedelta(days=FRESH_DAYS), now + timedelta(seconds=1))
    recent = await money.incidents(db, fresh)
    if not recent:
        return []
    history = await money.incidents(db, Window(fresh.start - timedelta(days=days), fresh.end))
    repeated = {(i.kind, i.id, i.order_id) for i in repeats(recent, history, days)}
    wanted: list[tuple[str, Incident]] = []
    for incident in recent:
        if incident.kind == "dispute":
            wanted.append(("dispute_opened", incident))
        if (incident.kind, incident.id, incident.order_id) in repeated:
            wanted.append(("repeat_incident", incident))
    known = await money.findings_of(db, {i.order_id for _, i in wanted})
    raised: list[tuple[str, Incident]] = []
    async with db.transaction() as conn:
        for rule, incident in wanted:
            key = f"{rule}:{incident.kind}:{incident.id}"
            if (incident.order_id, key) in known:
                continue
            signal_id = await raise_signal(
                conn,
                type=f"quality.{rule}",
                dedup_key=f"quality.{rule}:{incident.order_id}:{incident.kind}:{incident.id}",
                now=now,
                order_id=incident.order_id,
                details={
                    "incident": incident.kind,
                    "seller": incident.seller,
                    "model": incident.model,
                    "at": ts(incident.at),
                    "eur": incident.amount,
                },
                raised_by="quality",
                settings=services.settings,
                policy=services.policy,
            )
            await money.save_finding(conn, incident.order_id, key, incident.amount or 0.0, [], now, signal_id)
            raised.append((rule, incident))
    if raised:
        services.wake_sender()
        log_event(log, "quality.signals", raised=len(raised))
    return raised


async def request_compensation(
    services: Services, *, order_id: str, amount_eur: float, reason: str, requested_by: str, now: datetime
) -> tuple[int, int]:
    """Ask an admin to approve paying `amount_eur` to the client of `order_id`: a `decision.approval_needed`
    signal and a pending decision (action "compensation"); nothing is paid or written to the CRM until an
    admin approves. The settler that carries an approved one out (the CRM write) is registered by the
    approvals of the truth issue under the action "compensation" (backbone.approvals.register_settler)."""
    async with services.db.transaction() as conn:
        ids = await request_approval(
            conn,
            action="compensation",
            reason=reason,
            now=now,
            settings=services.settings,
            requested_by=requested_by,
            order_id=order_id,
            details={"amount_eur": round(amount_eur, 2), "circle": "quality"},
        )
    services.wake_sender()
    return ids
