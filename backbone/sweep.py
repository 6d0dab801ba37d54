"""The escalation sweep (every minute): route unrouted signals, climb the ladder, end snoozes, ask
"still on it?", turn unanswered order check-ins into order.no_progress, flag missing postmortems."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import aiosqlite

from backbone.decisions import SYSTEM, record_decision
from backbone.signals import Routing, change_signal, escalate, put_rendered, raise_signal, reopen, still_ref
from bot.logs import log_event
from bot.services import Services
from domain.orchestration import signal_overdue
from domain.signals import Signal, chats_for
from keyboards import signals as cards
from storage import signals as store

log = logging.getLogger(__name__)

_SWEEP_BATCH = 500


@dataclass
class SignalSweepReport:
    routed: int = 0
    escalated: int = 0
    asked: int = 0
    unacknowledged: int = 0
    snooze_ended: int = 0
    no_progress: int = 0
    postmortems_missing: int = 0

    @property
    def changed(self) -> int:
        return sum(vars(self).values())


async def sweep_signals(services: Services, now: datetime) -> SignalSweepReport:
    """The escalation sweep (every minute): route unrouted signals; escalate open ones past their deadline;
    end snoozes; ask "still on it?" of acknowledged ones without progress and, without an answer,
    unacknowledge and escalate; turn unanswered order check-ins into order.no_progress; flag critical signals
    without a postmortem after the policy's postmortem_due_hours. One transaction per signal; each step is
    guarded against repeats."""
    routing = Routing.from_settings(services.settings)
    report = SignalSweepReport()
    db = services.db
    for unrouted in await store.unrouted_signals(db, _SWEEP_BATCH):
        chats = chats_for(unrouted.severity, unrouted.level, unrouted.owner_person, routing.contacts)
        if chats:
            async with db.transaction() as conn:
                # Routed now: the contacts in force are frozen on it from here on.
                await change_signal(conn, unrouted, routing, now, add=chats, contacts=routing.contacts)
            report.routed += 1
    for due in await store.due_signals(db, now, _SWEEP_BATCH):
        async with db.transaction() as conn:
            signal = await store.get_signal(conn, due.id)
            if signal is None or signal.state == "resolved" or signal.deadline_at > now:
                continue
            await _sweep_one(conn, services, signal, routing, now, report)
    for checkin in await store.unanswered_checkins(db, now, _SWEEP_BATCH):
        async with db.transaction() as conn:
            signal_id = await raise_signal(
                conn,
                type="order.no_progress",
                dedup_key=f"order.no_progress:{checkin.timer_id}",
                now=now,
                order_id=checkin.order_id,
                settings=services.settings,
                policy=services.policy,
                details={"manager": checkin.telegram_id, "asked_at": checkin.asked_at.isoformat()},
            )
            await store.set_checkin_signal(conn, checkin.timer_id, signal_id)
        report.no_progress += 1
    due_before = now - timedelta(hours=services.policy.signals.postmortem_due_hours)
    for critical in await store.critical_without_postmortem(db, due_before, _SWEEP_BATCH):
        if not critical.kind.postmortem:  # settled by a human decision (a sanctions hit): no postmortem asked
            async with db.transaction() as conn:
                await store.update_signal(conn, critical.id, postmortem_flagged_at=now)
            continue
        async with db.transaction() as conn:
            await raise_signal(
                conn,
                type="postmortem.missing",
                dedup_key=f"postmortem.missing:{critical.id}",
                now=now,
                order_id=critical.order_id,
                owner_person=critical.resolved_by,
                settings=services.settings,
                policy=services.policy,
                details={"signal": critical.id, "type": critical.type},
            )
            await store.update_signal(conn, critical.id, postmortem_flagged_at=now)
        report.postmortems_missing += 1
    if report.changed:
        services.wake_sender()
        log_event(log, "signals.sweep", **vars(report))
    return report


async def _sweep_one(
    conn: aiosqlite.Connection,
    services: Services,
    signal: Signal,
    routing: Routing,
    now: datetime,
    report: SignalSweepReport,
) -> None:
    if signal_overdue(state=signal.state, deadline=signal.deadline_at, now=now):
        if (
            await escalate(
                conn,
                signal,
                routing,
                now,
                actor=SYSTEM,
                kind="auto",
                reason="not acknowledged by the deadline",
            )
            is not None
        ):
            report.escalated += 1
        return
    if signal.snoozed_until is not None:
        await reopen(conn, signal, routing, now, snoozed_until=None)
        await record_decision(
            conn,
            kind="auto",
            action="snooze_ended",
            reason="the snooze is over",
            now=now,
            signal_id=signal.id,
            order_id=signal.order_id,
        )
        report.snooze_ended += 1
        return
    if signal.still_on_it_asked_at is not None:
        reopened = replace(signal, state="open")
        escalated = await escalate(
            conn,
            reopened,
            routing,
            now,
            actor=SYSTEM,
            kind="auto",
            reason='no answer to "still on it?"',
            unacknowledge=True,
        )
        if escalated is None:  # already at the top: unacknowledge it there
            await reopen(conn, signal, routing, now, still_on_it_asked_at=None)
        report.unacknowledged += 1
        return
    owner = signal.owner_person or signal.acked_by
    if owner is None:
        return
    reply_by = services.calendar.add_working_minutes(now, signal.ladder.still_on_it_reply_minutes)
    await store.update_signal(conn, signal.id, still_on_it_asked_at=now, deadline_at=reply_by)
    await put_rendered(
        conn,
        routing,
        owner,
        still_ref(signal.id, now),
        now,
        lambda: (
            cards.still_on_it_text(signal, reply_by=reply_by, tz=routing.tz),
            cards.still_on_it_keyboard(signal.id),
        ),
    )
    await record_decision(
        conn,
        kind="auto",
        action="still_on_it_asked",
        reason="no progress since the last check-in",
        now=now,
        signal_id=signal.id,
        order_id=signal.order_id,
        details={"owner": owner},
    )
    report.asked += 1
