"""The orchestration's decisions, as pure functions of plain values and `now`: the live agents (dispatcher,
SLA watchdog, escalation sweep) and the simulation (`demo/simulation.py`) both call them, so the prediction
cannot drift from the product. The callers keep only what differs: the bot reads and writes SQLite and
Telegram, the simulation models people and time.

- the dispatch tick: `pick_managers` (who gets each waiting order, in queue order, on one board);
- offer expiry: `offer_expired`;
- reminders, breaches, stuck orders: `domain.sla.due_actions` (what is due), `next_due` (when next);
- the escalation ladder: `signal_overdue` (open past its deadline), `next_rung` (who owns it next).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from domain.dispatch import DispatchBoard
from domain.signals import Ladder, Level, escalate_level, response_deadline
from domain.sla import HasDeadlines

# --- the dispatch tick --------------------------------------------------------------------------------------


def pick_managers(
    board: DispatchBoard, waiting: Iterable[tuple[str, Collection[str]]], now: datetime
) -> list[tuple[str, str | None]]:
    """For each waiting order (id, managers it may not go to), in queue order, the id of the manager it is
    offered to (None: nobody can take it now, `order.unassigned`); each pick is recorded on the board at
    `now`, so the next order sees the load it adds."""
    picks: list[tuple[str, str | None]] = []
    for order_id, excluded in waiting:
        chosen = board.best_id(excluded)
        if chosen is not None:
            board.record_assignment(chosen, now)
        picks.append((order_id, chosen))
    return picks


# --- offer expiry -------------------------------------------------------------------------------------------


def offer_expired(*, state: str, expires_at: datetime, now: datetime) -> bool:
    """An offer nobody answered by its acceptance deadline expires: a miss, and the order goes to the next
    candidate (never back to this manager)."""
    return state == "offered" and expires_at <= now


# --- reminders, breaches, stuck orders ----------------------------------------------------------------------


def next_due(
    deadlines: HasDeadlines,
    *,
    reminded: bool,
    breached: bool,
    stuck_signalled: bool,
    checkin_at: datetime | None = None,
) -> datetime | None:
    """When a visit next has something due, given what was done (None: nothing more). The reminder is due
    only before the breach; `checkin_at` is the pending "still on it?" question, if one applies."""
    pending = []
    if not breached:
        pending.append(deadlines.breach_at if reminded else deadlines.reminder_at)
    if not stuck_signalled:
        pending.append(deadlines.stuck_at)
    if checkin_at is not None:
        pending.append(checkin_at)
    return min(pending, default=None)


# --- the escalation ladder ----------------------------------------------------------------------------------


def signal_overdue(*, state: str, deadline: datetime | None, now: datetime) -> bool:
    """An open (unacknowledged) signal past its response deadline climbs the ladder."""
    return state == "open" and deadline is not None and deadline <= now


@dataclass(frozen=True)
class Rung:
    level: Level
    deadline: datetime  # the new owner's response deadline


def next_rung(severity: str, level: int, now: datetime, tz: ZoneInfo, ladder: Ladder) -> Rung | None:
    """One rung up from `level` at `now`: the next level and its fresh deadline; None at the top."""
    higher = escalate_level(level)
    if higher is None:
        return None
    return Rung(higher, response_deadline(severity, now, tz, ladder))
