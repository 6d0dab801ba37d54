"""Canonical order statuses, the transition table (SPEC §2) and the mapping from CRM status names."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Literal


class Status(StrEnum):
    PENDING_MANAGER = "pending_manager"
    ACCEPTED = "accepted"
    INSPECTION = "inspection"
    AWAITING_CLIENT = "awaiting_client"
    READY_FOR_SHIPMENT = "ready_for_shipment"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


# The forward chain; an order moves along it one step at a time.
_CHAIN: tuple[Status, ...] = (
    Status.PENDING_MANAGER,
    Status.ACCEPTED,
    Status.INSPECTION,
    Status.AWAITING_CLIENT,
    Status.READY_FOR_SHIPMENT,
    Status.IN_TRANSIT,
    Status.DELIVERED,
)

FINAL_STATUSES: frozenset[Status] = frozenset({Status.DELIVERED, Status.CANCELLED})
OPEN_STATUSES: frozenset[Status] = frozenset(Status) - FINAL_STATUSES
# Lifecycle position: sorts queues and tells whether a status is "later" (throughput KPI); cancelled is last.
STATUS_ORDER: dict[Status, int] = {status: index for index, status in enumerate((*_CHAIN, Status.CANCELLED))}

TransitionReason = Literal["final_status", "not_allowed", "checklist_incomplete", "same_status"]

_TRANSITIONS: dict[Status, frozenset[Status]] = {
    status: frozenset()
    if status in FINAL_STATUSES
    else frozenset({_CHAIN[_CHAIN.index(status) + 1], Status.CANCELLED})
    for status in Status
}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow; `reason` is a stable code for texts and logs."""

    def __init__(self, from_: Status, to: Status, reason: TransitionReason) -> None:
        self.from_ = from_
        self.to = to
        self.reason: TransitionReason = reason
        super().__init__(f"illegal transition {from_.value} -> {to.value}: {reason}")


class UnknownStatus(ValueError):
    """A CRM status name that is neither canonical nor a configured alias."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown order status {name!r}")


def allowed_transitions(status: Status) -> frozenset[Status]:
    """Statuses reachable from `status` in one step (empty for final statuses)."""
    return _TRANSITIONS[status]


def is_legal(from_: Status, to: Status) -> bool:
    return to in _TRANSITIONS[from_]


def check_transition(from_: Status, to: Status, *, checklist_complete: bool) -> None:
    """Raise `IllegalTransition` unless `from_ -> to` may happen now.

    inspection -> awaiting_client also needs a complete checklist (SPEC §4); cancelling never does.
    """
    if from_ == to:
        raise IllegalTransition(from_, to, "same_status")
    if from_ in FINAL_STATUSES:
        raise IllegalTransition(from_, to, "final_status")
    if not is_legal(from_, to):
        raise IllegalTransition(from_, to, "not_allowed")
    if from_ is Status.INSPECTION and to is Status.AWAITING_CLIENT and not checklist_complete:
        raise IllegalTransition(from_, to, "checklist_incomplete")


def next_steps(status: Status) -> list[Status]:
    """The buttons a manager sees: the forward step first, then cancel; nothing for a final status."""
    return sorted(_TRANSITIONS[status], key=STATUS_ORDER.__getitem__)


def _normalise(name: str) -> str:
    return name.strip().casefold()


class StatusMap:
    """Maps the CRM's status names onto canonical statuses.

    Canonical names map to themselves; `aliases` (from the policy file) add the CRM's own names. Matching
    ignores case and surrounding spaces, since CRM exports are not consistent about either.
    """

    def __init__(self, aliases: Mapping[str, Status | str] | None = None) -> None:
        table: dict[str, Status] = {status.value: status for status in Status}
        for alias, target in (aliases or {}).items():
            key = _normalise(alias)
            if not key:
                raise ValueError("empty CRM status alias")
            status = Status(target)
            if table.get(key, status) is not status:
                raise ValueError(f"CRM status alias {alias!r} conflicts with status {table[key].value!r}")
            table[key] = status
        self._table = table

    def canonical(self, name: str) -> Status:
        try:
            return self._table[_normalise(name)]
        except KeyError:
            raise UnknownStatus(name) from None

    __call__ = canonical

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalise(name) in self._table
