"""Test clocks: a manual one for tests, an accelerated one for the demo (the system clock: bot/clock.py)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class ManualClock:
    """A clock that moves only when told: tests set it to any instant."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant


class AcceleratedClock:
    """Simulated time that runs `speed` times faster than real time from `start` (the demo's clock)."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._t0 = time.monotonic()
        self._skipped = timedelta()

    def now(self) -> datetime:
        return self.start + self._skipped + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def real_time(self) -> None:
        """From now on one simulated second per real second (the demo keeps its panel up in real time)."""
        self.start, self._skipped, self._t0, self.speed = self.now(), timedelta(0), time.monotonic(), 1.0

    def skip(self, delta: timedelta) -> None:
        """Jump over a stretch with nothing to watch (a night, a weekend)."""
        self._skipped += delta
