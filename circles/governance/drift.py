"""Process drift (AI-GRC): status changes made in the CRM that the documented process (SPEC §2, §4, §6) does
not allow: a transition our table forbids, a status set back, awaiting_client without a complete checklist,
a cancel without an admin's approval. Each is stored once (event and rule) in process_drift, counted as
`doc_to_process_drift_count`, and raised as `governance.process_drift` to the admins, naming the order and
the rule (one live signal per order and rule; a repeat updates it).

`detect_drift` reads the CRM's events after its own cursor, so it can run every minute; events older than a
day when first seen are history from before the bot watched (a first sync), not drift it can act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosqlite

from backbone.signals import raise_signal
from bot.logs import log_event
from bot.services import Services
from domain.checklist import is_complete
from domain.governance import Change, DriftRule, drift_rules
from domain.statuses import Status
from storage import checklist as checklist_store
from storage import crm
from storage import governance as store
from storage import orders as order_store

log = logging.getLogger(__name__)

CURSOR = "governance.drift"
HISTORY = timedelta(days=1)
_BATCH = 2000


@dataclass
class DriftReport:
    seen: int = 0  # CRM events read
    drift: list[tuple[str, DriftRule]] = field(default_factory=list)  # (order, rule) newly stored


def _status(name: str | None) -> Status | None:
    try:
        return None if name is None else Status(name)
    except ValueError:
        return None


async def detect_drift(services: Services, now: datetime) -> DriftReport:
    report = DriftReport()
    async with services.db.transaction() as conn:
        cursor = await crm.get_cursor(conn, CURSOR)
        after = int(cursor or 0)
        while True:
            events = await store.crm_events_after(conn, after, _BATCH)
            if not events:
                break
            after = events[-1].id
            report.seen += len(events)
            fresh = [e for e in events if e.at >= now - HISTORY]
            approved = await store.approved_cancels(conn, sorted({e.order_id for e in fresh}))
            for event in fresh:
                to_status = _status(event.to_status)
                if to_status is None:
                    continue
                complete = True
                if to_status is Status.AWAITING_CLIENT:
                    order = await order_store.get_order(conn, event.order_id)
                    answers = await checklist_store.answers(conn, event.order_id)
                    complete = is_complete(answers, is_ebike=bool(order and order.is_ebike))
                change = Change(_status(event.from_status), to_status, complete, event.order_id in approved)
                for rule in drift_rules(change):
                    ids = await store.add_drift(
                        conn,
                        [
                            (
                                event.id,
                                event.order_id,
                                rule,
                                event.from_status,
                                event.to_status,
                                event.actor,
                                event.at,
                            )
                        ],
                        now,
                    )
                    if ids:
                        signal_id = await _signal(services, conn, event, rule, now)
                        await store.set_drift_signal(conn, ids[0], signal_id)
                        report.drift.append((event.order_id, rule))
        await crm.set_cursor(conn, CURSOR, str(after), now)
    if report.drift:
        services.wake_sender()
        log_event(log, "governance.drift", events=report.seen, drift=len(report.drift))
    return report


async def _signal(
    services: Services, conn: aiosqlite.Connection, event: store.CrmEvent, rule: DriftRule, now: datetime
) -> int:
    settings = services.settings
    admins = list(settings.admin_ids)
    chats = [settings.admin_chat_id] if settings.admin_chat_id is not None else admins
    return await raise_signal(
        conn,
        type="governance.process_drift",
        dedup_key=f"drift:{rule}:{event.order_id}",
        now=now,
        order_id=event.order_id,
        details={
            "rule": rule,
            "from": event.from_status or "-",
            "to": event.to_status,
            "actor": event.actor,
            "at": event.at.isoformat(),
        },
        raised_by="governance",
        owner_person=admins[0] if admins else None,
        settings=settings,
        notify=chats,
    )
