"""Working time: the one place that turns "N working minutes" into an instant and back (SPEC §5).

Every day has at most one working window, `start`-`end` in local wall-clock time, on workdays that are not
holidays. Each day's window is built as local datetimes and converted to UTC, so arithmetic happens on real
elapsed time and DST changes need no special case: a 09:00-18:00 window is 9 h on a DST-change day too, and a
night window across the change is as long as it really is. Time is counted in whole microseconds internally,
so sums are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_US_PER_MINUTE = 60_000_000
_ONE_DAY = timedelta(days=1)
_ONE_US = timedelta(microseconds=1)
_CACHE_LIMIT = 20_000  # days of windows kept per calendar (~55 years); cleared wholesale beyond that


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: instants must be timezone-aware")
    return instant.astimezone(UTC)


def _minutes_to_us(minutes: float) -> int:
    if not math.isfinite(minutes) or minutes < 0:
        raise ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
    return round(minutes * _US_PER_MINUTE)


def _us(delta: timedelta) -> int:
    return delta // _ONE_US


Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class WorkingCalendar:
    tz: ZoneInfo
    workdays: frozenset[int]  # Monday = 0
    start: time
    end: time
    holidays: frozenset[date] = frozenset()
    # date -> that day's window in UTC (None: a day off). A pure function of the fields, so safe to cache.
    _windows: dict[date, Window | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not self.workdays:
            raise ValueError("a working calendar needs at least one workday")
        if not self.workdays <= frozenset(range(7)):
            raise ValueError(f"workdays must be 0 (Monday) .. 6 (Sunday), got {sorted(self.workdays)}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are local wall-clock times without a time zone")
        if not self.start < self.end:
            raise ValueError(f"working hours must start before they end, got {self.start}-{self.end}")

    def window(self, day: date) -> Window | None:
        """The working window of a local date as UTC instants, or None on days off and holidays."""
        try:
            return self._windows[day]
        except KeyError:
            pass
        result: Window | None = None
        if day.weekday() in self.workdays and day not in self.holidays:
            opens = datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC)
            closes = datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC)
            # Only a window inside a DST gap could collapse; treat such a day as having no working time.
            result = (opens, closes) if closes > opens else None
        if len(self._windows) >= _CACHE_LIMIT:
            self._windows.clear()
        self._windows[day] = result
        return result

    def _local_date(self, instant_utc: datetime) -> date:
        return instant_utc.astimezone(self.tz).date()

    def is_working(self, instant: datetime) -> bool:
        """Whether `instant` lies inside a working window (the window's end is not working)."""
        at = _utc(instant)
        window = self.window(self._local_date(at))
        return window is not None and window[0] <= at < window[1]

    def next_working_start(self, instant: datetime) -> datetime:
        """The earliest working instant at or after `instant` (the instant itself during working hours)."""
        at = _utc(instant)
        day = self._local_date(at)
        while True:
            window = self.window(day)
            if window is not None and window[1] > at:
                return max(window[0], at)
            day += _ONE_DAY

    def add_working_minutes(self, start: datetime, minutes: float) -> datetime:
        """The earliest instant by which `minutes` of working time have passed since `start`.

        From a non-working instant counting starts when the next window opens. An amount that uses up a window
        exactly ends at that window's close (not at the next opening), which keeps addition associative.
        Zero minutes returns `start` itself.
        """
        at = _utc(start)
        remaining = _minutes_to_us(minutes)
        if remaining == 0:
            return at
        day = self._local_date(at)
        while True:
            window = self.window(day)
            if window is not None and window[1] > at:
                at = max(window[0], at)
                available = _us(window[1] - at)
                if remaining <= available:
                    return at + timedelta(microseconds=remaining)
                remaining -= available
                at = window[1]
            day += _ONE_DAY

    def working_minutes_between(self, a: datetime, b: datetime) -> float:
        """Working minutes in [a, b); 0 when b <= a."""
        lo, hi = _utc(a), _utc(b)
        if hi <= lo:
            return 0.0
        total = 0
        day, last_day = self._local_date(lo), self._local_date(hi)
        while day <= last_day:
            window = self.window(day)
            if window is not None:
                overlap = min(window[1], hi) - max(window[0], lo)
                if overlap > timedelta(0):
                    total += _us(overlap)
            day += _ONE_DAY
        return total / _US_PER_MINUTE

    @staticmethod
    def add_calendar_minutes(start: datetime, minutes: float) -> datetime:
        """Plain elapsed time, for budgets on the calendar clock (here so every deadline has one home)."""
        return _utc(start) + timedelta(microseconds=_minutes_to_us(minutes))
