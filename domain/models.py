"""Plain records of the business: orders, managers and status events, as the store and agents pass them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from domain.dispatch import ShiftOverride
from domain.statuses import FINAL_STATUSES, Status

EventSource = Literal["bot", "crm"]


@dataclass(frozen=True)
class Order:
    id: str
    status: Status
    created_at: datetime
    updated_at: datetime
    status_since: datetime  # when the current status was entered
    client_name: str
    client_city: str
    bike_brand: str
    bike_model: str
    price_eur: float
    is_ebike: bool
    seller: str
    crm_manager_id: str | None = None  # the manager the CRM shows
    assigned_manager_id: str | None = None  # the manager our dispatcher assigned (accepted or pending)
    sale_eur: float | None = None
    purchase_eur: float | None = None
    shipping_eur: float | None = None
    fees_eur: float | None = None
    tracking_number: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_STATUSES


@dataclass(frozen=True)
class Manager:
    id: str
    name: str
    telegram_id: int | None = None
    active: bool = True
    capacity: int = 10
    timezone: str | None = None  # None: the policy calendar's time zone
    on_leave: bool = False
    shift_override: ShiftOverride | None = None
    misses: int = 0  # assignments that expired unanswered
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class StatusEvent:
    order_id: str
    from_status: Status | None  # None for the order's first status
    to_status: Status
    actor: str  # manager id, "crm" or "system"
    source: EventSource
    at: datetime


def margin_eur(order: Order) -> float | None:
    """Sale − purchase − shipping − fees (SPEC §12).

    None while any part is unknown: a margin from partial prices would look like a leak or a windfall.
    """
    parts = (order.sale_eur, order.purchase_eur, order.shipping_eur, order.fees_eur)
    if any(part is None for part in parts):
        return None
    sale, purchase, shipping, fees = (float(part) for part in parts if part is not None)
    return sale - purchase - shipping - fees
