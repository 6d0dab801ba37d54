"""The crisis protocol (SPEC §12, issue 12): anyone with a role raises a critical signal by hand (`/crisis
TEXT`), and agents raise one for the conditions the policy names (`[crisis]`): many SLA breaches within a
window, the CRM unreachable for a while (bikewerk/sync_health.py), a severe defect on an order already paid.

A crisis is a critical signal: it goes to the crisis chat and the owner, carries the playbook for its kind
(frozen into the signal's facts when raised, in every language), climbs after 15 minutes without an
acknowledgement, and asks the crisis chat for its postmortem when resolved (backbone/postmortems.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from backbone.decisions import SYSTEM
from backbone.signals import raise_signal
from bot.config import Settings
from bot.logs import log_event
from bot.services import Services
from domain.crisis import DEFAULT_PLAYBOOKS, CrisisPolicy, breach_storm
from storage import crisis as crisis_store
from storage.signals import live_signal_by_dedup

log = logging.getLogger(__name__)

MAX_CRISIS_TEXT = 1000
# Statuses after the client has paid (awaiting_client ends with the payment): a severe defect there is a
# crisis.
PAID_STATUSES = ("ready_for_shipment", "in_transit", "delivered")


def _playbook(crisis: CrisisPolicy, kind: str) -> dict[str, list[str]]:
    return dict(
        crisis.playbooks.get(kind) or DEFAULT_PLAYBOOKS.get(kind) or DEFAULT_PLAYBOOKS["crisis.manual"]
    )


async def raise_crisis(
    conn: aiosqlite.Connection,
    *,
    kind: str,
    dedup_key: str,
    now: datetime,
    settings: Settings | None,
    crisis: CrisisPolicy,
    facts: dict[str, Any],
    raised_by: str = SYSTEM,
    order_id: str | None = None,
) -> int:
    """Raise (or repeat) a critical signal of crisis `kind` with its playbook; returns the signal id."""
    signal_id = await raise_signal(
        conn,
        type=kind,
        dedup_key=dedup_key,
        now=now,
        order_id=order_id,
        details={**facts, "playbook": _playbook(crisis, kind)},
        raised_by=raised_by,
        settings=settings,
        severity="critical",
    )
    log_event(log, "crisis.raised", id=signal_id, kind=kind, by=raised_by)
    return signal_id


async def crisis_by_hand(services: Services, *, user_id: int, name: str, text: str, now: datetime) -> int:
    """`/crisis TEXT` from anyone with a role: a new critical signal with the text, the person, the time."""
    async with services.db.transaction() as conn:
        signal_id = await raise_crisis(
            conn,
            kind="crisis.manual",
            dedup_key=f"crisis.manual:{user_id}:{int(now.timestamp())}",
            now=now,
            settings=services.settings,
            crisis=services.policy.crisis,
            facts={"text": text.strip()[:MAX_CRISIS_TEXT], "by": user_id, "by_name": name},
            raised_by=str(user_id),
        )
    services.wake_sender()
    return signal_id


async def sweep_crisis_conditions(services: Services, now: datetime) -> int:
    """Raise the agents' crises the policy names: a breach storm, a severe defect on a paid order. Returns how
    many signals were raised or repeated."""
    policy = services.policy.crisis
    raised = 0
    window = timedelta(minutes=policy.breach_window_minutes)
    breaches = await crisis_store.breaches_since(services.db, now - window)
    if breach_storm(policy, breaches):
        async with services.db.transaction() as conn:
            if await live_signal_by_dedup(conn, "crisis.breach_storm") is None:
                await raise_crisis(
                    conn,
                    kind="crisis.breach_storm",
                    dedup_key="crisis.breach_storm",
                    now=now,
                    settings=services.settings,
                    crisis=policy,
                    facts={"breaches": breaches, "window_minutes": policy.breach_window_minutes},
                )
                raised += 1
    if policy.paid_defect:
        for order_id in await crisis_store.defects_on_orders_in(services.db, PAID_STATUSES):
            async with services.db.transaction() as conn:
                key = f"crisis.paid_defect:{order_id}"
                if await crisis_store.ever_raised(conn, key):
                    continue
                await raise_crisis(
                    conn,
                    kind="crisis.paid_defect",
                    dedup_key=key,
                    now=now,
                    settings=services.settings,
                    crisis=policy,
                    facts={"order_id": order_id},
                    order_id=order_id,
                )
                raised += 1
    return raised
