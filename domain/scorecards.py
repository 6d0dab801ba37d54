"""AI-РОМ (SPEC §12): one scorecard per manager over a window, the reason each SLA breach happened, and when a
manager is slipping. Pure functions over plain rows; `circles/sales_ops/scorecards.py` feeds them.

SLA-failure reasons, classified from the data (first rule that applies):
- `no_one_on_shift`: a breach waiting for a manager (pending_manager) with no offer made before the deadline;
- `waiting_on_client`: a breach in awaiting_client;
- `waiting_on_seller`: a breach in accepted (the inspection is arranged with the seller) or in_transit (the
  seller or the carrier ships);
- `manager_overloaded`: the manager held as many open visits as their capacity, or more, at the deadline;
- `manager_slow`: anything else (offers missed, an inspection or shipment not done in time).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from domain.kpi import Window, median, percentile
from domain.statuses import Status

Reason = Literal[
    "no_one_on_shift", "manager_overloaded", "manager_slow", "waiting_on_client", "waiting_on_seller"
]
REASONS: tuple[Reason, ...] = (
    "no_one_on_shift",
    "manager_overloaded",
    "manager_slow",
    "waiting_on_client",
    "waiting_on_seller",
)


@dataclass(frozen=True, slots=True)
class Offer:
    manager_id: str
    order_id: str
    state: str  # offered | accepted | declined | expired | released
    offered_at: datetime
    answered_at: datetime | None
    decline_reason: str | None
    outside_hours: bool  # offered outside the manager's working hours


@dataclass(frozen=True, slots=True)
class Breach:
    order_id: str
    status: Status
    breach_at: datetime
    manager_id: str | None
    offered_before: bool  # pending_manager: an offer was made before the deadline
    open_visits: int | None  # the manager's open visits at the deadline
    capacity: int | None


@dataclass(frozen=True, slots=True)
class ChecklistWork:
    manager_id: str
    fails_undocumented: int  # fails without a note or without a photo
    resubmissions: int  # orders sent back from the client to inspection
    inspection_minutes: Sequence[float]  # inspection visits finished in the window


def classify(breach: Breach) -> Reason:
    if breach.status is Status.PENDING_MANAGER and not breach.offered_before:
        return "no_one_on_shift"
    if breach.status is Status.AWAITING_CLIENT:
        return "waiting_on_client"
    if breach.status in (Status.ACCEPTED, Status.IN_TRANSIT):
        return "waiting_on_seller"
    if breach.open_visits is not None and breach.capacity and breach.open_visits >= breach.capacity:
        return "manager_overloaded"
    return "manager_slow"


@dataclass(frozen=True, slots=True)
class Scorecard:
    manager_id: str
    name: str
    offers: int
    accepted: int
    accept_median_min: float | None
    accept_p90_min: float | None
    missed: int
    declined: int
    decline_reasons: dict[str, int]
    breaches_by_stage: dict[str, int]
    visits: int  # SLA visits finished or breached in the window on the manager's orders
    breach_rate: float | None
    fails_undocumented: int
    resubmissions: int
    inspection_median_min: float | None
    throughput_per_day: float | None
    outside_hours: int  # offers that reached the manager outside their working hours
    reasons: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "offers": self.offers,
            "time_to_accept_median_min": _r(self.accept_median_min),
            "time_to_accept_p90_min": _r(self.accept_p90_min),
            "offers_missed": self.missed,
            "offers_declined": self.declined,
            "decline_reasons": self.decline_reasons,
            "breaches_by_stage": self.breaches_by_stage,
            "breach_rate": None if self.breach_rate is None else round(self.breach_rate, 4),
            "checklist_fails_undocumented": self.fails_undocumented,
            "checklist_resubmissions": self.resubmissions,
            "inspection_median_min": _r(self.inspection_median_min),
            "throughput_per_day": _r(self.throughput_per_day),
            "interruptions_outside_hours": self.outside_hours,
            "sla_failure_reasons": self.reasons,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(minutes=1)


def scorecards(
    *,
    window: Window,
    names: dict[str, str],
    offers: Iterable[Offer],
    breaches: Iterable[Breach],
    visits: dict[str, int],
    checklists: Iterable[ChecklistWork],
    throughput: dict[str, float],
) -> list[Scorecard]:
    """One scorecard per manager who had anything in the window (or is named), by name."""
    by_manager: dict[str, list[Offer]] = defaultdict(list)
    for offer in offers:
        if offer.offered_at in window:
            by_manager[offer.manager_id].append(offer)
    breaches_of: dict[str, list[Breach]] = defaultdict(list)
    for breach in breaches:
        if breach.manager_id is not None and breach.breach_at in window:
            breaches_of[breach.manager_id].append(breach)
    work = {c.manager_id: c for c in checklists}
    managers = sorted(
        set(names) | set(by_manager) | set(breaches_of) | set(work), key=lambda m: (names.get(m, m), m)
    )
    cards = []
    for manager in managers:
        mine = by_manager.get(manager, [])
        waits = [
            _minutes(o.offered_at, o.answered_at) for o in mine if o.state == "accepted" and o.answered_at
        ]
        declined = [o for o in mine if o.state == "declined"]
        own_breaches = breaches_of.get(manager, [])
        checklist = work.get(manager)
        seen = visits.get(manager, 0)
        cards.append(
            Scorecard(
                manager_id=manager,
                name=names.get(manager, manager),
                offers=len(mine),
                accepted=len(waits),
                accept_median_min=median(waits),
                accept_p90_min=percentile(waits, 0.9),
                missed=sum(1 for o in mine if o.state == "expired"),
                declined=len(declined),
                decline_reasons=dict(Counter(o.decline_reason or "—" for o in declined).most_common()),
                breaches_by_stage=dict(Counter(b.status.value for b in own_breaches).most_common()),
                visits=seen,
                breach_rate=len(own_breaches) / seen if seen else None,
                fails_undocumented=checklist.fails_undocumented if checklist else 0,
                resubmissions=checklist.resubmissions if checklist else 0,
                inspection_median_min=median(checklist.inspection_minutes) if checklist else None,
                throughput_per_day=throughput.get(manager),
                outside_hours=sum(1 for o in mine if o.outside_hours),
                reasons=dict(Counter(classify(b) for b in own_breaches).most_common()),
            )
        )
    return cards


def reason_shares(breaches: Iterable[Breach]) -> dict[str, dict[str, float]]:
    """Per ISO week (Monday's date, UTC) the share of each failure reason among that week's breaches."""
    weeks: dict[str, Counter[str]] = defaultdict(Counter)
    for breach in breaches:
        monday = (breach.breach_at - timedelta(days=breach.breach_at.weekday())).date().isoformat()
        weeks[monday][classify(breach)] += 1
    return {
        week: {
            reason: round(counts[reason] / sum(counts.values()), 4) for reason in REASONS if counts[reason]
        }
        for week, counts in sorted(weeks.items())
    }


@dataclass(frozen=True, slots=True)
class Slipping:
    manager_id: str
    rule: Literal["misses", "breach_rate"]
    value: float  # misses that day, or the manager's breach rate
    team: float | None  # the team's breach rate (breach_rate rule)
    day: date | None  # the day of the misses


def slipping(
    cards: Sequence[Scorecard],
    misses_by_day: dict[tuple[str, date], int],
    *,
    misses_per_day: int,
    breach_rate_factor: float,
    min_visits: int,
) -> list[Slipping]:
    """Managers slipping: `misses_per_day` or more missed offers in one local day, or a breach rate at least
    `breach_rate_factor` × the team's (pooled over everyone) with `min_visits` visits or more."""
    found = [
        Slipping(manager, "misses", count, None, day)
        for (manager, day), count in sorted(misses_by_day.items())
        if count >= misses_per_day
    ]
    visits = sum(c.visits for c in cards)
    breached = sum(sum(c.breaches_by_stage.values()) for c in cards)
    team = breached / visits if visits else None
    if team:
        for card in cards:
            if (
                card.visits >= min_visits
                and card.breach_rate is not None
                and card.breach_rate >= breach_rate_factor * team
            ):
                found.append(Slipping(card.manager_id, "breach_rate", card.breach_rate, team, None))
    return found


def outliers(cards: Sequence[Scorecard], factor: float = 2.0) -> list[Scorecard]:
    """Scorecards standing out for the leads' digest: missed offers, or a breach rate `factor` × the team's
    (with 3 visits or more)."""
    visits = sum(c.visits for c in cards)
    team = sum(sum(c.breaches_by_stage.values()) for c in cards) / visits if visits else None
    return [
        c
        for c in cards
        if c.missed
        or (team and c.breach_rate is not None and c.breach_rate >= factor * team and c.visits >= 3)
    ]
