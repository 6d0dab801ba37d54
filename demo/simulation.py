"""The discrete-event simulation behind `main.py simulate`: one stream of orders worked by one team in two
ways, "as today" and with the bot, and the release's success criteria (SPEC §8) predicted for both.

Pure: parameters and a seed in, series and criteria out; no I/O, no clock, no Telegram. It runs the domain
code the bot runs: working time from `domain.calendar`, budgets and timeouts from `domain.policy`, status
visits planned by `domain.sla`, legal moves from `domain.statuses`, and the orchestration's decisions from
`domain.orchestration`, the functions the bot's agents call: who gets each waiting order (`pick_managers`),
when an offer expires (`offer_expired`), what the SLA sweep does at an instant (`domain.sla.due_actions`),
when a signal climbs the ladder and to whom (`signal_overdue`, `next_rung`). The KPIs and criteria come from
`domain.kpi` through `demo.measure`. What stays here is the model of people and time.

People are either habits (below) or fitted to a CRM history (`SimParams.fitted`, demo.calibration): then
as today, whoever the history says picks an order up does so after a time drawn from their own pick-up times
(by working hours or not, and by how many orders were waiting), stages take the history's times, clients
withdraw and cancel as often as they did, and a client's complaint is recorded as often as escalations were.

The model (what the numbers rest on):
- Orders arrive as a Poisson process shaped by weekday and hour weights, or at the instants of a CRM history.
- Each order carries its own random draws (work time, whether a step gets forgotten and for how long, whether
  the client cancels), so both policies see the same orders with the same luck and differ only in what
  they do.
- Managers have habits: how fast they answer a card, how often they look at the shared queue, how fast they
  work, how often they forget a step, ignore or decline a card, and act on a reminder.
- "As today": managers take the oldest orders from a shared queue when they happen to look; nobody watches the
  budgets; a forgotten step lasts until the manager remembers, or until a client who has heard nothing for
  `stuck_hours` calls and a lead chases it (an informal escalation: no deadline, no recorded resolution).
- "Bot": every order is offered at once to the least-loaded manager on shift; an unanswered offer expires
  after the acceptance timeout and goes to the next one; a decline reassigns at once; the step's owner is
  reminded at the policy's share of the budget; a breach or a 72 h stall raises a signal that a lead
  acknowledges (or that climbs the ladder past its deadline), and the push ends a forgotten step.
- Not modelled: "still on it?" prompts, shift overrides, leave, checklist refusals, CRM outages.
- The criteria are measured over `days` after `warmup_days` (both policies start with no orders): the queue,
  stuck share and owner coverage as means of samples every `sample_minutes` of working time, averaged per day
  and then over the days as the bot's baseline is (`kpi.average_days`).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeVar

from demo.calibration import Fitted, draw_manager, fitted_cancel, manager_shares, stage_minutes, typical
from demo.measure import DayStats, Sample, measure_days, midnights, sample_times
from domain import kpi
from domain.calendar import WorkingCalendar
from domain.dispatch import DispatchBoard, ManagerSnapshot
from domain.kpi import Criterion, DurationStats, MetricKey
from domain.orchestration import next_rung, offer_expired, pick_managers, signal_overdue
from domain.policy import Clock, Policy, Severity
from domain.signals import Ladder, Level, escalate_level, initial_level, response_deadline
from domain.sla import VisitDeadlines, accept_deadline, due_actions, plan_visit
from domain.statuses import FINAL_STATUSES, Status, check_transition, next_steps

PolicyName = Literal["as_today", "bot"]
T = TypeVar("T")
POLICY_NAMES: tuple[PolicyName, ...] = ("as_today", "bot")

# --- people -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Habit:
    name: str
    response_median: float  # working minutes until an order card is answered
    look_median: float  # working minutes between two looks at the shared queue ("as today")
    work_speed: float  # multiplies the working time the manager's steps take
    stall_share: float  # share of the manager's steps forgotten until somebody asks
    ignore_share: float  # share of order cards never answered
    decline_share: float  # share of order cards declined ("as today": orders skipped in the queue)
    heed_share: float  # share of reminders and pings the manager acts on
    capacity_factor: float  # capacity relative to the team's base capacity


HABITS: dict[str, Habit] = {
    habit.name: habit
    for habit in (
        Habit("fast", 3, 20, 0.8, 0.05, 0.0, 0.02, 0.9, 1.25),
        Habit("steady", 6, 40, 1.0, 0.10, 0.02, 0.03, 0.8, 1.0),
        Habit("slow", 10, 80, 1.4, 0.20, 0.05, 0.03, 0.6, 0.75),
        Habit("ignores", 8, 120, 1.1, 0.25, 0.45, 0.02, 0.5, 1.0),
        Habit("declines", 5, 45, 1.0, 0.10, 0.02, 0.35, 0.8, 1.0),
    )
}
# A team of six is one of each habit and a second slow one; bigger teams repeat the pattern.
TEAM_PATTERN = ("fast", "steady", "slow", "ignores", "declines", "slow")
# Base capacity: open orders for about twelve days of arrivals spread over the team (in_transit counts).
CAPACITY_DAYS = 12
RESPONSE_SIGMA = 0.9  # lognormal spread of answer times and look intervals
LEAD_PUSH_SHARE = 0.9  # a lead's push ends a forgotten manager step this often


@dataclass(frozen=True)
class ManagerProfile:
    manager_id: str
    habit: str  # a key of HABITS
    capacity: int

    def __post_init__(self) -> None:
        if self.habit not in HABITS:
            known = ", ".join(HABITS)
            raise ValueError(f"manager {self.manager_id}: unknown habit {self.habit!r} (one of {known})")
        if self.capacity < 1:
            raise ValueError(f"manager {self.manager_id}: capacity must be at least 1")


def default_team(
    managers: int, orders_per_day: float, capacity: int | None = None
) -> tuple[ManagerProfile, ...]:
    """`managers` people with habits from TEAM_PATTERN; capacity given, or sized to the arrival rate."""
    if managers < 1:
        raise ValueError("at least one manager is needed")
    base = capacity if capacity is not None else max(10, math.ceil(orders_per_day * CAPACITY_DAYS / managers))
    team = []
    for index in range(managers):
        habit = TEAM_PATTERN[index % len(TEAM_PATTERN)]
        own = base if capacity is not None else max(1, round(base * HABITS[habit].capacity_factor))
        team.append(ManagerProfile(f"m{index + 1}", habit, own))
    return tuple(team)


# --- the work of an order -----------------------------------------------------------------------------------

StepOwner = Literal["manager", "client", "carrier"]


@dataclass(frozen=True)
class Step:
    """How long an order's stay in one status takes, and what asking its owner does."""

    status: Status
    owner: StepOwner
    clock: Clock
    median: float  # minutes on `clock` when nobody forgets the step
    sigma: float
    stall_share: float | None  # share of forgotten or stuck steps; None: the manager's habit says
    stall_median: float  # extra minutes a forgotten step takes
    nudge_median: float  # minutes on `clock` until the step moves once its owner acts on an ask
    nudge_share: float | None  # share of asks that work; None: the manager's heed share


STEPS: dict[Status, Step] = {
    step.status: step
    for step in (
        Step(Status.ACCEPTED, "manager", "working", 60, 0.8, None, 12 * 60, 30, None),
        Step(Status.INSPECTION, "manager", "working", 5 * 60, 0.6, None, 36 * 60, 120, None),
        Step(Status.AWAITING_CLIENT, "client", "calendar", 18 * 60, 0.8, 0.25, 60 * 60, 4 * 60, 0.7),
        Step(Status.READY_FOR_SHIPMENT, "manager", "working", 4 * 60, 0.7, None, 36 * 60, 60, None),
        Step(Status.IN_TRANSIT, "carrier", "calendar", 48 * 60, 0.35, 0.05, 4 * 24 * 60, 24 * 60, 0.5),
    )
}
CANCEL_SHARE = 0.07  # clients who say no after the inspection report
STALL_SIGMA = 0.6
# The stages whose budgets are "high" in SPEC §5: the breach-rate criterion is measured on them.
CRITICAL_STAGES: frozenset[Status] = frozenset(
    {Status.PENDING_MANAGER, Status.INSPECTION, Status.READY_FOR_SHIPMENT}
)

# --- parameters ---------------------------------------------------------------------------------------------

DEFAULT_WEEKDAYS = (1.2, 1.1, 1.0, 1.0, 1.0, 0.9, 0.8)  # Monday first
DEFAULT_HOURS = (  # local hours 0..23: a late-morning and an evening peak of web orders
    0.3,
    0.2,
    0.1,
    0.1,
    0.1,
    0.2,
    0.4,
    0.7,
    1.0,
    1.4,
    1.6,
    1.6,
    1.5,
    1.4,
    1.3,
    1.2,
    1.1,
    1.1,
    1.2,
    1.4,
    1.5,
    1.3,
    0.9,
    0.5,
)


@dataclass(frozen=True)
class ArrivalProfile:
    orders_per_day: float
    weekday_weights: tuple[float, ...] = DEFAULT_WEEKDAYS
    hour_weights: tuple[float, ...] = DEFAULT_HOURS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.orders_per_day) and self.orders_per_day > 0):
            raise ValueError("orders per day must be a number above 0")
        for name, weights, size in (("weekday", self.weekday_weights, 7), ("hour", self.hour_weights, 24)):
            if len(weights) != size:
                raise ValueError(f"{name} weights: expected {size} numbers, got {len(weights)}")
            if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"{name} weights must be numbers >= 0 with a positive sum")


@dataclass(frozen=True)
class SimParams:
    seed: int
    days: int  # measured days
    start: date  # the first measured local day
    arrivals: ArrivalProfile
    managers: tuple[ManagerProfile, ...]
    warmup_days: int = 7  # simulated before `start` and not measured: both policies start with no orders
    replay: tuple[datetime, ...] = ()  # arrival instants from a CRM history instead of the profile
    lead_response_median: float = 20.0  # working minutes until a lead acts on a ping
    owner_response_median: float = 60.0
    picks_per_look: int = 3  # "as today": orders a manager takes from the queue in one look
    complaint_share: float = 0.5  # "as today": clients of a quiet order who call after stuck_hours
    sample_minutes: int = 30
    fitted: Fitted | None = None  # people and time fitted to a history (demo.calibration) instead of habits

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 366:
            raise ValueError("days must be between 1 and 366")
        if not 0 <= self.warmup_days <= 60:
            raise ValueError("warm-up days must be between 0 and 60")
        if not self.managers:
            raise ValueError("at least one manager is needed")
        if len({m.manager_id for m in self.managers}) != len(self.managers):
            raise ValueError("manager ids must be unique")
        if self.sample_minutes < 1 or self.picks_per_look < 1:
            raise ValueError("sample minutes and picks per look must be at least 1")


# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyOutcome:
    name: PolicyName
    days: tuple[DayStats, ...]
    metrics: dict[MetricKey, float | None]  # the measured days averaged, as a baseline is (kpi.average_days)
    criteria: tuple[Criterion, ...]  # SPEC §8; the baseline is "as today" for both policies
    accept: DurationStats  # time from arrival to acceptance, in minutes, of visits that ended measured
    counts: dict[str, int]
    stages: dict[Status, DurationStats] = field(default_factory=dict)  # time to the next status, per status


@dataclass(frozen=True)
class SimulationResult:
    params: SimParams
    policy_version: str
    timezone: str
    outcomes: dict[PolicyName, PolicyOutcome]


# --- the engine ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """An order's own luck, the same under both policies."""

    work: dict[Status, float]  # standard normal: how long the step takes
    stall: dict[Status, float]  # uniform: whether the step gets forgotten
    stall_len: dict[Status, float]  # standard normal: for how long
    cancel: float  # uniform: whether the client says no
    pick: float = 0.0  # uniform: who picks it up (a fitted model, as today)
    pickup: float = 0.0  # uniform: how long that takes (a fitted model, as today)
    withdraw: float = 0.0  # uniform: whether and when the client withdraws a waiting order (a fitted model)


def _draws(seed: int, index: int) -> _Draws:
    rng = random.Random(f"{seed}:order:{index}")
    work, stall, stall_len = {}, {}, {}
    for status in STEPS:
        work[status] = rng.gauss(0.0, 1.0)
        stall[status] = rng.random()
        stall_len[status] = rng.gauss(0.0, 1.0)
    return _Draws(work, stall, stall_len, rng.random(), rng.random(), rng.random(), rng.random())


# Simulated people's ids, in the place of Telegram ids on the signals' owner_person.
LEAD_PERSON = 301
OWNER_PERSON = 200


@dataclass
class _Stay:
    """One stay of an order in a status, with the deadlines the policy in force gave it on entry."""

    order_id: str
    manager_id: str | None
    deadlines: VisitDeadlines
    left_at: datetime | None = None
    next_status: Status | None = None
    reminded: bool = False  # the sweep's marks, as on the bot's sla_timers row
    breached: bool = False
    stuck_signalled: bool = False

    def visit(self) -> kpi.Visit:
        d = self.deadlines
        return kpi.Visit(
            self.order_id,
            d.status,
            d.entered_at,
            self.left_at,
            self.next_status,
            d.breach_at,
            self.manager_id,
        )


@dataclass
class _Signal:
    """A signal a lead or the owner must act on (bot), or a client's complaint a lead chased (as today)."""

    id: int
    kind: str
    severity: Severity
    level: Level
    owner_person: int | None
    deadline: datetime | None  # None: nobody set one (as today)
    resolved_at: datetime | None = None
    resolution: str | None = None

    def escalation(self) -> kpi.Escalation:
        assert self.resolved_at is not None
        return kpi.Escalation(self.id, self.resolved_at, self.owner_person, self.deadline, self.resolution)


@dataclass
class _Order:
    id: str
    arrived_at: datetime
    draws: _Draws
    status: Status = Status.PENDING_MANAGER
    since: datetime = field(default=datetime.min.replace(tzinfo=UTC))
    manager_id: str | None = None  # offered to or working on it
    offer_live: bool = False
    expires_at: datetime | None = None  # of the live offer
    answer_at: datetime | None = None  # when the offered manager answers (None: never)
    excluded: set[str] = field(default_factory=set)  # declined or missed this order
    stay: _Stay | None = None
    base_done: datetime | None = None  # when the current step ends if nobody forgets it
    done_at: datetime | None = None  # when it really ends, unless somebody asks earlier
    token: int = 0  # bumps on every change that makes this order's scheduled answers and step ends stale
    signals: list[_Signal] = field(default_factory=list)  # unresolved; resolved when the order moves on
    unassigned: _Signal | None = None


Event = tuple[datetime, int, Callable[..., None], tuple[Any, ...]]
ProgressFn = Callable[[PolicyName, int, int], None]  # policy, simulated days done, days in all


class _Run:
    """One policy over the whole horizon: a heap of timed events, each a method call with its arguments."""

    def __init__(
        self,
        name: PolicyName,
        params: SimParams,
        policy: Policy,
        calendar: WorkingCalendar,
        arrivals: Sequence[datetime],
        draws: Sequence[_Draws],
        horizon: datetime,
    ) -> None:
        self.name = name
        self.params = params
        self.policy = policy
        self.calendar = calendar
        self.horizon = horizon
        self.arrivals = arrivals
        self.rng = random.Random(f"{params.seed}:{name}")
        self.managers = {m.manager_id: m for m in params.managers}
        self.habits = {m.manager_id: HABITS[m.habit] for m in params.managers}
        self.persons = {m.manager_id: 1001 + index for index, m in enumerate(params.managers)}
        self.loads: dict[str, Counter[Status]] = {m: Counter() for m in self.managers}
        self.last_assigned: dict[str, datetime | None] = dict.fromkeys(self.managers)
        self.queue: dict[str, _Order] = {}  # pending orders nobody holds, in arrival order
        self.open: dict[str, _Order] = {}
        self.stays: list[_Stay] = []
        self.signals: list[_Signal] = []
        self.samples: list[Sample] = []
        self.closed: list[tuple[datetime, Status]] = []
        self.counts: Counter[str] = Counter()
        self._events: list[Event] = []
        self._seq = 0
        self._pass_at: datetime | None = None
        self.fitted = params.fitted
        self.shares = manager_shares(self.fitted) if self.fitted is not None else ([], [])
        for index, (at, luck) in enumerate(zip(arrivals, draws, strict=True)):
            self._at(at, self._arrive, _Order(f"o{index + 1}", at, luck))

    def _at(self, at: datetime, action: Callable[..., None], *args: Any) -> None:
        if at < self.horizon:
            self._seq += 1
            heapq.heappush(self._events, (at, self._seq, action, args))

    def run(self, samples: Sequence[datetime], days: Sequence[datetime], progress: ProgressFn | None) -> None:
        for at in samples:
            self._at(at, self._sample)
        if progress is not None:
            for index, midnight in enumerate(days[1:], start=1):
                self._at(midnight, lambda _now, done=index: progress(self.name, done, len(days) - 1))
        if self.name == "as_today" and self.fitted is None:
            first = self.calendar.next_working_start(days[0])
            for manager_id in self.managers:
                look = self._lognormal(self.habits[manager_id].look_median)
                self._at(self._working(first, look), self._look, manager_id)
        while self._events:
            at, _, action, args = heapq.heappop(self._events)
            action(at, *args)
        if progress is not None:
            progress(self.name, len(days) - 1, len(days) - 1)

    # time and chance

    def _working(self, start: datetime, minutes: float) -> datetime:
        return self.calendar.add_working_minutes(start, minutes)

    def _after(self, start: datetime, minutes: float, clock: Clock) -> datetime:
        if clock == "working":
            return self.calendar.add_working_minutes(start, minutes)
        return self.calendar.add_calendar_minutes(start, minutes)

    def _lognormal(self, median: float, sigma: float = RESPONSE_SIGMA) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    # the lifecycle

    def _arrive(self, now: datetime, order: _Order) -> None:
        self.open[order.id] = order
        self.counts["orders"] += 1
        self._enter(order, Status.PENDING_MANAGER, now)
        self.queue[order.id] = order
        fitted = self.fitted
        if fitted is not None and fitted.withdrawn_after is not None:
            share = fitted_cancel(fitted, Status.PENDING_MANAGER)
            if order.draws.withdraw < share:  # the history's clients withdraw waiting orders this often
                after = fitted.withdrawn_after.at(order.draws.withdraw / share)
                self._at(self.calendar.add_calendar_minutes(now, after), self._withdrawn, order)
        if self.name == "bot":
            self._dispatch(now)
        elif self.fitted is not None:
            # As today, fitted: whoever the history says picks orders up, after the time they took to.
            manager_id = draw_manager(*self.shares, order.draws.pick)
            waiting = len(self.queue) - 1
            at = self.fitted.picks_up(manager_id, now, waiting, order.draws.pickup, self.calendar)
            self._at(at, self._pickup, order, manager_id)

    def _withdrawn(self, now: datetime, order: _Order) -> None:
        if order.status is Status.PENDING_MANAGER and (order.id in self.queue or order.offer_live):
            self.queue.pop(order.id, None)
            order.offer_live = False
            self._enter(order, Status.CANCELLED, now)

    def _pickup(self, now: datetime, order: _Order, manager_id: str) -> None:
        if order.id in self.queue:
            self._take(order, manager_id, now)

    def _enter(self, order: _Order, status: Status, now: datetime) -> None:
        """The order enters `status`: close the stay it leaves, plan the next one, start its step."""
        previous = order.status
        if order.stay is not None:
            order.stay.left_at, order.stay.next_status = now, status
            self._resolve(order, now, f"moved to {status.value}")
        order.status, order.since = status, now
        order.token += 1
        if order.manager_id is not None:
            self.loads[order.manager_id][previous] -= 1
            if status not in FINAL_STATUSES:
                self.loads[order.manager_id][status] += 1
        if status in FINAL_STATUSES:
            order.stay = None
            del self.open[order.id]
            self.closed.append((now, status))
            self.counts[status.value] += 1
            if self.name == "bot" and self.queue:
                self._dispatch(now)  # capacity freed
            return
        deadlines = plan_visit(status, now, self.policy, self.calendar)
        assert deadlines is not None  # every open status has a budget
        order.stay = _Stay(order.id, order.manager_id, deadlines)
        self.stays.append(order.stay)
        if status is not Status.PENDING_MANAGER:
            self._start_step(order, status, now)
        if self.name == "bot":
            self._at(deadlines.reminder_at, self._sweep, order, order.stay)
            self._at(deadlines.breach_at, self._sweep, order, order.stay)
            self._at(deadlines.stuck_at, self._sweep, order, order.stay)
        else:
            self._at(deadlines.stuck_at, self._complaint, order, order.stay)

    def _start_step(self, order: _Order, status: Status, now: datetime) -> None:
        step = STEPS[status]
        fitted = stage_minutes(self.fitted, order.manager_id, status) if self.fitted is not None else None
        if fitted is not None:
            # The history's time for this stage; beyond its upper quartile, an ask can shorten it.
            minutes = fitted.at_normal(order.draws.work[status])
            order.base_done = self._after(now, min(minutes, typical(fitted)), step.clock)
            self._finish_at(order, self._after(now, minutes, step.clock))
            return
        habit = self.habits[order.manager_id] if order.manager_id is not None else HABITS["steady"]
        speed = habit.work_speed if step.owner == "manager" else 1.0
        work = step.median * speed * math.exp(step.sigma * order.draws.work[status])
        stall_share = habit.stall_share if step.stall_share is None else step.stall_share
        extra = 0.0
        if order.draws.stall[status] < stall_share:
            extra = step.stall_median * math.exp(STALL_SIGMA * order.draws.stall_len[status])
        order.base_done = self._after(now, work, step.clock)
        self._finish_at(order, self._after(now, work + extra, step.clock))

    def _finish_at(self, order: _Order, at: datetime) -> None:
        order.done_at = at
        order.token += 1
        self._at(at, self._step_done, order, order.token)

    def _step_done(self, now: datetime, order: _Order, token: int) -> None:
        if token != order.token:
            return
        forward = next_steps(order.status)[0]
        if self.fitted is not None:
            cancels = order.draws.cancel < fitted_cancel(self.fitted, order.status)
        else:
            cancels = order.status is Status.AWAITING_CLIENT and order.draws.cancel < CANCEL_SHARE
        target = Status.CANCELLED if cancels else forward
        check_transition(order.status, target, checklist_complete=True)
        self._enter(order, target, now)

    # the bot's dispatch

    def _dispatch(self, now: datetime) -> None:
        """One dispatch pass over the queue, as the bot's: the least-loaded manager on shift, not excluded."""
        if not self.calendar.is_working(now):
            # Nobody is on shift: every pick would come back empty. The first pass of the next window runs it.
            if self._pass_at is None or self._pass_at <= now:
                self._pass_at = self.calendar.next_working_start(now)
                self._at(self._pass_at, self._scheduled_pass)
            return
        snapshots = [
            ManagerSnapshot(
                m.manager_id,
                True,
                False,
                m.capacity,
                True,
                self.loads[m.manager_id],
                self.last_assigned[m.manager_id],
            )
            for m in self.params.managers
        ]
        board = DispatchBoard(snapshots, self.policy.load_weights)
        waiting = list(self.queue.values())
        picks = pick_managers(board, ((order.id, order.excluded) for order in waiting), now)
        for order, (_, chosen) in zip(waiting, picks, strict=True):
            if chosen is None:
                if order.unassigned is None:
                    order.unassigned = self._raise(order, "order.unassigned", "high", now)
                continue
            self._offer(order, chosen, now)

    def _scheduled_pass(self, now: datetime) -> None:
        self._pass_at = None
        self._dispatch(now)

    def _offer(self, order: _Order, manager_id: str, now: datetime) -> None:
        del self.queue[order.id]
        habit = self.habits[manager_id]
        order.manager_id, order.offer_live = manager_id, True
        order.token += 1
        self.loads[manager_id][Status.PENDING_MANAGER] += 1
        self.last_assigned[manager_id] = now
        self.counts["offers"] += 1
        order.expires_at = accept_deadline(now, self.policy, self.calendar)
        self._at(order.expires_at, self._expire, order, order.token)
        # Fitted: as the manager answered the bot's cards in the history, or, if it has none, as fast as they
        # picked orders up in working hours as today (ignoring and declining as their habit says).
        person = self.fitted.manager(manager_id) if self.fitted is not None else None
        cards = person.cards if person is not None else None
        if self.rng.random() < (habit.ignore_share if cards is None else cards.miss_share):
            order.answer_at = None
        else:
            if cards is not None:
                delay = cards.answer.at(self.rng.random())
            elif person is not None:
                delay = person.pickup.at(self.rng.random())
            else:
                delay = self._lognormal(habit.response_median)
            order.answer_at = self._working(now, delay)
            self._at(order.answer_at, self._answer, order, order.token)

    def _answer(self, now: datetime, order: _Order, token: int) -> None:
        if token != order.token or not order.offer_live or order.manager_id is None:
            return
        person = self.fitted.manager(order.manager_id) if self.fitted is not None else None
        cards = person.cards if person is not None else None
        share = self.habits[order.manager_id].decline_share if cards is None else cards.decline_share
        if self.rng.random() < share:
            self.counts["declines"] += 1
            self._withdraw(order, now)
            return
        order.offer_live = False
        self.counts["accepted"] += 1
        self._enter(order, Status.ACCEPTED, now)

    def _expire(self, now: datetime, order: _Order, token: int) -> None:
        if token != order.token or order.expires_at is None:
            return
        if not offer_expired(
            state="offered" if order.offer_live else "answered", expires_at=order.expires_at, now=now
        ):
            return
        self.counts["misses"] += 1
        self._withdraw(order, now)

    def _withdraw(self, order: _Order, now: datetime) -> None:
        """The offer ends unanswered or declined: back to the queue, never to that manager again."""
        assert order.manager_id is not None
        self.loads[order.manager_id][Status.PENDING_MANAGER] -= 1
        order.excluded.add(order.manager_id)
        order.manager_id, order.offer_live, order.answer_at = None, False, None
        order.token += 1
        self.queue[order.id] = order
        self._dispatch(now)

    # "as today": the shared queue

    def _look(self, now: datetime, manager_id: str) -> None:
        """A manager glances at the shared queue and takes the oldest orders they want and can hold."""
        habit, capacity = self.habits[manager_id], self.managers[manager_id].capacity
        taken = 0
        for order in list(self.queue.values()):
            if taken >= self.params.picks_per_look or self._held(manager_id) >= capacity:
                break
            if self.rng.random() < habit.decline_share:
                continue
            self._take(order, manager_id, now)
            taken += 1
        self._at(self._working(now, self._lognormal(habit.look_median)), self._look, manager_id)

    def _take(self, order: _Order, manager_id: str, now: datetime) -> None:
        del self.queue[order.id]
        order.manager_id = manager_id
        self.loads[manager_id][Status.PENDING_MANAGER] += 1
        self.counts["accepted"] += 1
        self._enter(order, Status.ACCEPTED, now)

    def _held(self, manager_id: str) -> int:
        return sum(self.loads[manager_id].values())

    # asking people to act

    def _nudge(self, order: _Order, now: datetime, share: float | None) -> None:
        """Somebody asks the step's owner to act; `share`: how often that works (None: as the owner heeds)."""
        if order.status is Status.PENDING_MANAGER:
            self._nudge_pending(order, now, share)
            return
        step = STEPS[order.status]
        if order.base_done is None or order.done_at is None or order.done_at <= order.base_done:
            return  # nothing was forgotten: the step is on its normal course
        if share is None:
            share = self._heed(order) if step.nudge_share is None else step.nudge_share
        elif step.nudge_share is not None:
            share = min(share, step.nudge_share)  # a lead cannot hurry a client or a carrier more than asking
        if self.rng.random() >= share:
            return
        acts = self._after(now, self._lognormal(step.nudge_median, STALL_SIGMA), step.clock)
        moved = max(order.base_done, acts)
        if moved < order.done_at:
            self._finish_at(order, moved)

    def _nudge_pending(self, order: _Order, now: datetime, share: float | None) -> None:
        if order.offer_live:
            # The offered manager is reminded of the card: a heeded reminder gets it answered within minutes.
            if self.rng.random() < (self._heed(order) if share is None else share):
                soon = self._working(now, self._lognormal(2.0))
                if order.answer_at is None or soon < order.answer_at:
                    order.answer_at = soon
                    self._at(soon, self._answer, order, order.token)
        elif order.id in self.queue and share is not None:
            # A lead deals with an order nobody holds: it goes to whoever can take it, exclusions forgiven.
            order.excluded.clear()
            if self.name == "bot":
                self._dispatch(now)
                return
            free = [m for m in self.managers if self._held(m) < self.managers[m].capacity]
            if free:
                self._take(order, min(free, key=lambda m: (self._held(m), m)), now)

    def _heed(self, order: _Order) -> float:
        return self.habits[order.manager_id].heed_share if order.manager_id is not None else LEAD_PUSH_SHARE

    def _sweep(self, now: datetime, order: _Order, stay: _Stay) -> None:
        """The SLA watchdog on one visit: what domain.sla says is due at `now`, as the bot's sweep does."""
        if order.stay is not stay:
            return
        actions = due_actions(
            stay.deadlines,
            reminded=stay.reminded,
            breached=stay.breached,
            stuck_signalled=stay.stuck_signalled,
            now=now,
        )
        for action in actions:
            if action == "remind":
                stay.reminded = True
                self.counts["reminders"] += 1
                self._nudge(order, now, None)
            elif action == "breach":
                stay.breached = True
                self._raise(order, "sla.breach", stay.deadlines.severity, now)
            else:
                stay.stuck_signalled = True
                self._raise(order, "order.stuck_72h", "high", now)

    def _raise(self, order: _Order, kind: str, severity: Severity, now: datetime) -> _Signal:
        """A signal with an owner and a deadline by domain.signals, acknowledged or climbing the ladder."""
        person = self.persons.get(order.manager_id) if order.manager_id is not None else None
        level = initial_level(severity, person)
        signal = _Signal(
            len(self.signals) + 1,
            kind,
            severity,
            level,
            self._person_at(level, person),
            response_deadline(severity, now, self.calendar.tz, Ladder.of(self.policy.signals)),
        )
        self.signals.append(signal)
        order.signals.append(signal)
        self.counts[f"signals:{kind}"] += 1
        self._await_ack(order, signal, now)
        return signal

    @staticmethod
    def _person_at(level: Level, manager_person: int | None) -> int | None:
        return {Level.MANAGER: manager_person, Level.LEAD: LEAD_PERSON, Level.OWNER: OWNER_PERSON}[level]

    def _await_ack(self, order: _Order, signal: _Signal, now: datetime) -> None:
        """When the signal's current owner acts on it; past its deadline first, it climbs a rung instead."""
        acked_at: datetime | None
        if signal.level is Level.MANAGER and order.manager_id is not None:
            habit = self.habits[order.manager_id]
            heeds = self.rng.random() < habit.heed_share
            acked_at = self._working(now, self._lognormal(habit.response_median * 3)) if heeds else None
        else:
            lead = signal.level is not Level.OWNER
            median = self.params.lead_response_median if lead else self.params.owner_response_median
            acked_at = self._working(now, self._lognormal(median))
        deadline = signal.deadline
        late = deadline is not None and (acked_at is None or acked_at > deadline)
        if late and deadline is not None and escalate_level(signal.level) is not None:
            self._at(deadline, self._escalate, order, signal, signal.level)
        elif acked_at is not None:
            self._at(acked_at, self._ack, order, signal, signal.level)

    def _ack(self, now: datetime, order: _Order, signal: _Signal, level: Level) -> None:
        if signal.resolved_at is None and signal.level is level:
            self._nudge(order, now, None if level is Level.MANAGER else LEAD_PUSH_SHARE)

    def _escalate(self, now: datetime, order: _Order, signal: _Signal, level: Level) -> None:
        # Acknowledged at this rung or resolved: no longer "open" for the ladder.
        state = "open" if signal.resolved_at is None and signal.level is level else "acknowledged"
        if not signal_overdue(state=state, deadline=signal.deadline, now=now):
            return
        rung = next_rung(signal.severity, level, now, self.calendar.tz, Ladder.of(self.policy.signals))
        if rung is None:
            return
        signal.level, signal.owner_person = rung.level, self._person_at(rung.level, signal.owner_person)
        signal.deadline = rung.deadline
        self.counts["escalated_up"] += 1
        self._await_ack(order, signal, now)

    def _complaint(self, now: datetime, order: _Order, stay: _Stay) -> None:
        """As today: the client of an order quiet for stuck_hours may call; a lead chases it, unrecorded."""
        if order.stay is not stay or self.rng.random() >= self.params.complaint_share:
            return
        # Unrecorded (no deadline, no resolution), or as completely as the fitted history recorded its own.
        fitted = self.fitted
        recorded = fitted is not None and fitted.completeness > 0 and self.rng.random() < fitted.completeness
        ladder = Ladder.of(self.policy.signals)
        deadline = response_deadline("high", now, self.calendar.tz, ladder) if recorded else None
        signal = _Signal(len(self.signals) + 1, "client_complaint", "high", Level.LEAD, LEAD_PERSON, deadline)
        self.signals.append(signal)
        order.signals.append(signal)
        self.counts["complaints"] += 1
        chase = self._working(now, self._lognormal(self.params.lead_response_median * 3))
        self._at(chase, self._chase, order, stay)

    def _chase(self, now: datetime, order: _Order, stay: _Stay) -> None:
        # A fitted model's times already hold whatever the leads' chasing did in the history.
        if order.stay is stay and self.fitted is None:
            self._nudge(order, now, LEAD_PUSH_SHARE)

    def _resolve(self, order: _Order, now: datetime, outcome: str) -> None:
        for signal in order.signals:
            signal.resolved_at = now
            # The bot records why a signal closed; a chased complaint leaves no record, as today.
            signal.resolution = outcome if signal.deadline is not None else None
        order.signals.clear()
        order.unassigned = None

    # measuring

    def _sample(self, now: datetime) -> None:
        rows = [
            kpi.OpenOrder(o.id, o.status, o.since, o.manager_id is not None or o.unassigned is not None, True)
            for o in self.open.values()
        ]
        coverage = kpi.owner_coverage(rows)
        self.samples.append(
            Sample(
                now,
                kpi.pending_manager_orders(rows),
                kpi.stuck_share(rows, now, self.policy.stuck_hours).value,
                None if coverage is None else coverage.value,
            )
        )

    def outcome(
        self, baseline: Mapping[MetricKey, float | None] | None, days: Sequence[datetime]
    ) -> PolicyOutcome:
        """The measured days' KPIs by domain.kpi, and the criteria against `baseline` (None: itself)."""
        visits = [stay.visit() for stay in self.stays]
        escalations = [s.escalation() for s in self.signals if s.resolved_at is not None]
        delivered = [at for at, status in self.closed if status is Status.DELIVERED]
        per_day = measure_days(
            visits, escalations, self.samples, self.arrivals, delivered, days, self.calendar
        )
        metrics = kpi.average_days(day.metrics for day in per_day)
        criteria = kpi.success_criteria(metrics, metrics if baseline is None else baseline)
        stages = kpi.time_to_next_status(visits, kpi.Window(days[0], days[-1]))
        return PolicyOutcome(
            self.name,
            tuple(per_day),
            metrics,
            tuple(criteria),
            stages[Status.PENDING_MANAGER],
            dict(sorted(self.counts.items())),
            stages,
        )


# --- running it ---------------------------------------------------------------------------------------------


def generate_arrivals(params: SimParams, calendar: WorkingCalendar) -> list[datetime]:
    """Arrival instants (UTC) over the warm-up and measured days: a Poisson process shaped by the profile's
    weights, or the replayed history's instants within that span."""
    first = params.start - timedelta(days=params.warmup_days)
    begin = datetime.combine(first, time(0), tzinfo=calendar.tz)
    end = datetime.combine(params.start + timedelta(days=params.days), time(0), tzinfo=calendar.tz)
    if params.replay:
        return sorted(at.astimezone(UTC) for at in params.replay if begin <= at < end)
    profile = params.arrivals
    week = [w * 7 / sum(profile.weekday_weights) for w in profile.weekday_weights]
    hours = [w / sum(profile.hour_weights) for w in profile.hour_weights]
    rng = random.Random(f"{params.seed}:arrivals")
    result: list[datetime] = []
    for offset in range(params.warmup_days + params.days):
        day = first + timedelta(days=offset)
        for hour, share in enumerate(hours):
            rate = profile.orders_per_day * week[day.weekday()] * share  # expected orders in this hour
            if rate <= 0:
                continue
            at_hour = datetime.combine(day, time(hour), tzinfo=calendar.tz)
            elapsed = rng.expovariate(rate)
            while elapsed < 1.0:
                result.append((at_hour + timedelta(hours=elapsed)).astimezone(UTC))
                elapsed += rng.expovariate(rate)
    return result


def simulate(
    params: SimParams,
    policy: Policy,
    calendar: WorkingCalendar,
    progress: ProgressFn | None = None,
    policies: Sequence[PolicyName] = POLICY_NAMES,
) -> SimulationResult:
    """Both policies (or `policies`) over the same orders; the same parameters give the same result, bit for
    bit. The bot's criteria are judged against "as today" when both run."""
    arrivals = generate_arrivals(params, calendar)
    draws = [_draws(params.seed, index) for index in range(len(arrivals))]
    all_days = midnights(
        params.start - timedelta(days=params.warmup_days), params.warmup_days + params.days, calendar
    )
    measured = all_days[params.warmup_days :]
    samples = sample_times(params.start, params.days, params.sample_minutes, calendar)
    outcomes: dict[PolicyName, PolicyOutcome] = {}
    baseline: dict[MetricKey, float | None] | None = None
    for name in policies:
        run = _Run(name, params, policy, calendar, arrivals, draws, all_days[-1])
        run.run(samples, all_days, progress)
        outcomes[name] = run.outcome(baseline, measured)
        if baseline is None:
            baseline = outcomes[name].metrics  # "as today" runs first: it is the bot's baseline
    return SimulationResult(params, policy.version, calendar.tz.key, outcomes)
