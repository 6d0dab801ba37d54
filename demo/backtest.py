"""`main.py simulate --backtest DATABASE`: does the simulation reproduce a past it has not seen?

Fit people and time on the history before the hold-out (demo.calibration), replay the hold-out's real
arrivals under the policy that was in force then (as today before the bot's install time, the bot after),
over several seeds, and compare the predicted KPIs with what the history shows happened, measured by the same
formulas (demo.simulation.measure_days, domain.kpi). Errors are signed fractions: 0.12 = predicted 12 % high.

Pure apart from `read_history`, which reads the database through storage/.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from demo.calibration import Fitted, fit
from demo.measure import Sample, measure_days, midnights, sample_times
from demo.simulation import ArrivalProfile, ManagerProfile, PolicyName, PolicyOutcome, SimParams, simulate
from domain import kpi
from domain.calendar import WorkingCalendar
from domain.policy import Policy
from domain.sla import plan_visit
from domain.statuses import FINAL_STATUSES, Status
from storage.db import Database
from storage.history import (
    HistoryManager,
    RecordedOffer,
    RecordedSignal,
    Timeline,
    history_managers,
    recorded_offers,
    recorded_signals,
    status_timelines,
)
from storage.kpi import installed_at

BOUND = 0.25  # the relative error a backtest must stay within on the headline figures
HEADLINE = ("pending_manager", "critical_breach_rate", "time_to_accept_median")
WARMUP_DAYS = 14  # real arrivals before the hold-out replayed (not measured), so the queues are full
STAGES: tuple[Status, ...] = (
    Status.PENDING_MANAGER,
    Status.ACCEPTED,
    Status.INSPECTION,
    Status.AWAITING_CLIENT,
    Status.READY_FOR_SHIPMENT,
    Status.IN_TRANSIT,
)
Figures = dict[str, float | None]


@dataclass(frozen=True)
class HistoryData:
    timelines: list[Timeline]
    managers: list[HistoryManager]
    signals: list[RecordedSignal]
    installed_at: datetime | None  # when the bot went live (None: never: as today throughout)
    offers: list[RecordedOffer] = field(default_factory=list)  # the bot's order cards, if it was live


async def read_history(path: str) -> HistoryData:
    db = await Database.open(path, exclusive=False, run_migrations=False)
    try:
        return HistoryData(
            await status_timelines(db),
            await history_managers(db),
            await recorded_signals(db),
            await installed_at(db),
            await recorded_offers(db),
        )
    finally:
        await db.close()


def figures(
    metrics: Mapping[kpi.MetricKey, float | None], stages: Mapping[Status, kpi.DurationStats]
) -> Figures:
    """The figures a backtest compares: the criteria's KPIs and the time to the next status per stage."""
    result: Figures = {
        "pending_manager": metrics.get((kpi.PENDING, "")),
        "critical_breach_rate": metrics.get((kpi.CRITICAL_BREACH_RATE, "")),
        "stuck_share": metrics.get((kpi.STUCK, "")),
        "time_to_accept_median": _median_of(stages, Status.PENDING_MANAGER),
    }
    for status in STAGES[1:]:
        result[f"time_to_next_status:{status.value}"] = _median_of(stages, status)
    return result


def _median_of(stages: Mapping[Status, kpi.DurationStats], status: Status) -> float | None:
    stats = stages.get(status)
    return None if stats is None else stats.median_minutes


def relative_error(predicted: float | None, actual: float | None) -> float | None:
    if predicted is None or actual is None or actual == 0:
        return None
    return (predicted - actual) / actual


# --- what happened ------------------------------------------------------------------------------------------


def actual_figures(
    history: HistoryData,
    start: date,
    days: int,
    policy: Policy,
    calendar: WorkingCalendar,
    sample_minutes: int = 30,
) -> Figures:
    """The hold-out measured from the status events, with the deadlines the policy gives each visit."""
    day_edges = midnights(start, days, calendar)
    begin, end = day_edges[0], day_edges[-1]
    visits: list[kpi.Visit] = []
    paths: list[tuple[list[datetime], list[tuple[Status, datetime]]]] = []
    arrivals, delivered = [], []
    for t in history.timelines:
        if not t.steps or t.steps[0][1] >= end:
            continue
        arrivals.append(t.created_at)
        steps = [(Status(s), at) for s, at, _ in t.steps]
        for index, (status, entered) in enumerate(steps):
            left, nxt = (steps[index + 1][1], steps[index + 1][0]) if index + 1 < len(steps) else (None, None)
            if status in FINAL_STATUSES:
                if status is Status.DELIVERED:
                    delivered.append(entered)
                continue
            if left is not None and left < begin:
                continue
            deadlines = plan_visit(status, entered, policy, calendar)
            breach_at = None if deadlines is None else deadlines.breach_at
            visits.append(kpi.Visit(t.order_id, status, entered, left, nxt, breach_at))
        last_status, last_at = steps[-1]
        if last_status not in FINAL_STATUSES or last_at >= begin:
            paths.append(([at for _, at in steps], steps))
    samples = []
    for at in sample_times(start, days, sample_minutes, calendar):
        rows = []
        for instants, steps in paths:
            index = bisect.bisect_right(instants, at) - 1
            if index < 0:
                continue
            status, since = steps[index]
            if status not in FINAL_STATUSES:
                rows.append(kpi.OpenOrder("", status, since))
        samples.append(
            Sample(
                at,
                kpi.pending_manager_orders(rows),
                kpi.stuck_share(rows, at, policy.stuck_hours).value,
                None,
            )
        )
    escalations = [
        kpi.Escalation(s.id, s.resolved_at, s.owner_person, s.deadline_at, s.resolution)
        for s in history.signals
        if s.resolved_at is not None
    ]
    per_day = measure_days(visits, escalations, samples, arrivals, delivered, day_edges, calendar)
    metrics = kpi.average_days(d.metrics for d in per_day)
    return figures(metrics, kpi.time_to_next_status(visits, kpi.Window(begin, end)))


# --- what the model predicts --------------------------------------------------------------------------------


def team_of(fitted: Fitted) -> tuple[ManagerProfile, ...]:
    """The fitted managers as the simulation's team (habits only matter where the history is silent: how a
    manager answers the bot's cards when the history has no bot)."""
    return tuple(ManagerProfile(m.manager_id, "steady", max(1, m.capacity)) for m in fitted.managers)


def fitted_params(
    fitted: Fitted, arrivals: Sequence[datetime], start: date, days: int, seed: int, warmup_days: int
) -> SimParams:
    return SimParams(
        seed=seed,
        days=days,
        start=start,
        arrivals=ArrivalProfile(
            max(fitted.orders_per_day, 0.1), _weights(fitted.weekday_weights), _weights(fitted.hour_weights)
        ),
        managers=team_of(fitted),
        warmup_days=warmup_days,
        replay=tuple(arrivals),
        fitted=fitted,
    )


def _weights(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(values) if sum(values) > 0 else tuple(1.0 for _ in values)


@dataclass(frozen=True)
class Spread:
    median: float | None
    low: float | None  # 10th percentile over the seeds
    high: float | None  # 90th percentile


def spread(values: Sequence[float | None]) -> Spread:
    known = [v for v in values if v is not None]
    return Spread(kpi.median(known), kpi.percentile(known, 0.1), kpi.percentile(known, 0.9))


@dataclass(frozen=True)
class Backtest:
    fitted: Fitted
    policy: PolicyName
    holdout: tuple[date, int]  # first day, days
    seeds: tuple[int, ...]
    actual: Figures
    predicted: dict[str, Spread]
    errors: Figures

    def failures(self, bound: float = BOUND) -> list[str]:
        """Headline figures whose error is unknown or beyond `bound`."""
        return [k for k in HEADLINE if (e := self.errors.get(k)) is None or abs(e) > bound]

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "holdout": {"start": self.holdout[0].isoformat(), "days": self.holdout[1]},
            "seeds": list(self.seeds),
            "fitted": self.fitted.as_json(),
            "predicted": {k: s.median for k, s in self.predicted.items()},
            "predicted_range": {k: [s.low, s.high] for k, s in self.predicted.items()},
            "actual": self.actual,
            "errors": self.errors,
            "bound": BOUND,
            "within_bound": not self.failures(),
        }


def backtest(
    history: HistoryData,
    policy: Policy,
    calendar: WorkingCalendar,
    *,
    holdout_days: int = 14,
    seeds: Sequence[int] = (1, 2, 3, 4, 5),
    fitted: Fitted | None = None,
) -> Backtest:
    """Fit before the hold-out (or take `fitted`), predict the hold-out over `seeds`, compare with the facts.
    Raises ValueError when the history is too short for the hold-out."""
    arrivals = sorted(t.created_at for t in history.timelines)
    if not arrivals:
        raise ValueError("the history has no orders")
    last_day = max(at for t in history.timelines for _, at, _ in t.steps).astimezone(calendar.tz).date()
    start = last_day - timedelta(days=holdout_days - 1)
    cut = datetime.combine(start, time(0), tzinfo=calendar.tz).astimezone(UTC)
    if arrivals[0] >= cut - timedelta(days=7):
        raise ValueError(f"the history needs at least 7 days before a {holdout_days}-day hold-out")
    model = fitted or fit(history.timelines, history.managers, history.signals, calendar, cut, history.offers)
    in_force: PolicyName = (
        "bot" if history.installed_at is not None and history.installed_at < cut else "as_today"
    )
    warmup = min(WARMUP_DAYS, max(0, (start - arrivals[0].astimezone(calendar.tz).date()).days))
    runs: list[Figures] = []
    for seed in seeds:
        params = fitted_params(model, arrivals, start, holdout_days, seed, warmup)
        outcome: PolicyOutcome = simulate(params, policy, calendar, policies=(in_force,)).outcomes[in_force]
        runs.append(figures(outcome.metrics, outcome.stages))
    actual = actual_figures(history, start, holdout_days, policy, calendar)
    predicted = {key: spread([run[key] for run in runs]) for key in actual}
    errors = {key: relative_error(predicted[key].median, actual[key]) for key in actual}
    return Backtest(model, in_force, (start, holdout_days), tuple(seeds), actual, predicted, errors)
