"""Fitting the simulation's people and time to a CRM history (`main.py simulate --replay/--backtest`).

Pure: status timelines, managers, recorded signals and cards (storage.history) in, a `Fitted` model out.
What is fitted, and how:
- arrivals: orders per day, weekday and hour weights (local time; 1.0 is an average day or hour);
- each manager: the share of orders they took; their time to pick an order up, by situation (`situation`:
  arrived in working hours or not, and the tercile band of how many orders were waiting then); their time per
  manager stage (accepted, inspection, ready_for_shipment, working minutes), all as empirical distributions.
  A manager with few observations is pooled with the team: each quantile is the mix
  `(n * own + K * team) / (n + K)`, K = POOL_WEIGHT, so five observations move a manager's curve a fifth
  of the way from the team's (200 and more: their own alone);
- waits on clients (awaiting_client) and carriers (in_transit), calendar minutes, pooled;
- cancellations: the share of each status's visits that ended in cancelled, and how long a waiting order
  stayed before its client withdrew it;
- the bot's cards, where it was live (ai_assignments): answer time, decline and miss shares, pooled;
- hours actually worked: the local hours of each manager's own status changes (10th-90th percentile);
- escalation completeness: the share of recorded escalations resolved with an owner, a deadline and a
  resolution, by the KPI's formula (0 when the history recorded none: nothing was escalated on the record).

Only visits that ended before the fit's cut-off count (a visit still open is not a time yet); a visit that
started within the hold-out is not seen.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from domain import kpi
from domain.calendar import WorkingCalendar
from domain.statuses import FINAL_STATUSES, Status
from storage.history import HistoryManager, RecordedOffer, RecordedSignal, Timeline

POOL_WEIGHT = 20  # observations of the team that a manager's own observations are mixed with
QUANTILE_POINTS = 41  # a fitted distribution is kept as this many quantiles (0 %, 2.5 %, ... 100 %)
MANAGER_STAGES: tuple[Status, ...] = (Status.ACCEPTED, Status.INSPECTION, Status.READY_FOR_SHIPMENT)
WAIT_STAGES: tuple[Status, ...] = (Status.AWAITING_CLIENT, Status.IN_TRANSIT)
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Quantiles:
    """An empirical distribution as evenly spaced quantiles; `at(u)` draws from it with a uniform u."""

    points: tuple[float, ...]
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Quantiles | None:
        if not values:
            return None
        ordered = sorted(values)
        last = len(ordered) - 1
        points = []
        for k in range(QUANTILE_POINTS):
            position = last * k / (QUANTILE_POINTS - 1)
            low = math.floor(position)
            high = min(low + 1, last)
            points.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
        return cls(tuple(points), len(values))

    def at(self, u: float) -> float:
        position = min(max(u, 0.0), 1.0) * (len(self.points) - 1)
        low = min(int(position), len(self.points) - 2)
        return self.points[low] + (self.points[low + 1] - self.points[low]) * (position - low)

    def at_normal(self, z: float) -> float:
        """The quantile of a standard normal draw (the simulation's per-order luck)."""
        return self.at(_NORMAL.cdf(z))

    @property
    def median(self) -> float:
        return self.at(0.5)

    def scaled(self, factor: float) -> Quantiles:
        return Quantiles(tuple(p * factor for p in self.points), self.count)

    def pooled(self, team: Quantiles) -> Quantiles:
        if self.count >= POOL_WEIGHT * 10:
            return self
        n, k = self.count, POOL_WEIGHT
        return Quantiles(
            tuple((n * a + k * b) / (n + k) for a, b in zip(self.points, team.points, strict=True)), n
        )


@dataclass(frozen=True)
class Cards:
    """How a manager answered the bot's order cards, where the history has them (pooled with the team)."""

    answer: Quantiles  # working minutes from the card to the answer, of the answered ones
    decline_share: float  # of the answered cards
    miss_share: float  # of all cards: left to expire
    count: int


@dataclass(frozen=True)
class FittedManager:
    manager_id: str
    name: str
    capacity: int
    share: float  # of the orders picked up
    pickup: Quantiles  # working minutes to pick up an order that arrived in working hours (what is shown)
    # Time to pick an order up, by situation (`situation`): arrived in working hours or not, and how many
    # orders were waiting then (a backlog is worked off in turn). In working hours: working minutes from the
    # arrival; outside them: working minutes after the next opening, or (negative) calendar minutes before it
    # for orders taken before the office opened.
    pickups: dict[str, Quantiles]
    stages: dict[Status, Quantiles]  # working minutes per manager stage (pooled where data is thin)
    hours: tuple[int, int] | None  # local hours of their own status changes, 10th and 90th percentile
    observed: dict[str, int] = field(default_factory=dict)  # own observations behind each fit
    cards: Cards | None = None  # None: the history has no cards of the bot

    def picks_up(self, arrived: datetime, key: str, u: float, calendar: WorkingCalendar) -> datetime:
        """When this manager takes an order that arrived at `arrived` in situation `key`, for the draw `u`."""
        offset = self.pickups.get(key, self.pickup).at(u)
        if calendar.is_working(arrived):
            return calendar.add_working_minutes(arrived, offset)
        opening = calendar.next_working_start(arrived)
        if offset < 0:
            return max(arrived, opening + timedelta(minutes=offset))
        return calendar.add_working_minutes(opening, offset)


@dataclass(frozen=True)
class Fitted:
    """What the history says about people and time (see the module's docstring)."""

    since: datetime
    until: datetime  # the fit's cut-off (the hold-out's start in a backtest)
    orders: int
    orders_per_day: float
    weekday_weights: tuple[float, ...]
    hour_weights: tuple[float, ...]
    managers: tuple[FittedManager, ...]
    waits: dict[Status, Quantiles]  # calendar minutes on clients and carriers
    cancel_share: dict[Status, float]  # of the visits of a status that ended in cancelled
    queue_edges: tuple[int, ...]  # orders waiting at an arrival: the bands' upper edges (terciles)
    withdrawn_after: Quantiles | None  # calendar minutes until a waiting order is cancelled, if it is
    completeness: float  # escalation completeness on record
    escalations: int  # recorded escalations behind it

    def manager(self, manager_id: str) -> FittedManager:
        return next(m for m in self.managers if m.manager_id == manager_id)

    def picks_up(
        self, manager_id: str, arrived: datetime, waiting: int, u: float, calendar: WorkingCalendar
    ) -> datetime:
        key = situation(arrived, calendar, waiting, self.queue_edges)
        return self.manager(manager_id).picks_up(arrived, key, u, calendar)

    def scaled(self, *, pickup: float = 1.0, stages: float = 1.0) -> Fitted:
        """The same model with pickup or stage times multiplied (a deliberately wrong model, for checks)."""
        return replace(
            self,
            managers=tuple(
                replace(
                    m,
                    pickup=m.pickup.scaled(pickup),
                    pickups={k: q.scaled(pickup) for k, q in m.pickups.items()},
                    stages={s: q.scaled(stages) for s, q in m.stages.items()},
                )
                for m in self.managers
            ),
        )

    def lines(self) -> list[str]:
        """What was fitted, in sentences an owner reads ("Anna picks up in 12 min median, Max in 41")."""
        out = [
            f"history {self.since:%Y-%m-%d} .. {self.until:%Y-%m-%d}: {self.orders} orders, "
            f"{self.orders_per_day:.1f} a day",
            "busiest weekday: "
            + _DAYS[max(range(7), key=lambda d: self.weekday_weights[d])]
            + f", busiest hour: {max(range(24), key=lambda h: self.hour_weights[h]):02d}:00",
        ]
        for m in self.managers:
            stage = ", ".join(f"{s.value} {_minutes(q.median)}" for s, q in m.stages.items())
            cards = m.cards
            if cards is not None:
                stage += (
                    f"; answers the bot's cards in {_minutes(cards.answer.median)} median, declines "
                    f"{cards.decline_share:.0%}, lets {cards.miss_share:.0%} expire ({cards.count} cards)"
                )
            hours = "—" if m.hours is None else f"{m.hours[0]:02d}:00–{m.hours[1]:02d}:00"
            out.append(
                f"{m.name} ({m.manager_id}) picks up in {_minutes(m.pickup.median)} median "
                f"(p90 {_minutes(m.pickup.at(0.9))}; {m.observed['pickup']} orders, {m.share:.0%} of all); "
                f"stages {stage}; works {hours}"
            )
        for status, q in self.waits.items():
            out.append(f"{status.value}: {_minutes(q.median)} median, p90 {_minutes(q.at(0.9))} ({q.count})")
        cancels = ", ".join(f"{s.value} {v:.1%}" for s, v in self.cancel_share.items() if v > 0)
        out.append(f"cancelled from: {cancels or 'none'}")
        out.append(
            f"escalation completeness on record: {self.completeness:.0%} of {self.escalations} recorded"
            if self.escalations
            else "escalations on record: none (as today: nothing escalated is recorded, completeness 0 %)"
        )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "orders": self.orders,
            "orders_per_day": round(self.orders_per_day, 3),
            "weekday_weights": [round(w, 4) for w in self.weekday_weights],
            "hour_weights": [round(w, 4) for w in self.hour_weights],
            "managers": {
                m.manager_id: {
                    "name": m.name,
                    "share": round(m.share, 4),
                    "pickup_median_minutes": round(m.pickup.median, 1),
                    "pickup_p90_minutes": round(m.pickup.at(0.9), 1),
                    "pickup_median_by_situation": {k: round(q.median, 1) for k, q in m.pickups.items()},
                    "stage_median_minutes": {s.value: round(q.median, 1) for s, q in m.stages.items()},
                    "hours": list(m.hours) if m.hours else None,
                    "observed": m.observed,
                    "cards": None if m.cards is None else _cards_json(m.cards),
                }
                for m in self.managers
            },
            "waits_median_minutes": {s.value: round(q.median, 1) for s, q in self.waits.items()},
            "cancel_share": {s.value: round(v, 4) for s, v in self.cancel_share.items()},
            "escalation_completeness": self.completeness,
            "escalations_recorded": self.escalations,
        }


QUEUE_BANDS = 3
SITUATIONS = tuple(f"{h}:q{band}" for h in ("in_hours", "after_hours") for band in range(QUEUE_BANDS))


def situation(arrived: datetime, calendar: WorkingCalendar, waiting: int, edges: Sequence[int]) -> str:
    """Which pickup distribution an order draws from: in working hours or not, and the band of the number of
    orders that were waiting when it arrived."""
    hours = "in_hours" if calendar.is_working(arrived) else "after_hours"
    return f"{hours}:q{bisect.bisect_left(edges, waiting)}"


def _waiting_at_arrival(timelines: Sequence[Timeline]) -> dict[str, int]:
    """How many orders were waiting for a manager when each order arrived (by the history's events)."""
    created = sorted(t.created_at for t in timelines)
    left = sorted(t.steps[1][1] for t in timelines if len(t.steps) > 1)
    return {
        t.order_id: bisect.bisect_left(created, t.created_at) - bisect.bisect_right(left, t.created_at)
        for t in timelines
    }


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _minutes(value: float) -> str:
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h"


def _visits(timeline: Timeline) -> Iterable[tuple[Status, datetime, datetime, Status, str]]:
    """(status, entered, left, next status, actor of the move out) of each ended visit."""
    for (status, entered, _), (nxt, left, actor) in zip(timeline.steps, timeline.steps[1:], strict=False):
        yield Status(status), entered, left, Status(nxt), actor


def fit(
    timelines: Sequence[Timeline],
    managers: Sequence[HistoryManager],
    signals: Sequence[RecordedSignal],
    calendar: WorkingCalendar,
    until: datetime,
    offers: Sequence[RecordedOffer] = (),
) -> Fitted:
    """The model the history before `until` supports. Raises ValueError when it has no orders."""
    seen = [t for t in timelines if t.created_at < until]
    if not seen:
        raise ValueError("the history has no orders before the cut-off")
    since = seen[0].created_at
    days = max(1.0, (until - since).total_seconds() / 86400)
    weekdays, hours = [0.0] * 7, [0.0] * 24
    for t in seen:
        local = t.created_at.astimezone(calendar.tz)
        weekdays[local.weekday()] += 1
        hours[local.hour] += 1
    pickup: dict[tuple[str, str], list[float]] = defaultdict(list)  # (manager, situation) -> minutes
    in_hours: dict[str, list[float]] = defaultdict(list)
    waiting = _waiting_at_arrival(timelines)
    queues = sorted(waiting[t.order_id] for t in seen)
    edges = tuple(queues[len(queues) * k // QUEUE_BANDS] for k in range(1, QUEUE_BANDS))
    stages: dict[tuple[str, Status], list[float]] = defaultdict(list)
    waits: dict[Status, list[float]] = defaultdict(list)
    visits: Counter[Status] = Counter()
    withdrawn: list[float] = []
    cancels: Counter[Status] = Counter()
    own_hours: dict[str, list[int]] = defaultdict(list)
    for t in seen:
        owner: str | None = None
        for status, entered, left, nxt, actor in _visits(t):
            if left >= until:
                break
            visits[status] += 1
            if nxt is Status.CANCELLED:
                cancels[status] += 1
                if status is Status.PENDING_MANAGER:
                    withdrawn.append((left - entered).total_seconds() / 60)
                continue
            if status is Status.PENDING_MANAGER and nxt is Status.ACCEPTED:
                owner = actor
                if calendar.is_working(entered):
                    took = calendar.working_minutes_between(entered, left)
                    in_hours[actor].append(took)
                else:
                    opening = calendar.next_working_start(entered)
                    early = (left - opening).total_seconds() / 60
                    took = early if left < opening else calendar.working_minutes_between(opening, left)
                pickup[(actor, situation(entered, calendar, waiting[t.order_id], edges))].append(took)
            elif status in MANAGER_STAGES and owner is not None:
                stages[(owner, status)].append(calendar.working_minutes_between(entered, left))
            elif status in WAIT_STAGES:
                waits[status].append((left - entered).total_seconds() / 60)
            if actor == owner and owner is not None:
                own_hours[owner].append(left.astimezone(calendar.tz).hour)
    known = {m.id: m for m in managers}
    team_pickups = {}
    for key in SITUATIONS:
        if (q := Quantiles.of([v for (_, k), vs in pickup.items() if k == key for v in vs])) is not None:
            team_pickups[key] = q
    team_in_hours = Quantiles.of([v for values in in_hours.values() for v in values])
    if team_in_hours is None or not team_pickups:
        raise ValueError("the history has too few accepted orders before the cut-off")
    total = sum(len(v) for v in pickup.values())
    team_stage = {
        s: Quantiles.of([v for (_, st), values in stages.items() if st is s for v in values])
        for s in MANAGER_STAGES
    }
    fitted = []
    for manager_id in sorted({m for m, _ in pickup}):
        info = known.get(manager_id, HistoryManager(manager_id, manager_id, 10))
        taken = sum(len(pickup.get((manager_id, key), [])) for key in SITUATIONS)
        own_pickups = {}
        mine_in_hours = Quantiles.of(in_hours.get(manager_id, []))
        for key, team in team_pickups.items():
            own = Quantiles.of(pickup.get((manager_id, key), []))
            own_pickups[key] = team if own is None else own.pooled(team)
        own_stages: dict[Status, Quantiles] = {}
        for s in MANAGER_STAGES:
            pooled, mine = team_stage[s], Quantiles.of(stages.get((manager_id, s), []))
            if pooled is not None:
                own_stages[s] = pooled if mine is None else mine.pooled(pooled)
        worked = sorted(own_hours.get(manager_id, []))
        fitted.append(
            FittedManager(
                manager_id,
                info.name,
                info.capacity,
                taken / total,
                team_in_hours if mine_in_hours is None else mine_in_hours.pooled(team_in_hours),
                own_pickups,
                own_stages,
                (worked[len(worked) // 10], worked[(len(worked) * 9) // 10] + 1) if worked else None,
                {"pickup": taken} | {s.value: len(stages.get((manager_id, s), [])) for s in MANAGER_STAGES},
            )
        )
    cards = _fit_cards([o for o in offers if o.offered_at < until], calendar)
    fitted = [replace(m, cards=cards.get(m.manager_id)) for m in fitted]
    fitted_waits = {s: q for s in WAIT_STAGES if (q := Quantiles.of(waits.get(s, []))) is not None}
    recorded = [s for s in signals if s.raised_at < until]
    resolved = [
        kpi.Escalation(s.id, s.resolved_at, s.owner_person, s.deadline_at, s.resolution)
        for s in recorded
        if s.resolved_at is not None and s.resolved_at < until
    ]
    ratio = kpi.escalation_completeness(resolved, kpi.Window(since, until))
    return Fitted(
        since=since,
        until=until,
        orders=len(seen),
        orders_per_day=len(seen) / days,
        weekday_weights=tuple(w * 7 / len(seen) for w in weekdays),  # 1.0: an average day
        hour_weights=tuple(h * 24 / len(seen) for h in hours),  # 1.0: an average hour
        managers=tuple(fitted),
        waits=fitted_waits,
        cancel_share={s: cancels[s] / visits[s] for s in visits if s not in FINAL_STATUSES},
        queue_edges=edges,
        withdrawn_after=Quantiles.of(withdrawn),
        completeness=ratio.value if ratio.value is not None else 0.0,
        escalations=len(resolved),
    )


def _cards_json(cards: Cards) -> dict[str, float]:
    return {
        "answer_median_minutes": round(cards.answer.median, 1),
        "decline_share": round(cards.decline_share, 4),
        "miss_share": round(cards.miss_share, 4),
        "count": cards.count,
    }


def _answer_minutes(offers: Sequence[RecordedOffer], calendar: WorkingCalendar) -> Quantiles | None:
    return Quantiles.of(
        [
            calendar.working_minutes_between(o.offered_at, o.answered_at)
            for o in offers
            if o.answered_at is not None
        ]
    )


def _fit_cards(offers: Sequence[RecordedOffer], calendar: WorkingCalendar) -> dict[str, Cards]:
    """Per manager: answer times, decline and miss shares of the bot's cards, pooled with the team's."""
    ended = [o for o in offers if o.state in ("accepted", "declined", "expired")]
    answered = [o for o in ended if o.state != "expired" and o.answered_at is not None]
    team_answer = _answer_minutes(answered, calendar)
    if team_answer is None:
        return {}
    team_decline = sum(o.state == "declined" for o in answered) / len(answered)
    team_miss = sum(o.state == "expired" for o in ended) / len(ended)
    result = {}
    k = POOL_WEIGHT
    for manager_id in sorted({o.manager_id for o in ended}):
        mine = [o for o in ended if o.manager_id == manager_id]
        mine_answered = [o for o in answered if o.manager_id == manager_id]
        own = _answer_minutes(mine_answered, calendar)
        declines = sum(o.state == "declined" for o in mine_answered)
        misses = sum(o.state == "expired" for o in mine)
        result[manager_id] = Cards(
            team_answer if own is None else own.pooled(team_answer),
            (declines + k * team_decline) / (len(mine_answered) + k),
            (misses + k * team_miss) / (len(mine) + k),
            len(mine),
        )
    return result


def manager_shares(fitted: Fitted) -> tuple[list[str], list[float]]:
    """Manager ids and their cumulative pick-up shares, for drawing who takes an order."""
    ids, cumulative, total = [], [], 0.0
    for m in fitted.managers:
        total += m.share
        ids.append(m.manager_id)
        cumulative.append(total)
    return ids, cumulative


def draw_manager(ids: Sequence[str], cumulative: Sequence[float], u: float) -> str:
    return ids[min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(ids) - 1)]


def typical(q: Quantiles) -> float:
    """Where a step's normal course ends: beyond the upper quartile, the time is what asking can shorten."""
    return q.at(0.75)


def stage_minutes(fitted: Fitted, manager_id: str | None, status: Status) -> Quantiles | None:
    if status in WAIT_STAGES:
        return fitted.waits.get(status)
    if manager_id is None:
        return None
    for m in fitted.managers:
        if m.manager_id == manager_id:
            return m.stages.get(status)
    return None


def fitted_cancel(fitted: Fitted, status: Status) -> float:
    return fitted.cancel_share.get(status, 0.0)
