"""The sales funnel as pure formulas (SPEC §14 revenue; definitions in docs/kpi.md): conversion, drop-off per
stage, the channel quality score, cost per order, and the normal band of a daily rate learned from the last
weeks. Every rate over nothing is None, never 0.

Stages: lead → checkout (the lead reached the checkout) → booking (paid a booking) → order (an order exists).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

STAGES = ("lead_to_checkout", "checkout_to_booking", "booking_to_order")


@dataclass(frozen=True)
class LeadFacts:
    channel: str
    created_at: datetime
    checkout_at: datetime | None
    booking_at: datetime | None
    order_id: str | None
    cost_eur: float | None


def ratio(part: int, whole: int, digits: int = 4) -> float | None:
    return None if whole == 0 else round(part / whole, digits)


def lead_to_order(leads: Sequence[LeadFacts]) -> float | None:
    """Leads (created in the window) that have an order / those leads."""
    return ratio(sum(1 for lead in leads if lead.order_id), len(leads))


def checkout_to_booking(checked_out: Sequence[LeadFacts]) -> float | None:
    """Leads with checkout in the window that have a booking / leads with checkout in the window."""
    return ratio(sum(1 for lead in checked_out if lead.booking_at), len(checked_out))


def stage_counts(leads: Iterable[LeadFacts]) -> tuple[int, int, int, int]:
    """(leads, reached checkout, booked, ordered)."""
    total = checkout = booked = ordered = 0
    for lead in leads:
        total += 1
        checkout += lead.checkout_at is not None
        booked += lead.booking_at is not None
        ordered += lead.booking_at is not None and lead.order_id is not None
    return total, checkout, booked, ordered


def drop_off(leads: Sequence[LeadFacts]) -> dict[str, float | None]:
    """Per stage, the share of those who reached the stage's start and went no further."""
    total, checkout, booked, ordered = stage_counts(leads)
    pairs = ((total, checkout), (checkout, booked), (booked, ordered))
    return {
        stage: None if start == 0 else round(1 - end / start, 4)
        for stage, (start, end) in zip(STAGES, pairs, strict=True)
    }


def by_channel(leads: Iterable[LeadFacts]) -> dict[str, list[LeadFacts]]:
    grouped: dict[str, list[LeadFacts]] = defaultdict(list)
    for lead in leads:
        grouped[lead.channel].append(lead)
    return dict(sorted(grouped.items()))


def channel_quality(leads: Sequence[LeadFacts]) -> dict[str, float | None]:
    """100 × the channel's lead → order conversion / the conversion of all channels together: 100 is the
    average channel, 150 converts half as well again, 50 half as well. None when no lead converted at all."""
    overall = lead_to_order(leads)
    scores: dict[str, float | None] = {}
    for channel, own in by_channel(leads).items():
        conversion = lead_to_order(own)
        scores[channel] = None if not overall or conversion is None else round(100 * conversion / overall, 1)
    return scores


def cost_per_order(leads: Sequence[LeadFacts]) -> dict[str, float | None]:
    """Σ cost of the channel's leads / its orders (EUR); None without orders."""
    costs: dict[str, float | None] = {}
    for channel, own in by_channel(leads).items():
        orders = sum(1 for lead in own if lead.order_id)
        spent = sum(lead.cost_eur or 0.0 for lead in own)
        costs[channel] = None if orders == 0 else round(spent / orders, 2)
    return costs


# --- bands -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    mean: float
    low: float
    high: float
    days: int  # days of history it was learned from

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Daily:
    base: int  # how many were at the stage's start that day (leads, for the conversion)
    value: float


def learn_band(
    history: Sequence[Daily], base: int, *, sigmas: float, min_width: float, min_days: int
) -> Band | None:
    """The normal band of a day with `base` people at the stage's start: the rate learned from the history
    (all its days pooled) ± sigmas binomial standard deviations for that base (at least ± min_width).
    None with fewer than min_days days of history."""
    if len(history) < min_days or base <= 0:
        return None
    trials = sum(d.base for d in history)
    mean = sum(d.value * d.base for d in history) / trials
    width = max(sigmas * math.sqrt(mean * (1 - mean) / base), min_width)
    low, high = max(0.0, mean - width), min(1.0, mean + width)
    return Band(round(mean, 4), round(low, 4), round(high, 4), len(history))


def daily_rates(
    leads: Iterable[LeadFacts], tz: ZoneInfo, rate: str, *, channel: str | None = None
) -> dict[date, Daily]:
    """Per local day of creation: `rate`, either "conversion" (lead → order) or a stage of STAGES (its
    drop-off), with its base (how many were at the start); only days with a base."""
    days: dict[date, list[LeadFacts]] = defaultdict(list)
    for lead in leads:
        if channel is None or lead.channel == channel:
            days[lead.created_at.astimezone(tz).date()].append(lead)
    out: dict[date, Daily] = {}
    for day, own in sorted(days.items()):
        counts = stage_counts(own)
        if rate == "conversion":
            base, value = counts[0], lead_to_order(own)
        else:
            position = STAGES.index(rate)
            base, value = counts[position], drop_off(own)[rate]
        if value is not None:
            out[day] = Daily(base, value)
    return out


@dataclass(frozen=True)
class Excursion:
    """A day outside its band, and since when the rate has been outside it without a break."""

    day: date
    value: float
    base: int  # at the stage's start that day
    band: Band
    since: date

    @property
    def by(self) -> float:
        """How far outside: below the band negative, above positive (in rate units)."""
        return round(self.value - (self.band.low if self.value < self.band.low else self.band.high), 4)


def judge(
    series: Mapping[date, Daily],
    day: date,
    *,
    history_days: int,
    sigmas: float,
    min_width: float,
    min_days: int,
    min_leads: int,
    bad: Literal["below", "above"] = "below",
) -> Excursion | None:
    """Is `day`'s value outside the band learned from the `history_days` before it (days with at least
    `min_leads` leads), on the `bad` side (a conversion below, a drop-off above)? None when it is inside or
    on the good side, or there is no band or too few leads to judge."""
    today = series.get(day)
    if today is None or today.base < min_leads:
        return None
    history = [
        d for at, d in series.items() if at < day and (day - at).days <= history_days and d.base >= min_leads
    ]

    def band_for(daily: Daily) -> Band | None:
        return learn_band(history, daily.base, sigmas=sigmas, min_width=min_width, min_days=min_days)

    def outside(daily: Daily) -> bool:
        band = band_for(daily)
        if band is None:
            return False
        return daily.value < band.low if bad == "below" else daily.value > band.high

    band = band_for(today)
    if band is None or not outside(today):
        return None
    since = day
    for at in sorted((at for at in series if at < day), reverse=True):
        earlier = series[at]
        if earlier.base < min_leads or not outside(earlier) or (since - at).days != 1:
            break
        since = at
    return Excursion(day, today.value, today.base, band, since)
