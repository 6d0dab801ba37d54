"""KPI formulas (SPEC §7), the release success criteria (SPEC §8) and the weekly retrospective, as pure
functions over plain rows. `circles/sales_ops/kpi.py` feeds them from the store; docs/kpi.md states each
definition next to the function that computes it, with the edge cases decided here:

- An empty window gives None (rendered "—"), never 0: "no visit finished" is not "no visit was late".
- A visit that ends in a cancellation is not a step forward: it is left out of time_to_next_status and of
  throughput; for the breach rate it is a finished visit like any other (breached if it was still open at its
  breach deadline). Cancelled (and delivered) orders are not open: they are in none of the open-order metrics.
- An order that re-enters a status makes a new visit: each visit counts on its own in the time statistics and
  the breach rate. Throughput counts a forward move to a status once per order and window, however often.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from domain.statuses import OPEN_STATUSES, STATUS_ORDER, Status

DAY = timedelta(days=1)

# The statuses whose budgets carry severity "high" in the SPEC §5 table: the waits a client feels most.
CRITICAL_STATUSES: tuple[Status, ...] = (Status.PENDING_MANAGER, Status.INSPECTION, Status.READY_FOR_SHIPMENT)
# Open statuses in lifecycle order, for tables.
OPEN_IN_ORDER: tuple[Status, ...] = tuple(sorted(OPEN_STATUSES, key=STATUS_ORDER.__getitem__))

# Metric names, as stored in kpi_snapshots / kpi_baseline (scope: a status, a manager id or "" for the whole).
PENDING = "pending_manager_orders"
OPEN_ORDERS = "open_orders"
STUCK = "stuck_share"
TTN_MEDIAN = "time_to_next_status_median"
TTN_P90 = "time_to_next_status_p90"
BREACH_RATE = "breach_rate"
CRITICAL_BREACH_RATE = "breach_rate_critical"
BREACHES = "breaches"
THROUGHPUT = "throughput"
COVERAGE = "owner_coverage"
COMPLETENESS = "escalation_completeness"

ScopeKind = Literal["", "status", "manager"]
# Every metric with the kind of scope it is kept per ("" = one value for the whole business).
KNOWN_METRICS: dict[str, ScopeKind] = {
    PENDING: "",
    OPEN_ORDERS: "",
    STUCK: "",
    TTN_MEDIAN: "status",
    TTN_P90: "status",
    BREACH_RATE: "status",
    CRITICAL_BREACH_RATE: "",
    BREACHES: "",
    THROUGHPUT: "manager",
    COVERAGE: "",
    COMPLETENESS: "",
}
RATIO_METRICS = frozenset({STUCK, BREACH_RATE, CRITICAL_BREACH_RATE, COVERAGE, COMPLETENESS})

MetricKey = tuple[str, str]  # (metric, scope)
Metrics = Mapping[MetricKey, float | None]


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval [start, end) of time."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a window must not end before it starts")

    @classmethod
    def ending(cls, end: datetime, length: timedelta = DAY) -> Window:
        return cls(end - length, end)

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.start <= instant < self.end

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY


@dataclass(frozen=True, slots=True)
class Ratio:
    """part / whole, kept as counts so a reader sees what a percentage is made of; no whole, no value."""

    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return None if self.whole == 0 else self.part / self.whole

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(self.part + other.part, self.whole + other.whole)


@dataclass(frozen=True, slots=True)
class DurationStats:
    count: int
    median_minutes: float | None
    p90_minutes: float | None


@dataclass(frozen=True, slots=True)
class Visit:
    """One stay of an order in one status."""

    order_id: str
    status: Status
    entered_at: datetime
    left_at: datetime | None = None  # None: still there
    next_status: Status | None = None  # where it went (None while still there, or not known)
    breach_at: datetime | None = None  # the SLA deadline fixed on entry (None: no budget)
    manager_id: str | None = None  # who is credited with the move out of the visit (throughput)

    @property
    def breached(self) -> bool:
        """Still in the status at its breach deadline (leaving exactly at the deadline is on time)."""
        return self.breach_at is not None and (self.left_at is None or self.left_at > self.breach_at)

    @property
    def moved_forward(self) -> bool:
        return (
            self.next_status is not None
            and self.next_status is not Status.CANCELLED
            and STATUS_ORDER[self.next_status] > STATUS_ORDER[self.status]
        )


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An open order at the instant measured; ownership is None if not known (a day rebuilt from history).

    The store may hand `count` orders alike in everything the formulas read as one row (order_id empty,
    status_since the oldest of them), so a KPI over 15,000 open orders reads a dozen rows."""

    order_id: str
    status: Status
    status_since: datetime
    has_owner: bool | None = None
    has_next_step: bool | None = None
    overdue: bool | None = None  # past the running visit's breach deadline (None: not known)
    count: int = 1


@dataclass(frozen=True, slots=True)
class Escalation:
    """A resolved signal: the escalation of one problem to a person."""

    signal_id: int
    resolved_at: datetime
    owner_person: int | None
    deadline_at: datetime | None
    resolution: str | None

    @property
    def complete(self) -> bool:
        return (
            self.owner_person is not None
            and self.deadline_at is not None
            and bool(self.resolution and self.resolution.strip())
        )


# --- statistics ---------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    """The middle value; the mean of the two middle values for an even count; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    ordered = sorted(values)
    return float(ordered[math.ceil(share * len(ordered)) - 1])


# --- the KPIs of SPEC §7 ------------------------------------------------------------------------------------


def pending_manager_orders(open_orders: Iterable[OpenOrder]) -> int:
    return sum(order.count for order in open_orders if order.status is Status.PENDING_MANAGER)


def time_to_next_status(visits: Iterable[Visit], window: Window) -> dict[Status, DurationStats]:
    """Per open status: median and p90 minutes of the visits that ended in `window` with a move to another
    (non-cancelled) status."""
    minutes: dict[Status, list[float]] = defaultdict(list)
    for visit in visits:
        if (
            visit.left_at in window
            and visit.next_status is not None
            and visit.next_status not in (Status.CANCELLED, visit.status)
        ):
            assert visit.left_at is not None
            minutes[visit.status].append((visit.left_at - visit.entered_at) / timedelta(minutes=1))
    return {
        status: DurationStats(len(minutes[status]), median(minutes[status]), percentile(minutes[status], 0.9))
        for status in OPEN_IN_ORDER
    }


def breach_rates(visits: Iterable[Visit], window: Window) -> dict[Status, Ratio]:
    """Per open status: breached visits / visits that finished or breached in `window`."""
    parts: Counter[Status] = Counter()
    wholes: Counter[Status] = Counter()
    for visit in visits:
        breached_here = visit.breached and visit.breach_at in window
        if visit.left_at in window or breached_here:
            wholes[visit.status] += 1
            # A visit that finished here after breaching earlier is a breached visit too.
            parts[visit.status] += visit.breached
    return {status: Ratio(parts[status], wholes[status]) for status in OPEN_IN_ORDER}


def critical_breach_rate(rates: Mapping[Status, Ratio]) -> Ratio:
    """Pooled over CRITICAL_STATUSES (all their visits together, not a mean of three rates)."""
    total = Ratio(0, 0)
    for status in CRITICAL_STATUSES:
        total += rates.get(status, Ratio(0, 0))
    return total


def breaches_in(visits: Iterable[Visit], window: Window) -> int:
    """Visits whose budget ran out inside `window` (the chart's breaches per day)."""
    return sum(1 for visit in visits if visit.breached and visit.breach_at in window)


def stuck_share(open_orders: Iterable[OpenOrder], now: datetime, stuck_hours: int = 72) -> Ratio:
    """Open orders whose last status change is `stuck_hours` or more ago / open orders."""
    limit = now - timedelta(hours=stuck_hours)
    orders = list(open_orders)
    return Ratio(sum(o.count for o in orders if o.status_since <= limit), sum(o.count for o in orders))


def owner_coverage(open_orders: Iterable[OpenOrder]) -> Ratio | None:
    """Open orders with an owner and a next step / open orders; None when ownership is not known."""
    orders = list(open_orders)
    if any(order.has_owner is None or order.has_next_step is None for order in orders):
        return None
    covered = sum(o.count for o in orders if o.has_owner and o.has_next_step)
    return Ratio(covered, sum(o.count for o in orders))


@dataclass(frozen=True, slots=True)
class Queue:
    """The open orders of one status: how many, how many past their deadline, stuck, and either (stalled)."""

    status: Status
    orders: int = 0
    overdue: int = 0
    stuck: int = 0
    stalled: int = 0


def queues(open_orders: Iterable[OpenOrder], now: datetime, stuck_hours: int = 72) -> dict[Status, Queue]:
    """Per open status, in lifecycle order (empty queues included)."""
    limit = now - timedelta(hours=stuck_hours)
    counts = {status: [0, 0, 0, 0] for status in OPEN_IN_ORDER}
    for order in open_orders:
        stuck = order.status_since <= limit
        row = counts[order.status]
        row[0] += order.count
        row[1] += order.count if order.overdue else 0
        row[2] += order.count if stuck else 0
        row[3] += order.count if stuck or order.overdue else 0
    return {status: Queue(status, *row) for status, row in counts.items()}


def throughput_per_manager(visits: Iterable[Visit], window: Window) -> dict[str, float]:
    """Forward moves (not cancellations) per manager per day of `window`; a move to one status counts once per
    order. Moves of orders without a manager are not credited to anybody (see `throughput_total`)."""
    moves: dict[str, set[tuple[str, Status]]] = defaultdict(set)
    for visit in visits:
        if visit.manager_id is not None and visit.left_at in window and visit.moved_forward:
            assert visit.next_status is not None
            moves[visit.manager_id].add((visit.order_id, visit.next_status))
    days = window.days
    return {manager: len(done) / days for manager, done in sorted(moves.items())} if days else {}


def throughput_total(visits: Iterable[Visit], window: Window) -> float | None:
    """Forward moves per day of `window` over all orders, with or without a manager."""
    if not window.days:
        return None
    done = {
        (visit.order_id, visit.next_status)
        for visit in visits
        if visit.left_at in window and visit.moved_forward
    }
    return len(done) / window.days


def escalation_completeness(escalations: Iterable[Escalation], window: Window) -> Ratio:
    """Escalations resolved in `window` with an owner, a deadline and a resolution / escalations resolved."""
    resolved = [e for e in escalations if e.resolved_at in window]
    return Ratio(sum(1 for e in resolved if e.complete), len(resolved))


# --- one report over one window -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiReport:
    at: datetime
    window: Window
    pending_manager: int
    open_orders: int
    stuck: Ratio
    coverage: Ratio | None
    time_to_next: dict[Status, DurationStats]
    breach_rates: dict[Status, Ratio]
    critical_breach_rate: Ratio
    breaches: int
    queues: dict[Status, Queue]
    throughput: dict[str, float]
    throughput_total: float | None
    completeness: Ratio
    stuck_hours: int

    def metrics(self) -> dict[MetricKey, float | None]:
        """Flat (metric, scope) -> value, as snapshots and baselines store it."""
        values: dict[MetricKey, float | None] = {
            (PENDING, ""): self.pending_manager,
            (OPEN_ORDERS, ""): self.open_orders,
            (STUCK, ""): self.stuck.value,
            (COVERAGE, ""): None if self.coverage is None else self.coverage.value,
            (CRITICAL_BREACH_RATE, ""): self.critical_breach_rate.value,
            (BREACHES, ""): self.breaches,
            (THROUGHPUT, ""): self.throughput_total,
            (COMPLETENESS, ""): self.completeness.value,
        }
        for status in OPEN_IN_ORDER:
            stats = self.time_to_next[status]
            values[(TTN_MEDIAN, status.value)] = stats.median_minutes
            values[(TTN_P90, status.value)] = stats.p90_minutes
            values[(BREACH_RATE, status.value)] = self.breach_rates[status].value
        for manager, per_day in self.throughput.items():
            values[(THROUGHPUT, manager)] = per_day
        return values


def kpi_report(
    *,
    at: datetime,
    window: Window,
    open_orders: Sequence[OpenOrder],
    moves: Sequence[Visit],
    timed_visits: Sequence[Visit],
    escalations: Sequence[Escalation],
    stuck_hours: int = 72,
) -> KpiReport:
    """Every KPI of SPEC §7: `open_orders` as of `at`; `moves` = visits that ended in the window (time to next
    status, throughput); `timed_visits` = visits with their breach deadlines (breach rate); `escalations` =
    resolved signals."""
    rates = breach_rates(timed_visits, window)
    return KpiReport(
        at=at,
        window=window,
        pending_manager=pending_manager_orders(open_orders),
        open_orders=sum(order.count for order in open_orders),
        stuck=stuck_share(open_orders, at, stuck_hours),
        coverage=owner_coverage(open_orders),
        time_to_next=time_to_next_status(moves, window),
        breach_rates=rates,
        critical_breach_rate=critical_breach_rate(rates),
        breaches=breaches_in(timed_visits, window),
        queues=queues(open_orders, at, stuck_hours),
        throughput=throughput_per_manager(moves, window),
        throughput_total=throughput_total(moves, window),
        completeness=escalation_completeness(escalations, window),
        stuck_hours=stuck_hours,
    )


# --- comparisons: vs yesterday, vs the baseline -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    value: float | None
    reference: float | None

    @property
    def delta(self) -> float | None:
        if self.value is None or self.reference is None:
            return None
        return self.value - self.reference

    @property
    def relative(self) -> float | None:
        """(value - reference) / reference; None without both, or when the reference is 0."""
        delta = self.delta
        return None if delta is None or not self.reference else delta / self.reference


def average_days(days: Iterable[Metrics]) -> dict[MetricKey, float | None]:
    """The baseline from daily snapshots: per metric the mean of the days that have a value (None if none)."""
    sums: dict[MetricKey, float] = defaultdict(float)
    counts: Counter[MetricKey] = Counter()
    keys: set[MetricKey] = set()
    for day in days:
        for key, value in day.items():
            keys.add(key)
            if value is not None:
                sums[key] += value
                counts[key] += 1
    return {key: (sums[key] / counts[key] if counts[key] else None) for key in sorted(keys)}


# --- the release success criteria of SPEC §8 ----------------------------------------------------------------

CriterionKind = Literal["reduce", "below", "at_least"]


@dataclass(frozen=True, slots=True)
class CriterionRule:
    key: str
    metric: str
    kind: CriterionKind
    amount: float  # "reduce": the share to cut from the baseline; otherwise the threshold


CRITERIA: tuple[CriterionRule, ...] = (
    CriterionRule("pending_manager", PENDING, "reduce", 0.30),
    CriterionRule("stuck_share", STUCK, "reduce", 0.40),
    CriterionRule("critical_breach_rate", CRITICAL_BREACH_RATE, "below", 0.10),
    CriterionRule("owner_coverage", COVERAGE, "at_least", 1.0),
    CriterionRule("escalation_completeness", COMPLETENESS, "at_least", 1.0),
)


@dataclass(frozen=True, slots=True)
class Criterion:
    rule: CriterionRule
    baseline: float | None
    today: float | None
    target: float | None
    met: bool | None  # None: not known (no value today, or no baseline for a relative target)

    @property
    def change(self) -> Change:
        return Change(self.today, self.baseline)


def _evaluate(rule: CriterionRule, baseline: float | None, today: float | None) -> Criterion:
    if rule.kind == "reduce":
        # Rounded so that 20 * 0.7 compares as 14, not 13.999999999999998.
        target = None if baseline is None else round(baseline * (1 - rule.amount), 9)
        met = None if target is None or today is None else today <= target
    elif rule.kind == "below":
        target = rule.amount
        met = None if today is None else today < target
    else:
        target = rule.amount
        met = None if today is None else today >= target
    return Criterion(rule, baseline, today, target, met)


def success_criteria(today: Metrics, baseline: Metrics) -> list[Criterion]:
    return [
        _evaluate(rule, baseline.get((rule.metric, "")), today.get((rule.metric, ""))) for rule in CRITERIA
    ]


# --- the weekly retrospective -------------------------------------------------------------------------------


def action_helped(effect: Mapping[str, Any] | None) -> bool | None:
    """Whether a decision's observed effect (ai_decisions.effect, filled in by backbone/decisions.py) says the
    action helped: the order moved on to a status other than cancelled within the effect window. None when no
    effect is recorded (yet) or it says nothing about a move; an explicit {"helped": bool} wins."""
    if effect is None:
        return None
    helped = effect.get("helped")
    if isinstance(helped, bool):
        return helped
    if "moved_to" not in effect:
        return None
    moved_to = effect["moved_to"]
    return moved_to is not None and moved_to != Status.CANCELLED.value


@dataclass(frozen=True, slots=True)
class RetroAction:
    action: str
    kind: str  # auto | human
    effect: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class RetroSignal:
    signal_id: int
    type: str
    severity: str
    state: str
    order_id: str | None
    raised_at: datetime
    actions: tuple[RetroAction, ...] = ()

    @property
    def helped(self) -> bool | None:
        """True if an action helped; False if actions had effects, none helping; None if nothing is known."""
        verdicts = [action_helped(a.effect) for a in self.actions]
        if any(v is True for v in verdicts):
            return True
        if any(v is False for v in verdicts):
            return False
        return None


@dataclass(frozen=True, slots=True)
class RetroGroup:
    type: str
    signals: tuple[RetroSignal, ...]
    actions: dict[str, int] = field(default_factory=dict)  # action -> times taken

    @property
    def helped(self) -> Ratio:
        """Signals whose action helped / signals with an action whose effect is known."""
        verdicts = [s.helped for s in self.signals if s.helped is not None]
        return Ratio(sum(1 for v in verdicts if v), len(verdicts))

    @property
    def without_action(self) -> int:
        return sum(1 for s in self.signals if not s.actions)


def retrospective(signals: Iterable[RetroSignal]) -> list[RetroGroup]:
    """Signals grouped by type, the most frequent type first (ties by name)."""
    by_type: dict[str, list[RetroSignal]] = defaultdict(list)
    for signal in signals:
        by_type[signal.type].append(signal)
    groups = []
    for type_, members in by_type.items():
        members.sort(key=lambda s: (s.raised_at, s.signal_id))
        actions = Counter(a.action for s in members for a in s.actions)
        groups.append(RetroGroup(type_, tuple(members), dict(actions.most_common())))
    groups.sort(key=lambda g: (-len(g.signals), g.type))
    return groups


def retro_helped(groups: Iterable[RetroGroup]) -> Ratio:
    total = Ratio(0, 0)
    for group in groups:
        total += group.helped
    return total
