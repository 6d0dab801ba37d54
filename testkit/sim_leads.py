"""The simulator's sales funnel (SPEC §14 leads): leads arriving per channel every day, some reaching the
checkout, fewer booking, the booked ones becoming orders, the rest lost after a day. Deterministic from the
seed; the CRM's clock decides what has happened so far (a lead created at 10:00 shows its checkout at 11:30
only once the clock is past 11:30, and its `updated_at` moves with it, so an incremental sync sees it again).

A channel can degrade (`degrade(channel, since, factor)`, or `POST /sim/leads/degrade`): leads of that channel
created from `since` on reach the checkout and book with their usual probabilities times `factor` — the
"channel that goes bad on some days" the revenue circle must notice.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# channel: leads per day, P(checkout), P(booking | checkout), P(order | booking), cost per lead (EUR)
CHANNELS: dict[str, tuple[int, float, float, float, float]] = {
    "website": (40, 0.45, 0.55, 0.9, 2.5),
    "instagram": (30, 0.35, 0.45, 0.85, 6.0),
    "telegram_ads": (25, 0.30, 0.40, 0.85, 9.0),
    "referral": (10, 0.60, 0.65, 0.95, 0.0),
    "marketplace": (20, 0.40, 0.50, 0.9, 4.0),
}
LOST_AFTER = timedelta(hours=24)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Lead:
    index: int
    channel: str
    created: datetime
    checkout: datetime | None
    booking: datetime | None
    ordered: bool
    cost: float

    @property
    def id(self) -> str:
        return f"L-{self.index + 1:06d}"

    def as_of(self, now: datetime) -> dict[str, Any] | None:
        """The record as the CRM shows it at `now` (None before the lead exists)."""
        if self.created > now:
            return None
        checkout = self.checkout if self.checkout and self.checkout <= now else None
        booking = self.booking if self.booking and self.booking <= now else None
        lost = None
        if booking is None and now - self.created >= LOST_AFTER:
            lost = self.created + LOST_AFTER
        changed = max(t for t in (self.created, checkout, booking, lost) if t is not None)
        return {
            "id": self.id,
            "created_at": _iso(self.created),
            "updated_at": _iso(changed),
            "channel": self.channel,
            "checkout_at": _iso(checkout) if checkout else None,
            "booking_at": _iso(booking) if booking else None,
            "order_id": f"BW-L{self.index + 1:06d}" if booking and self.ordered else None,
            "lost_at": _iso(lost) if lost else None,
            "cost_eur": self.cost,
        }

    def changed_at(self, now: datetime) -> datetime:
        record_times = [self.created]
        record_times += [t for t in (self.checkout, self.booking) if t is not None and t <= now]
        if self.booking is None and now - self.created >= LOST_AFTER:
            record_times.append(self.created + LOST_AFTER)
        return max(record_times)


@dataclass
class LeadFunnel:
    """Leads from `start` on, generated a day at a time as the clock reaches it."""

    seed: int
    start: datetime
    degradations: list[tuple[str, datetime, float]] = field(default_factory=list)
    _leads: list[_Lead] = field(default_factory=list)
    _until: datetime | None = None  # leads are generated up to (excluding) this day start

    def degrade(self, channel: str, since: datetime, factor: float) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
        self.degradations.append((channel, since, factor))

    def _factor(self, channel: str, created: datetime) -> float:
        factor = 1.0
        for name, since, value in self.degradations:
            if name == channel and created >= since:
                factor = value
        return factor

    def _generate(self, now: datetime) -> None:
        day = self._until or self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= now:
            rng = random.Random(f"{self.seed}:{day.date().isoformat()}")
            batch: list[_Lead] = []
            for channel, (per_day, p_checkout, p_booking, p_order, cost) in CHANNELS.items():
                for _ in range(max(0, round(rng.gauss(per_day, per_day**0.5)))):
                    created = day + timedelta(seconds=rng.uniform(7 * 3600, 21 * 3600))
                    factor = self._factor(channel, created)
                    checkout = booking = None
                    ordered = False
                    if rng.random() < p_checkout * factor:
                        checkout = created + timedelta(minutes=rng.uniform(5, 240))
                        if rng.random() < p_booking * factor:
                            booking = checkout + timedelta(minutes=rng.uniform(5, 240))
                            ordered = rng.random() < p_order
                    batch.append(_Lead(0, channel, created, checkout, booking, ordered, cost))
            batch.sort(key=lambda lead: lead.created)
            for lead in batch:
                lead.index = len(self._leads)
                self._leads.append(lead)
            day += timedelta(days=1)
        self._until = day

    def page(self, now: datetime, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str, bool]:
        """Leads changed after `cursor` ("<µs>.<index>" of the last one served), in change order."""
        self._generate(now)
        feed = sorted(
            (int(lead.changed_at(now).timestamp() * 1_000_000), lead.index)
            for lead in self._leads
            if lead.created <= now
        )
        after = (-1, -1)
        if cursor:
            stamp, _, index = cursor.partition(".")
            after = (int(stamp), int(index))
        start = bisect.bisect_right(feed, after)
        chunk = feed[start : start + limit]
        items = [self._leads[index].as_of(now) for _, index in chunk]
        last = chunk[-1] if chunk else after
        next_cursor = f"{last[0]}.{last[1]}" if last != (-1, -1) else "0.0"
        return [item for item in items if item is not None], next_cursor, start + limit < len(feed)
