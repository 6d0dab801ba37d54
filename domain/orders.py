"""Rules of working an order from its card (SPEC §3, §4): the steps a manager takes and the reasons a decline
or a cancellation may give. Codes only: their texts live in keyboards/orders.py."""

from __future__ import annotations

from domain.statuses import Status

# Step code (a status button) -> the status it moves the order to. "chk" opens the checklist instead, whose
# Submit moves the order on.
STEP_ACTIONS: dict[str, Status] = {
    "insp": Status.INSPECTION,
    "yes": Status.READY_FOR_SHIPMENT,
    "dlv": Status.DELIVERED,
}

# Why a manager declines an offer.
DECLINE_REASONS: tuple[str, ...] = ("busy", "away", "skill", "other")

CLIENT_SAID_NO = "client_no"  # the cancel reason of "Client answered no" (its own button)
# Why an order is cancelled (cancelling waits for an admin's approval).
CANCEL_REASONS: tuple[str, ...] = ("client", "seller", "defect", "other", CLIENT_SAID_NO)
