"""When a signal's condition has cleared (issue 12): pure rules over what the store says of the order now.

A signal type declares its `clears_when` (domain/signals.py); the clearing sweep (backbone/clearing.py) reads
the orders of the live signals and asks `cleared_by_order` whether each one still stands. Problems of a source
(a sync run, a CRM write, a blocked chat) are cleared where their source reports success."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.signals import ClearWhen, Signal

ORDER_CONDITIONS = frozenset({ClearWhen.ORDER_LEFT_STATUS, ClearWhen.ORDER_OFFERED, ClearWhen.ORDER_MOVED})


@dataclass(frozen=True)
class OrderNow:
    """What clearing needs to know about an order as the store has it now."""

    status: str
    status_since: datetime
    offered_at: datetime | None  # the latest live offer or accepted assignment (None: nobody has it)


@dataclass(frozen=True)
class Cleared:
    """Why and when a signal's condition cleared: `code` is a ClearWhen value, `facts` feed the texts."""

    code: ClearWhen
    at: datetime
    facts: dict[str, Any] = field(default_factory=dict)

    def as_details(self) -> dict[str, Any]:
        return {"code": str(self.code), "at": self.at.isoformat(), **self.facts}


def cleared_by_order(signal: Signal, order: OrderNow | None, now: datetime) -> Cleared | None:
    """Whether the order-based condition of `signal` has cleared; None while it still stands."""
    when = signal.kind.clears_when
    if when not in ORDER_CONDITIONS or order is None:
        return None
    moved = order.status_since > signal.raised_at
    if when is ClearWhen.ORDER_LEFT_STATUS:
        breached = signal.details.get("status")
        if breached is not None and order.status != breached:
            return Cleared(
                when, min(max(order.status_since, signal.raised_at), now), {"status": order.status}
            )
        return None
    if when is ClearWhen.ORDER_OFFERED:
        if order.offered_at is not None:
            return Cleared(when, min(max(order.offered_at, signal.raised_at), now), {"status": order.status})
        if order.status != "pending_manager":
            return Cleared(
                when, min(max(order.status_since, signal.raised_at), now), {"status": order.status}
            )
        return None
    if moved:  # ORDER_MOVED
        return Cleared(when, min(order.status_since, now), {"status": order.status})
    return None
