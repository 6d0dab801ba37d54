"""Observed effects that mean something (issue 12): each kind of decision declares what it expects to happen
and when to look, and `judge` says what happened, once it is known or the window has passed.

- reassign (by hand, by a handover, or the dispatcher's after a decline or a timeout): the order is accepted
  within the acceptance timeout;
- remind (80 % of a budget): the order reaches its next status before the breach;
- escalate, acknowledge, snooze, "still on it?" on an order: the order moves within the effect window;
- postmortem: the same problem (same signal type, same status) is not raised again within `NO_REPEAT_DAYS`;
- cancel, compensation, bulk reassignment: settled by the admin's verdict; their settler writes the effect
  then, never the sweep (an effect is never written before a decision is settled).
Pure: the caller brings what the store knows (`Observed`) and `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Expect(StrEnum):
    ACCEPTED = "accepted"
    NEXT_STATUS = "next_status"
    ORDER_MOVES = "order_moves"
    NO_REPEAT = "no_repeat"
    SETTLED = "settled"


EXPECTED: dict[str, Expect] = {
    "reassign": Expect.ACCEPTED,
    "remind": Expect.NEXT_STATUS,
    "escalate": Expect.ORDER_MOVES,
    "ack": Expect.ORDER_MOVES,
    "snooze": Expect.ORDER_MOVES,
    "still_on_it": Expect.ORDER_MOVES,
    "still_on_it_asked": Expect.ORDER_MOVES,
    "postmortem": Expect.NO_REPEAT,
    "cancel": Expect.SETTLED,
    "compensation": Expect.SETTLED,
    "bulk_reassign": Expect.SETTLED,
}
# What the sweep observes (the settled ones are written by their settlers).
OBSERVED_ACTIONS: tuple[str, ...] = tuple(a for a, e in EXPECTED.items() if e is not Expect.SETTLED)
NO_REPEAT_DAYS = 7


@dataclass(frozen=True)
class Observed:
    """What the store says happened after a decision (each None when it did not happen)."""

    status_change: tuple[str, datetime] | None = None  # the first status change after the decision
    accepted_at: datetime | None = None  # the first acceptance of the order after the decision
    repeat: tuple[int, datetime] | None = None  # the first signal repeating the problem (postmortem)


def deadline(expect: Expect, made_at: datetime, *, window: timedelta, facts: dict[str, Any]) -> datetime:
    """Until when the effect is looked for. `window`: the acceptance timeout for ACCEPTED (as an instant's
    distance, already in working time), the effect window otherwise; a reminder looks until its breach."""
    if expect is Expect.NEXT_STATUS and isinstance(facts.get("breach_at"), str):
        return datetime.fromisoformat(facts["breach_at"])
    if expect is Expect.NO_REPEAT:
        return made_at + timedelta(days=NO_REPEAT_DAYS)
    return made_at + window


def _minutes(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() / 60))


def judge(
    expect: Expect, made_at: datetime, until: datetime, seen: Observed, now: datetime
) -> dict[str, Any] | None:
    """The effect to record, or None while it is not known yet (inside the window, nothing happened)."""
    base: dict[str, Any] = {"expected": str(expect), "window_min": _minutes(made_at, until)}
    if expect is Expect.ACCEPTED:
        if seen.accepted_at is not None and seen.accepted_at <= until:
            return {**base, "helped": True, "minutes": _minutes(made_at, seen.accepted_at)}
    elif expect in (Expect.NEXT_STATUS, Expect.ORDER_MOVES):
        if seen.status_change is not None and seen.status_change[1] <= until:
            status, at = seen.status_change
            return {
                **base,
                "helped": status != "cancelled",
                "moved_to": status,
                "minutes": _minutes(made_at, at),
            }
    elif expect is Expect.NO_REPEAT:
        if seen.repeat is not None and seen.repeat[1] <= until:
            signal_id, at = seen.repeat
            return {**base, "helped": False, "repeat": signal_id, "minutes": _minutes(made_at, at)}
    else:
        return None  # settled ones are written by their settler
    if now < until:
        return None
    return {**base, "helped": expect is Expect.NO_REPEAT, "moved_to": None, "minutes": base["window_min"]}
