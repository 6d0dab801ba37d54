"""Measuring a run of orders by day, as the bot's daily snapshots do: the same code for a simulated run
(demo.simulation) and for a real history (demo.backtest), so a prediction and the facts it is checked
against are measured alike. Pure: rows in, each day's KPIs out (domain.kpi's formulas).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from domain import kpi
from domain.calendar import WorkingCalendar
from domain.kpi import MetricKey

T = TypeVar("T")


@dataclass(frozen=True)
class DayStats:
    day: date
    arrivals: int
    delivered: int
    breaches: int  # critical-stage visits whose budget ran out that day
    metrics: dict[MetricKey, float | None]  # the day's KPIs, as the bot's daily snapshot stores them


@dataclass(frozen=True)
class Sample:
    at: datetime
    pending_manager: int
    stuck_share: float | None
    coverage: float | None


def measure_days(
    visits: Sequence[kpi.Visit],
    escalations: Iterable[kpi.Escalation],
    samples: Iterable[Sample],
    arrivals: Iterable[datetime],
    delivered: Iterable[datetime],
    days: Sequence[datetime],
    calendar: WorkingCalendar,
) -> list[DayStats]:
    """Each day's KPIs by domain.kpi, for a simulated run and for a real history alike (demo.backtest).

    Each day's formulas get the rows that can matter to that day (by the instants the formulas look at), so
    the cost grows with the rows, not with rows x days."""
    critical = _by_day(
        days, ((v, (v.left_at, v.breach_at)) for v in visits if v.status in kpi.CRITICAL_STATUSES)
    )
    resolved = _by_day(days, ((e, (e.resolved_at,)) for e in escalations))
    sampled = _by_day(days, ((s, (s.at,)) for s in samples))
    arrived = _by_day(days, ((at, (at,)) for at in arrivals))
    done = _by_day(days, ((at, (at,)) for at in delivered))
    per_day = []
    for index, (begin, end) in enumerate(itertools.pairwise(days)):
        window = kpi.Window(begin, end)
        metrics: dict[MetricKey, float | None] = {
            (kpi.PENDING, ""): _mean([s.pending_manager for s in sampled[index]]),
            (kpi.STUCK, ""): _mean([s.stuck_share for s in sampled[index]]),
            (kpi.COVERAGE, ""): _mean([s.coverage for s in sampled[index]]),
            (kpi.CRITICAL_BREACH_RATE, ""): kpi.critical_breach_rate(
                kpi.breach_rates(critical[index], window)
            ).value,
            (kpi.COMPLETENESS, ""): kpi.escalation_completeness(resolved[index], window).value,
        }
        day = begin.astimezone(calendar.tz).date()
        breaches = kpi.breaches_in(critical[index], window)
        per_day.append(DayStats(day, len(arrived[index]), len(done[index]), breaches, metrics))
    return per_day


def _by_day(days: Sequence[datetime], rows: Iterable[tuple[T, tuple[datetime | None, ...]]]) -> list[list[T]]:
    """Rows grouped by the days [days[i], days[i+1]) their instants fall on, once per day."""
    groups: list[list[T]] = [[] for _ in range(len(days) - 1)]
    for row, instants in rows:
        indexes = {bisect.bisect_right(days, at) - 1 for at in instants if at is not None}
        for index in sorted(indexes):
            if 0 <= index < len(groups):
                groups[index].append(row)
    return groups


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def sample_times(start: date, days: int, sample_minutes: int, calendar: WorkingCalendar) -> list[datetime]:
    """Every `sample_minutes` of working time on the measured days, half a step off the window's edges."""
    step = timedelta(minutes=sample_minutes)
    times = []
    for offset in range(days):
        window = calendar.window(start + timedelta(days=offset))
        if window is None:
            continue
        at = window[0] + step / 2
        while at < window[1]:
            times.append(at)
            at += step
    return times


def midnights(first: date, count: int, calendar: WorkingCalendar) -> list[datetime]:
    return [
        datetime.combine(first + timedelta(days=offset), time(0), tzinfo=calendar.tz).astimezone(UTC)
        for offset in range(count + 1)
    ]
