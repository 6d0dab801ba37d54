"""The simulator's sales funnel (SPEC §14 leads): leads arriving per channel every day, some reaching the
checkout, fewer booking, the booked ones becoming orders, the rest lost after a day. Deterministic from the
seed; the CRM's clock decides what has happened so far (a lead created at 10:00 shows its checkout at 11:30
only once the clock is past 11:30, and its `updated_at` moves with it, so an incremental sync sees it again).

A channel can degrade (`degrade(channel, since, factor)`, or `POST /sim/leads/degrade`): its leads created
from `since` on reach the checkout and book with their usual probabilities times `factor` (the "channel that
goes bad on some days" the revenue circle must notice). A lead's dice are thrown once, its path is decided
when it is served, so a degradation set at noon changes the morning's leads that have not moved yet too.
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
    """A lead's dice, thrown once; its path through the funnel is decided when it is served, so a channel
    degraded later still changes the leads created after `since` (the CRM shows them as they are then)."""

    index: int
    channel: str
    created: datetime
    draws: tuple[float, float, float]  # the dice for checkout, booking, order
    delays: tuple[float, float]  # minutes to the checkout, then to the booking
    cost: float

    @property
    def id(self) -> str:
        return f"L-{self.index + 1:06d}"

    def path(self, factor: float) -> tuple[datetime | None, datetime | None, bool]:
        _, p_checkout, p_booking, p_order, _ = CHANNELS[self.channel]
        if self.draws[0] >= p_checkout * factor:
            return None, None, False
        checkout = self.created + timedelta(minutes=self.delays[0])
        if self.draws[1] >= p_booking * factor:
            return checkout, None, False
        return checkout, checkout + timedelta(minutes=self.delays[1]), self.draws[2] < p_order

    def as_of(self, now: datetime, factor: float) -> dict[str, Any]:
        """The record as the CRM shows it at `now` (the lead exists by then)."""
        checkout, booking, ordered = self.path(factor)
        checkout = checkout if checkout and checkout <= now else None
        booking = booking if booking and booking <= now else None
        lost = self.created + LOST_AFTER if booking is None and now - self.created >= LOST_AFTER else None
        changed = max(t for t in (self.created, checkout, booking, lost) if t is not None)
        return {
            "id": self.id,
            "created_at": _iso(self.created),
            "updated_at": _iso(changed),
            "channel": self.channel,
            "checkout_at": _iso(checkout) if checkout else None,
            "booking_at": _iso(booking) if booking else None,
            "order_id": f"BW-L{self.index + 1:06d}" if booking and ordered else None,
            "lost_at": _iso(lost) if lost else None,
            "cost_eur": self.cost,
        }


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
            for channel, (per_day, _, _, _, cost) in CHANNELS.items():
                for _ in range(max(0, round(rng.gauss(per_day, per_day**0.5)))):
                    created = day + timedelta(seconds=rng.uniform(7 * 3600, 21 * 3600))
                    draws = (rng.random(), rng.random(), rng.random())
                    delays = (rng.uniform(5, 240), rng.uniform(5, 240))
                    batch.append(_Lead(0, channel, created, draws, delays, cost))
            batch.sort(key=lambda lead: lead.created)
            for lead in batch:
                lead.index = len(self._leads)
                self._leads.append(lead)
            day += timedelta(days=1)
        self._until = day

    def page(self, now: datetime, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str, bool]:
        """Leads changed after `cursor` ("<µs>.<index>" of the last one served), in change order."""
        self._generate(now)
        records = {
            lead.index: lead.as_of(now, self._factor(lead.channel, lead.created))
            for lead in self._leads
            if lead.created <= now
        }
        feed = sorted(
            (int(datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00")).timestamp() * 1e6), index)
            for index, r in records.items()
        )
        after = (-1, -1)
        if cursor:
            stamp, _, index = cursor.partition(".")
            after = (int(stamp), int(index))
        start = bisect.bisect_right(feed, after)
        chunk = feed[start : start + limit]
        last = chunk[-1] if chunk else after
        next_cursor = f"{last[0]}.{last[1]}" if last != (-1, -1) else "0.0"
        return [records[index] for _, index in chunk], next_cursor, start + limit < len(feed)
