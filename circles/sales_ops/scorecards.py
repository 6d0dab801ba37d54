"""AI-РОМ: manager scorecards over a window, the SLA-failure reasons with their weekly shares, and the watch
that tells the leads when a manager is slipping (three missed offers in a day, or a breach rate far above the
team's; thresholds in policy.toml [scorecards]). `/scorecard [MANAGER]` and `/me` show these.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from backbone.signals import raise_signal
from bot.logs import log_event
from bot.services import Services
from domain.kpi import Visit, Window, throughput_per_manager
from domain.scorecards import (
    Breach,
    ChecklistWork,
    Offer,
    Scorecard,
    Slipping,
    classify,
    outliers,
    reason_shares,
    scorecards,
    slipping,
)
from domain.statuses import Status
from storage import kpi as kpi_store
from storage import money
from storage import scorecards as store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorecardReport:
    window: Window
    cards: list[Scorecard]
    breaches: list[Breach]
    reasons: dict[str, dict[str, float]]  # week -> reason -> share
    offers: list[Offer]


async def scorecard_report(
    services: Services, window: Window, moves: Sequence[Visit] | None = None
) -> ScorecardReport:
    """Every manager's scorecard over `window`; `moves` (visits that ended in the window) if read already."""
    db = services.db
    calendar = services.calendar
    if moves is None:
        moves = await kpi_store.finished_visits(db, window)
    offer_rows = await store.offers(db, window)
    offers = [
        Offer(m, o, state, at, answered, reason, not calendar.is_working(at))
        for m, o, state, at, answered, reason in offer_rows
    ]
    breaches = await store.breaches(db, window)
    inspections: dict[str, list[float]] = {}
    resubmissions: Counter[str] = Counter()
    for visit in moves:
        if visit.manager_id is None or visit.left_at is None:
            continue
        if visit.status is Status.INSPECTION and visit.moved_forward:
            minutes = (visit.left_at - visit.entered_at) / timedelta(minutes=1)
            inspections.setdefault(visit.manager_id, []).append(minutes)
        elif visit.status is Status.AWAITING_CLIENT and visit.next_status is Status.INSPECTION:
            resubmissions[visit.manager_id] += 1  # the client sent it back: the inspection is done again
    fails = await store.checklist_fails(db, window)
    checklists = [
        ChecklistWork(m, fails.get(m, 0), resubmissions[m], inspections.get(m, []))
        for m in set(fails) | set(inspections) | set(resubmissions)
    ]
    cards = scorecards(
        window=window,
        names=await kpi_store.manager_names(db),
        offers=offers,
        breaches=breaches,
        visits=await store.visits_per_manager(db, window),
        checklists=checklists,
        throughput=throughput_per_manager(moves, window),
    )
    return ScorecardReport(window, cards, breaches, reason_shares(breaches), offers)


async def scorecards_json(
    services: Services, window: Window, moves: Sequence[Visit] | None = None
) -> dict[str, Any]:
    report = await scorecard_report(services, window, moves)
    return {
        "managers": {card.manager_id: card.as_json() for card in report.cards},
        "sla_failure_reasons": dict(Counter(classify(b) for b in report.breaches).most_common()),
        "sla_failure_reason_shares_by_week": report.reasons,
    }


Shares = dict[str, dict[str, float]]  # week -> reason -> share


async def leads_rom(services: Services, now: datetime) -> tuple[list[Scorecard], Shares]:
    """The leads' digest: the scorecards standing out over the policy's window, and the failure reasons'
    shares per week."""
    report = await scorecard_report(
        services, Window.ending(now, timedelta(days=services.policy.scorecards.window_days))
    )
    return outliers(report.cards, services.policy.scorecards.breach_rate_factor), report.reasons


def misses_by_day(offers: Sequence[Offer], services: Services) -> dict[tuple[str, date], int]:
    tz = services.settings.tz
    counts: Counter[tuple[str, date]] = Counter()
    for offer in offers:
        if offer.state == "expired" and offer.answered_at is not None:
            counts[(offer.manager_id, offer.answered_at.astimezone(tz).date())] += 1
    return dict(counts)


async def watch(services: Services, now: datetime) -> list[Slipping]:
    """Raise `sales_ops.manager_slipping` to the leads for each manager slipping now (once per manager and day
    for the misses, once per manager and week for the breach rate)."""
    policy = services.policy.scorecards
    report = await scorecard_report(services, Window.ending(now, timedelta(days=policy.window_days)))
    today = now.astimezone(services.settings.tz).date()
    misses = {key: n for key, n in misses_by_day(report.offers, services).items() if key[1] == today}
    found = slipping(
        report.cards,
        misses,
        misses_per_day=policy.misses_per_day,
        breach_rate_factor=policy.breach_rate_factor,
        min_visits=policy.min_visits,
    )
    if not found:
        return []
    names = {card.manager_id: card.name for card in report.cards}
    week = today.isocalendar()
    keys = {f"manager:{s.manager_id}" for s in found}
    known = await money.findings_of(services.db, keys)
    raised: list[Slipping] = []
    async with services.db.transaction() as conn:
        for slip in found:
            when = slip.day.isoformat() if slip.day else f"{week.year}-W{week.week:02d}"
            subject, rule = f"manager:{slip.manager_id}", f"slipping:{slip.rule}:{when}"
            if (subject, rule) in known:
                continue
            signal_id = await raise_signal(
                conn,
                type="sales_ops.manager_slipping",
                dedup_key=f"sales_ops.manager_slipping:{slip.manager_id}:{slip.rule}:{when}",
                now=now,
                details={
                    "manager_id": slip.manager_id,
                    "manager": names.get(slip.manager_id, slip.manager_id),
                    "rule": slip.rule,
                    "value": round(slip.value, 4),
                    "team": None if slip.team is None else round(slip.team, 4),
                    "day": None if slip.day is None else slip.day.isoformat(),
                },
                raised_by="rom",
                settings=services.settings,
                policy=services.policy,
            )
            await money.save_finding(conn, subject, rule, slip.value, [], now, signal_id)
            raised.append(slip)
    if raised:
        services.wake_sender()
        log_event(log, "scorecards.slipping", managers=len(raised))
    return raised
