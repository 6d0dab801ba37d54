"""Governance rules that need no store: process drift (which CRM changes the documented process forbids) and
the policy update lead time (SPEC §14, docs/kpi.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from domain.statuses import FINAL_STATUSES, STATUS_ORDER, Status, is_legal

DriftRule = Literal["forbidden_transition", "checklist_incomplete", "cancel_unapproved", "status_back"]


@dataclass(frozen=True)
class Change:
    """A status change seen in the CRM, with what the bot knows about its order at that moment."""

    from_status: Status | None
    to_status: Status
    checklist_complete: bool
    cancel_approved: bool


def drift_rules(change: Change) -> list[DriftRule]:
    """The documented rules a CRM change broke (empty: it followed the process).

    - status_back: the order went back to an earlier status (the table only goes forward);
    - forbidden_transition: any other move the table does not allow (a skipped step, out of a final status);
    - checklist_incomplete: into awaiting_client without a complete 28-point checklist;
    - cancel_unapproved: cancelled without an admin's approval.
    """
    broken: list[DriftRule] = []
    before, after = change.from_status, change.to_status
    if before is not None and before != after and not is_legal(before, after):
        backwards = (
            before not in FINAL_STATUSES
            and after is not Status.CANCELLED
            and STATUS_ORDER[after] < STATUS_ORDER[before]
        )
        broken.append("status_back" if backwards else "forbidden_transition")
    if (
        after is Status.AWAITING_CLIENT
        and before is not Status.AWAITING_CLIENT
        and not change.checklist_complete
    ):
        broken.append("checklist_incomplete")
    if after is Status.CANCELLED and before is not Status.CANCELLED and not change.cancel_approved:
        broken.append("cancel_unapproved")
    return broken


def lead_time_days(imports: Sequence[tuple[datetime, datetime]]) -> float | None:
    """Mean days from a list's own date (published) to when it was in force here (imported); None if none."""
    if not imports:
        return None
    days = [max(0.0, (imported - published).total_seconds() / 86_400) for published, imported in imports]
    return round(sum(days) / len(days), 2)
