"""SLA deadlines of a status visit and the sweep's decision of what is due (SPEC §5).

Deadlines are computed once, when an order enters a status, under the policy in force then: a later policy
edit never turns an old visit red. The sweep only compares stored instants with `now` (`due_actions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from domain.calendar import WorkingCalendar
from domain.policy import Clock, Policy, Severity
from domain.statuses import FINAL_STATUSES, Status

SweepAction = Literal["remind", "breach", "stuck"]


@dataclass(frozen=True)
class VisitDeadlines:
    status: Status
    entered_at: datetime
    budget_minutes: int
    clock: Clock
    severity: Severity
    reminder_at: datetime
    breach_at: datetime
    stuck_at: datetime
    policy_version: str


class HasDeadlines(Protocol):
    """Anything carrying a visit's deadlines: `VisitDeadlines` or a stored row."""

    @property
    def reminder_at(self) -> datetime: ...
    @property
    def breach_at(self) -> datetime: ...
    @property
    def stuck_at(self) -> datetime: ...


def _after(start: datetime, minutes: float, clock: Clock, calendar: WorkingCalendar) -> datetime:
    if clock == "working":
        return calendar.add_working_minutes(start, minutes)
    return calendar.add_calendar_minutes(start, minutes)


def plan_visit(
    status: Status, entered_at: datetime, policy: Policy, calendar: WorkingCalendar
) -> VisitDeadlines | None:
    """Deadlines of the visit that starts at `entered_at`; None for final statuses (nothing is due there)."""
    if status in FINAL_STATUSES:
        return None
    budget = policy.budgets[status]
    return VisitDeadlines(
        status=status,
        entered_at=entered_at,
        budget_minutes=budget.minutes,
        clock=budget.clock,
        severity=budget.severity,
        reminder_at=_after(entered_at, budget.minutes * policy.reminder_share, budget.clock, calendar),
        breach_at=_after(entered_at, budget.minutes, budget.clock, calendar),
        stuck_at=calendar.add_calendar_minutes(entered_at, policy.stuck_hours * 60),
        policy_version=policy.version,
    )


def accept_deadline(assigned_at: datetime, policy: Policy, calendar: WorkingCalendar) -> datetime:
    """When an unanswered assignment expires: `accept_timeout_minutes` of working time after it was made."""
    return calendar.add_working_minutes(assigned_at, policy.accept_timeout_minutes)


def still_on_it_at(since: datetime, policy: Policy, calendar: WorkingCalendar) -> datetime:
    """When an owner without progress since `since` is asked "still on it?" (working time)."""
    return calendar.add_working_minutes(since, policy.still_on_it_minutes)


def due_actions(
    deadlines: HasDeadlines,
    *,
    reminded: bool,
    breached: bool,
    stuck_signalled: bool,
    now: datetime,
) -> list[SweepAction]:
    """What a sweep must do for one open visit at `now`, given what was already done.

    A breach supersedes the reminder: once the budget is spent (or when both fall due in one sweep) the owner
    gets the breach, never a late reminder. Being stuck is independent of the budget.
    """
    actions: list[SweepAction] = []
    if not breached and now >= deadlines.breach_at:
        actions.append("breach")
    elif not breached and not reminded and now >= deadlines.reminder_at:
        actions.append("remind")
    if not stuck_signalled and now >= deadlines.stuck_at:
        actions.append("stuck")
    return actions
