"""The orchestration's decisions (domain/orchestration.py) that the bot's agents and the simulation share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.dispatch import DispatchBoard, ManagerSnapshot
from domain.orchestration import next_due, next_rung, offer_expired, pick_managers, signal_overdue
from domain.policy import Policy
from domain.signals import Ladder, Level
from domain.sla import VisitDeadlines
from domain.statuses import Status

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def _manager(manager_id: str, capacity: int) -> ManagerSnapshot:
    return ManagerSnapshot(manager_id, True, False, capacity, True, {}, None)


def test_each_pick_adds_load_so_the_queue_spreads_and_exclusions_hold() -> None:
    board = DispatchBoard([_manager("a", 2), _manager("b", 2)], Policy.default().load_weights)
    picks = pick_managers(board, [("o1", ()), ("o2", ()), ("o3", {"a"}), ("o4", ()), ("o5", ())], NOW)
    # o1 and o2 spread over both; o3 may not go to a; then a takes o4 and everyone is full for o5.
    assert picks == [("o1", "a"), ("o2", "b"), ("o3", "b"), ("o4", "a"), ("o5", None)]


def test_an_offer_expires_only_when_still_open_at_its_deadline() -> None:
    due = NOW + timedelta(minutes=15)
    assert not offer_expired(state="offered", expires_at=due, now=NOW)
    assert offer_expired(state="offered", expires_at=due, now=due)
    assert not offer_expired(state="accepted", expires_at=due, now=due + timedelta(hours=1))


def _deadlines() -> VisitDeadlines:
    return VisitDeadlines(
        Status.INSPECTION,
        NOW,
        600,
        "working",
        "high",
        NOW + timedelta(hours=8),
        NOW + timedelta(hours=10),
        NOW + timedelta(hours=72),
        "v1",
    )


def test_the_next_due_instant_follows_what_was_done() -> None:
    d = _deadlines()
    assert next_due(d, reminded=False, breached=False, stuck_signalled=False) == d.reminder_at
    assert next_due(d, reminded=True, breached=False, stuck_signalled=False) == d.breach_at
    assert next_due(d, reminded=True, breached=True, stuck_signalled=False) == d.stuck_at
    checkin = NOW + timedelta(hours=1)
    assert next_due(d, reminded=False, breached=False, stuck_signalled=False, checkin_at=checkin) == checkin
    assert next_due(d, reminded=True, breached=True, stuck_signalled=True) is None


def test_the_ladder_climbs_an_open_signal_past_its_deadline_and_stops_at_the_top() -> None:
    tz = ZoneInfo("Europe/Berlin")
    assert signal_overdue(state="open", deadline=NOW, now=NOW)
    assert not signal_overdue(state="acknowledged", deadline=NOW, now=NOW)
    assert not signal_overdue(state="open", deadline=NOW + timedelta(minutes=1), now=NOW)
    ladder = Ladder.of(Policy.default().signals)
    rung = next_rung("high", Level.MANAGER, NOW, tz, ladder)
    assert rung is not None and rung.level is Level.LEAD and rung.deadline > NOW
    assert next_rung("high", max(Level), NOW, tz, ladder) is None
