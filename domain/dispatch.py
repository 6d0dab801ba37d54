"""Who gets a new order (SPEC §3): eligibility, weighted load, the pick and its explanation.

`score` explains one decision over a list of snapshots; `DispatchBoard` runs many picks in a row (a sync page
of new orders, the simulator) and keeps loads current incrementally, so a pick costs O(log M) plus a copy of M
references.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from domain.statuses import FINAL_STATUSES, Status

ShiftOverride = Literal["on", "off"]
IneligibleReason = Literal["inactive", "on_leave", "off_shift", "at_capacity", "excluded"]
ELIGIBLE = "ok"

# Loads that are equal on paper (3/10 vs 0.6/2) may differ in the last float bit; ties must still be ties.
_LOAD_DIGITS = 9


def on_shift(calendar_is_working: bool, shift_override: ShiftOverride | None) -> bool:
    """`/shift on` keeps a manager on shift outside working hours, `/shift off` off inside them."""
    if shift_override == "on":
        return True
    if shift_override == "off":
        return False
    return calendar_is_working


@dataclass(frozen=True)
class ManagerSnapshot:
    manager_id: str
    active: bool
    on_leave: bool
    capacity: int
    on_shift: bool
    open_orders_by_status: Mapping[Status, int]  # the manager's open orders, assigned-not-accepted included
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class Candidate:
    manager_id: str
    load: float  # weighted / capacity
    weighted: float
    capacity: int
    eligible: bool
    reason: str  # "ok" or an IneligibleReason
    open_orders: int = 0
    last_assigned_at: datetime | None = None


def _rank(candidate: Candidate) -> tuple[float, bool, datetime | None, str]:
    # Lowest load; then assigned longest ago, never-assigned first; then id, so equal inputs give equal picks.
    last = candidate.last_assigned_at
    return (round(candidate.load, _LOAD_DIGITS), last is not None, last, candidate.manager_id)


def _load(orders: Mapping[Status, int], weights: Mapping[Status, float]) -> tuple[int, float]:
    count, weighted = 0, 0.0
    for status, n in orders.items():
        if status not in FINAL_STATUSES and n > 0:
            count += n
            weighted += n * weights.get(status, 1.0)
    return count, weighted


def _ineligible(manager: ManagerSnapshot, count: int) -> IneligibleReason | None:
    if not manager.active:
        return "inactive"
    if manager.on_leave:
        return "on_leave"
    if not manager.on_shift:
        return "off_shift"
    if count >= manager.capacity:
        return "at_capacity"
    return None


def _candidate(
    manager: ManagerSnapshot, count: int, weighted: float, last_assigned_at: datetime | None
) -> Candidate:
    reason = _ineligible(manager, count)
    load = weighted / manager.capacity if manager.capacity > 0 else float("inf")
    return Candidate(
        manager.manager_id,
        load,
        weighted,
        manager.capacity,
        reason is None,
        reason or ELIGIBLE,
        count,
        last_assigned_at,
    )


def _excluded(candidate: Candidate) -> Candidate:
    return replace(candidate, eligible=False, reason="excluded") if candidate.eligible else candidate


def score(
    managers: Iterable[ManagerSnapshot], weights: Mapping[Status, float], *, exclude: Collection[str] = ()
) -> list[Candidate]:
    """Every manager with load and eligibility, in input order.

    `exclude` holds managers who already declined or missed this order. Capacity counts orders (full at
    `capacity` open orders); load is the weighted count divided by capacity.
    """
    result = []
    for manager in managers:
        count, weighted = _load(manager.open_orders_by_status, weights)
        candidate = _candidate(manager, count, weighted, manager.last_assigned_at)
        result.append(_excluded(candidate) if manager.manager_id in exclude else candidate)
    return result


def choose(candidates: Iterable[Candidate]) -> Candidate | None:
    """The eligible candidate with the lowest load (ties: assigned longest ago); None if nobody can."""
    return min((c for c in candidates if c.eligible), key=_rank, default=None)


@dataclass
class _Entry:
    snapshot: ManagerSnapshot
    orders: dict[Status, int]
    last_assigned_at: datetime | None
    count: int = 0
    weighted: float = 0.0
    key: tuple[float, bool, float, str] | None = field(default=None)  # heap key while eligible
    candidate: Candidate | None = field(default=None)  # built when asked for, until the load changes


class DispatchBoard:
    """Snapshots of all managers for a run of picks; the caller reports each assignment it makes. A pick in a
    long run (`best_id`, `record_assignment`) touches numbers and the heap only: `Candidate` records are
    built for the explanations that ask for them."""

    def __init__(self, managers: Iterable[ManagerSnapshot], weights: Mapping[Status, float]) -> None:
        self._weights = dict(weights)
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[tuple[float, bool, float, str], str]] = []
        for manager in managers:
            if manager.manager_id in self._entries:
                raise ValueError(f"manager {manager.manager_id!r} appears twice")
            orders = {
                s: n for s, n in manager.open_orders_by_status.items() if s not in FINAL_STATUSES and n > 0
            }
            entry = _Entry(manager, orders, manager.last_assigned_at)
            self._entries[manager.manager_id] = entry
            self._refresh(entry)

    def _refresh(self, entry: _Entry) -> None:
        """Recount the entry's load; the old heap entry goes stale and is skipped when it surfaces."""
        entry.count, entry.weighted = _load(entry.orders, self._weights)
        entry.candidate = None
        manager, last = entry.snapshot, entry.last_assigned_at
        if _ineligible(manager, entry.count) is None:
            # The same order as _rank, with a float for the optional instant so heap entries always compare.
            load = entry.weighted / manager.capacity
            stamp = last.timestamp() if last is not None else 0.0
            entry.key = (round(load, _LOAD_DIGITS), last is not None, stamp, manager.manager_id)
            heapq.heappush(self._heap, (entry.key, manager.manager_id))
        else:
            entry.key = None

    def _candidate(self, entry: _Entry) -> Candidate:
        if entry.candidate is None:
            entry.candidate = _candidate(entry.snapshot, entry.count, entry.weighted, entry.last_assigned_at)
        return entry.candidate

    def _entry(self, manager_id: str) -> _Entry:
        try:
            return self._entries[manager_id]
        except KeyError:
            raise KeyError(f"manager {manager_id!r} is not on this dispatch board") from None

    def candidates(self, exclude: Collection[str] = ()) -> list[Candidate]:
        return [
            _excluded(self._candidate(e)) if manager_id in exclude else self._candidate(e)
            for manager_id, e in self._entries.items()
        ]

    def pick(self, order_id: str, exclude: Collection[str] = ()) -> tuple[Candidate | None, list[Candidate]]:
        """The manager for `order_id` and every candidate as scored for it (to store with the assignment).

        The choice does not depend on `order_id` (it names the order for the caller's trace), and the board
        does not assume the pick is taken: call `record_assignment` when the assignment is made.
        """
        return self.best(exclude), self.candidates(exclude)

    def best(self, exclude: Collection[str] = ()) -> Candidate | None:
        """The manager `pick` chooses, without listing every candidate."""
        manager_id = self.best_id(exclude)
        return None if manager_id is None else self._candidate(self._entries[manager_id])

    def best_id(self, exclude: Collection[str] = ()) -> str | None:
        """The id of the manager `best` chooses (for a caller that keeps the board's snapshot and its picks
        instead of each candidate, as the dispatch pass does)."""
        heap, skipped = self._heap, []
        chosen: str | None = None
        while heap:
            key, manager_id = heap[0]
            if self._entries[manager_id].key != key:
                heapq.heappop(heap)  # stale: this manager's load changed since
            elif manager_id in exclude:
                skipped.append(heapq.heappop(heap))
            else:
                chosen = manager_id
                break
        for item in skipped:
            heapq.heappush(heap, item)
        return chosen

    def record_assignment(
        self, manager_id: str, now: datetime, status: Status = Status.PENDING_MANAGER
    ) -> None:
        """Count a new order for the manager (assigned orders wait in pending_manager) and stamp the time."""
        entry = self._entry(manager_id)
        entry.orders[status] = entry.orders.get(status, 0) + 1
        entry.last_assigned_at = now
        self._refresh(entry)

    def record_release(self, manager_id: str, status: Status = Status.PENDING_MANAGER) -> None:
        """Take an order off the manager (assignment expired or declined, order moved on or closed)."""
        entry = self._entry(manager_id)
        if entry.orders.get(status, 0) <= 0:
            raise ValueError(f"manager {manager_id!r} has no {status.value} order to release")
        entry.orders[status] -= 1
        self._refresh(entry)
