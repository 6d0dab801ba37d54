"""The SLA watchdog (SPEC §5): a sweep over the status visits that have something due, run every minute by
the scheduler and by tests with any `now`.

Deadlines were planned when the order entered the status, under the policy then in force (sla_timers), so the
sweep reads only what is due through the next_due_at index and compares instants. One transaction per batch of
due visits (the breaches' signals, pings and violations written a few statements per batch); per visit: a
reminder to the step's owner at 80 % of the budget, a breach (one ai_sla_violations row and one
sla.breach signal), order.stuck_72h, and "still on it?" for an accepted order without progress. The marks on
the visit, the UNIQUE(timer_id, kind) violation and the signals' dedup keys make a repeated or interrupted
sweep harmless: a crash rolls the whole batch back, and the next sweep does it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from backbone.decisions import record_decision
from backbone.signals import Routing, SignalRequest, raise_signals
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from domain.signals import STILL_ON_IT_REPLY_MINUTES
from domain.sla import due_actions, still_on_it_at
from domain.statuses import Status
from keyboards import signals as cards
from storage import signals as signal_store
from storage import sla as store
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)

_BATCH = 1000


@dataclass
class SweepReport:
    visits: int = 0  # due visits looked at
    reminders: int = 0
    breaches: int = 0
    stuck: int = 0
    checkins: int = 0

    @property
    def changed(self) -> int:
        return self.reminders + self.breaches + self.stuck + self.checkins


async def sweep(services: Services, now: datetime) -> SweepReport:
    """Do everything due at `now` for every open status visit; safe to run again at any time."""
    report = SweepReport()
    after_id = 0
    while True:
        ids = await store.due_visit_ids(services.db, now, after_id=after_id, limit=_BATCH)
        if ids:
            async with services.db.transaction() as conn:
                await process_visits(conn, services, ids, now, report)
        if len(ids) < _BATCH:
            break
        after_id = ids[-1]
    if report.changed:
        services.wake_sender()
        log_event(log, "sla.sweep", **vars(report))
    return report


def _checkin_at(services: Services, entered_at: datetime) -> datetime:
    return still_on_it_at(entered_at, services.policy, services.calendar)


async def process_visit(
    conn: aiosqlite.Connection, services: Services, timer_id: int, now: datetime, report: SweepReport
) -> None:
    """Everything due for one visit, inside the caller's transaction."""
    await process_visits(conn, services, [timer_id], now, report)


async def process_visits(
    conn: aiosqlite.Connection, services: Services, timer_ids: list[int], now: datetime, report: SweepReport
) -> None:
    """Everything due for a batch of visits, inside the caller's transaction (the sweep opens one per batch):
    reminders and check-ins visit by visit, then every breach and stuck signal of the batch raised together,
    their violations and the visits' marks written in one statement each."""
    routing = Routing.from_settings(services.settings)
    signals: list[SignalRequest] = []
    violations: list[tuple[store.DueVisit, str, datetime]] = []  # visit, kind, due at; its signal follows
    progress: list[store.Progress] = []
    for visit in await store.open_visits_for_update(conn, timer_ids):
        if visit.next_due_at is None or visit.next_due_at > now:
            continue  # handled since the scan
        report.visits += 1
        actions = due_actions(
            visit,
            reminded=visit.reminded,
            breached=visit.breached,
            stuck_signalled=visit.stuck_signalled,
            now=now,
        )
        reminded_at = breached_at = stuck_at = None
        if "remind" in actions:
            await _remind(conn, visit, routing, services.policy.reminder_share, now)
            reminded_at = now
            report.reminders += 1
        if "breach" in actions:
            signals.append(_breach(visit))
            violations.append((visit, "budget", visit.breach_at))
            breached_at = now
            report.breaches += 1
        if "stuck" in actions:
            signals.append(_stuck(visit))
            violations.append((visit, "stuck_72h", visit.stuck_at))
            stuck_at = now
            report.stuck += 1
        asked = visit.checkin_asked
        if _checkin_applies(visit) and not asked and now >= _checkin_at(services, visit.entered_at):
            await _ask_checkin(conn, services, visit, routing, now)
            asked = True
            report.checkins += 1
        next_due = _next_due(
            services,
            visit,
            reminded=visit.reminded or reminded_at is not None,
            breached=visit.breached or breached_at is not None,
            stuck=visit.stuck_signalled or stuck_at is not None,
            asked=asked,
        )
        progress.append(store.Progress(visit.id, reminded_at, breached_at, stuck_at, next_due))
    if signals:
        signal_ids = await raise_signals(conn, signals, now=now, settings=services.settings)
        await store.insert_violations(
            conn,
            [
                store.NewViolation(visit, kind, due_at, signal_id)
                for (visit, kind, due_at), signal_id in zip(violations, signal_ids, strict=True)
            ],
            detected_at=now,
        )
    await store.record_progress(conn, progress)


def _checkin_applies(visit: store.DueVisit) -> bool:
    # "Still on it?" is for accepted orders, asked of the manager who accepted (who must be reachable).
    return visit.status is Status.ACCEPTED and visit.manager_telegram_id is not None


def _next_due(
    services: Services, visit: store.DueVisit, *, reminded: bool, breached: bool, stuck: bool, asked: bool
) -> datetime | None:
    pending = []
    if not breached:
        pending.append(visit.breach_at if reminded else visit.reminder_at)
    if not stuck:
        pending.append(visit.stuck_at)
    if _checkin_applies(visit) and not asked:
        pending.append(_checkin_at(services, visit.entered_at))
    return min(pending, default=None)


def _owner_chats(visit: store.DueVisit, routing: Routing) -> list[int]:
    """The step's owner: the order's manager; without a reachable one, the leads."""
    if visit.manager_telegram_id is not None:
        return [visit.manager_telegram_id]
    return routing.contacts.leads()


async def _remind(
    conn: aiosqlite.Connection, visit: store.DueVisit, routing: Routing, share: float, now: datetime
) -> None:
    chats = _owner_chats(visit, routing)
    for chat in chats:
        with in_locale(await chat_language(conn, chat, routing.default_lang)):
            text = cards.reminder_text(
                order_id=visit.order_id,
                status=str(visit.status),
                share=share,
                breach_at=visit.breach_at,
                tz=routing.tz,
            )
        await put_message(conn, chat_id=chat, ref=f"sla:{visit.id}:remind", body=text, now=now)
    await record_decision(
        conn,
        kind="auto",
        action="remind",
        reason=f"{round(share * 100)}% of the {visit.status} budget used",
        now=now,
        order_id=visit.order_id,
        details={
            "timer": visit.id,
            "status": str(visit.status),
            "to": chats,
            "breach_at": visit.breach_at.isoformat(),
        },
    )


def _facts(visit: store.DueVisit) -> dict[str, object]:
    return {
        "status": str(visit.status),
        "budget_minutes": visit.budget_minutes,
        "clock": visit.clock,
        "policy_version": visit.policy_version,
        "since": visit.entered_at.isoformat(),
        "breach_at": visit.breach_at.isoformat(),
        "manager_id": visit.manager_id,
    }


def _breach(visit: store.DueVisit) -> SignalRequest:
    return SignalRequest(
        type="sla.breach",
        dedup_key=f"sla.breach:{visit.id}",
        order_id=visit.order_id,
        details=_facts(visit),
        owner_person=visit.manager_telegram_id,
        severity=visit.severity,
    )


def _stuck(visit: store.DueVisit) -> SignalRequest:
    return SignalRequest(
        type="order.stuck_72h",
        dedup_key=f"order.stuck_72h:{visit.order_id}",
        order_id=visit.order_id,
        details=_facts(visit),
        owner_person=visit.manager_telegram_id,
    )


async def _ask_checkin(
    conn: aiosqlite.Connection, services: Services, visit: store.DueVisit, routing: Routing, now: datetime
) -> None:
    assert visit.manager_telegram_id is not None
    person = visit.manager_telegram_id
    reply_by = services.calendar.add_working_minutes(now, STILL_ON_IT_REPLY_MINUTES)
    await signal_store.insert_checkin(
        conn, timer_id=visit.id, order_id=visit.order_id, telegram_id=person, asked_at=now, reply_by=reply_by
    )
    with in_locale(await chat_language(conn, person, routing.default_lang)):
        text = cards.checkin_text(order_id=visit.order_id, reply_by=reply_by, tz=routing.tz)
        markup = cards.markup_dict(cards.checkin_keyboard(visit.id))
    await put_message(conn, chat_id=person, ref=f"checkin:{visit.id}", body=text, markup=markup, now=now)
    await record_decision(
        conn,
        kind="auto",
        action="still_on_it_asked",
        reason="accepted order without progress",
        now=now,
        order_id=visit.order_id,
        details={"timer": visit.id, "manager": person, "reply_by": reply_by.isoformat()},
    )
