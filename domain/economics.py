"""Unit economics (AI-CFO, SPEC §12 and §14) as pure functions: an order's net margin, the causes of a leak,
the detector's findings with their rule, EUR and recommended correction, and the KPIs over a window.

Definitions (docs/kpi.md has them with the edge cases):
- net margin of an order = sale − purchase − shipping − fees − Σ its compensations; unknown (None) while any
  price is unknown: such an order is left out of every sum (and reported as unpriced).
- margin leak: net margin below `margin_floor_pct` × sale; its EUR = floor × sale − net.
- causes of a leak: compensation (Σ compensations), shipping above the usual (shipping − usual_shipping_eur),
  purchase above booked (purchase − the purchase the forecast was booked on), under-collected payment (sale −
  Σ payments + Σ refunds). One order can have several; each names its EUR.
- An empty window (no order delivered in it) gives None for every KPI, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

CauseKind = Literal["compensation", "shipping", "purchase", "under_collection"]
Rule = Literal["negative_margin", "margin_floor", "under_collection"]
# What the owner is told to do about a leak, keyed by its largest cause ("price" when nothing explains it).
Correction = Literal[
    "reclaim_compensation", "renegotiate_shipping", "renegotiate_purchase", "collect", "price"
]

CORRECTION_OF: dict[CauseKind, Correction] = {
    "compensation": "reclaim_compensation",
    "shipping": "renegotiate_shipping",
    "purchase": "renegotiate_purchase",
    "under_collection": "collect",
}


@dataclass(frozen=True, slots=True)
class EconomicsRules:
    """The leak detector's rules, from policy.toml [unit_economics] (the one source of their values)."""

    margin_floor_pct: float  # a fraction of the sale: 0.08 = 8 %
    usual_shipping_eur: float
    shipping_tolerance_eur: float  # shipping up to usual + this is not a cause
    purchase_tolerance_pct: float  # purchase up to booked × (1 + this) is not a cause
    under_collection_tolerance_eur: float  # collected short by up to this is not a cause


@dataclass(frozen=True, slots=True)
class Booking:
    """The forecast booked at acceptance and the purchase price it was booked on."""

    forecast: float
    purchase: float


@dataclass(frozen=True, slots=True)
class MoneyOrder:
    """What an order's margin is made of."""

    order_id: str
    delivered_at: datetime
    sale: float | None
    purchase: float | None
    shipping: float | None
    fees: float | None
    compensations: tuple[tuple[float, str], ...] = ()  # (amount, reason)
    collected: float = 0.0  # Σ payments − Σ refunds
    booking: Booking | None = None
    channel: str | None = None
    seller: str = ""
    model: str = ""

    @property
    def compensated(self) -> float:
        return sum(amount for amount, _ in self.compensations)

    @property
    def priced(self) -> bool:
        return None not in (self.sale, self.purchase, self.shipping, self.fees)

    @property
    def net(self) -> float | None:
        if self.sale is None or self.purchase is None or self.shipping is None or self.fees is None:
            return None
        return self.sale - self.purchase - self.shipping - self.fees - self.compensated


@dataclass(frozen=True, slots=True)
class Cause:
    kind: CauseKind
    eur: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired on one order: the signal the owner gets."""

    order_id: str
    rule: Rule
    eur: float  # the leak (margin rules) or the amount not collected
    net: float | None
    sale: float
    causes: tuple[Cause, ...]
    correction: Correction

    @property
    def high(self) -> bool:
        return self.rule == "negative_margin"


def causes(order: MoneyOrder, rules: EconomicsRules) -> list[Cause]:
    """Every cause of lost margin on the order, the largest first."""
    found: list[Cause] = []
    if order.compensated > 0:
        found.append(Cause("compensation", round(order.compensated, 2)))
    if (
        order.shipping is not None
        and order.shipping > rules.usual_shipping_eur + rules.shipping_tolerance_eur
    ):
        found.append(Cause("shipping", round(order.shipping - rules.usual_shipping_eur, 2)))
    booked = order.booking.purchase if order.booking is not None else None
    if (
        order.purchase is not None
        and booked is not None
        and order.purchase > booked * (1 + rules.purchase_tolerance_pct) + 1e-9
    ):
        found.append(Cause("purchase", round(order.purchase - booked, 2)))
    short = under_collected(order)
    if short is not None and short > rules.under_collection_tolerance_eur:
        found.append(Cause("under_collection", round(short, 2)))
    found.sort(key=lambda c: -c.eur)
    return found


def under_collected(order: MoneyOrder) -> float | None:
    return None if order.sale is None else order.sale - order.collected


def leak_eur(order: MoneyOrder, rules: EconomicsRules) -> float | None:
    """floor × sale − net when the net margin is below the floor; 0 when not; None when not priced."""
    net = order.net
    if net is None or order.sale is None:
        return None
    return max(0.0, rules.margin_floor_pct * order.sale - net)


def findings(order: MoneyOrder, rules: EconomicsRules) -> list[Finding]:
    """The rules that fire on a delivered order: a negative margin (high) or a margin below the floor, and an
    under-collected payment. Each carries every cause and the correction for the largest one."""
    net, sale = order.net, order.sale
    if net is None or sale is None:
        return []
    found_causes = causes(order, rules)
    correction: Correction = CORRECTION_OF[found_causes[0].kind] if found_causes else "price"
    result: list[Finding] = []
    leak = leak_eur(order, rules)
    if leak:
        rule: Rule = "negative_margin" if net < 0 else "margin_floor"
        result.append(
            Finding(order.order_id, rule, round(leak, 2), net, sale, tuple(found_causes), correction)
        )
    short = next((c for c in found_causes if c.kind == "under_collection"), None)
    if short is not None:
        result.append(Finding(order.order_id, "under_collection", short.eur, net, sale, (short,), "collect"))
    return result


# --- the KPIs of SPEC §14 over one window -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitEconomics:
    delivered: int
    unpriced: int  # delivered orders left out for want of a price
    net_margin_eur: float | None
    margin_pct: float | None
    margin_leak_count: int | None
    margin_leak_eur: float | None
    realized_vs_booked: float | None
    forecast_accuracy: float | None

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "net_margin_eur": _round(self.net_margin_eur),
            "margin_pct": _round(self.margin_pct, 4),
            "margin_leak_count": self.margin_leak_count,
            "margin_leak_eur": _round(self.margin_leak_eur),
            "realized_vs_booked": _round(self.realized_vs_booked, 4),
            "forecast_accuracy": _round(self.forecast_accuracy, 4),
            "delivered_orders": self.delivered,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def unit_economics(orders: Sequence[MoneyOrder], rules: EconomicsRules) -> UnitEconomics:
    """SPEC §14 over the orders delivered in a window (the caller picks them)."""
    priced = [o for o in orders if o.net is not None and o.sale is not None]
    unpriced = len(orders) - len(priced)
    if not priced:
        return UnitEconomics(len(orders), unpriced, None, None, None, None, None, None)
    nets = [o.net for o in priced if o.net is not None]
    sales = sum(o.sale for o in priced if o.sale is not None)
    net = sum(nets)
    leaks = [leak for o in priced if (leak := leak_eur(o, rules))]
    forecasted = [o for o in priced if o.booking is not None]
    spread = sum(abs(o.net) for o in forecasted if o.net is not None)
    miss = sum(
        abs(o.net - o.booking.forecast) for o in forecasted if o.net is not None and o.booking is not None
    )
    return UnitEconomics(
        delivered=len(orders),
        unpriced=unpriced,
        net_margin_eur=net,
        margin_pct=net / sales if sales else None,
        margin_leak_count=len(leaks),
        margin_leak_eur=sum(leaks),
        realized_vs_booked=sum(o.collected for o in priced) / sales if sales else None,
        forecast_accuracy=1 - miss / spread if forecasted and spread else None,
    )


def top_leaks(orders: Sequence[MoneyOrder], rules: EconomicsRules, limit: int = 3) -> list[Finding]:
    """The largest margin leaks (negative margins and margins under the floor), largest first."""
    found = [f for o in orders for f in findings(o, rules) if f.rule != "under_collection"]
    found.sort(key=lambda f: (-f.eur, f.order_id))
    return found[:limit]


# --- incidents (Trust & Quality, SPEC §14) ------------------------------------------------------------------

IncidentKind = Literal["compensation", "dispute"]


@dataclass(frozen=True, slots=True)
class Incident:
    kind: IncidentKind
    order_id: str
    id: str
    at: datetime
    amount: float | None  # a compensation's EUR
    seller: str
    model: str
