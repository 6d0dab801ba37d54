"""Reads over the order history: when the orders arrived (`main.py simulate --replay`) and each order's
ledger across the tables that must agree about it (the demo's end-of-run consistency check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from storage.db import Database, parse_ts, parse_ts_opt


async def order_arrivals(db: Database) -> list[datetime]:
    """The creation instants of every order in the store, oldest first."""
    rows = await db.fetchall("SELECT created_at FROM orders ORDER BY created_at")
    return [parse_ts(row["created_at"]) for row in rows]


@dataclass
class OrderLedger:
    """What each table says about one order."""

    order_id: str
    status: str
    assigned_manager_id: str | None
    events: list[str] = field(default_factory=list)  # to_status of every status event, in order
    open_visits: list[str] = field(default_factory=list)  # statuses of SLA visits not closed
    assignments: list[tuple[str, str]] = field(default_factory=list)  # (state, manager id), in order


async def order_ledgers(db: Database) -> list[OrderLedger]:
    """Every order with its status events, open SLA visits and assignments, ordered by order id (rows of
    orders not in the orders table are left out: they would show up as an order without events)."""
    ledgers = {
        row["id"]: OrderLedger(row["id"], row["status"], row["assigned_manager_id"])
        for row in await db.fetchall("SELECT id, status, assigned_manager_id FROM orders ORDER BY id")
    }
    for row in await db.fetchall("SELECT order_id, to_status FROM order_status_events ORDER BY at, id"):
        if (ledger := ledgers.get(row["order_id"])) is not None:
            ledger.events.append(row["to_status"])
    for row in await db.fetchall(
        "SELECT order_id, status FROM sla_timers WHERE closed_at IS NULL ORDER BY id"
    ):
        if (ledger := ledgers.get(row["order_id"])) is not None:
            ledger.open_visits.append(row["status"])
    for row in await db.fetchall("SELECT order_id, state, manager_id FROM ai_assignments ORDER BY id"):
        if (ledger := ledgers.get(row["order_id"])) is not None:
            ledger.assignments.append((row["state"], row["manager_id"]))
    return list(ledgers.values())


@dataclass
class Timeline:
    """One order's path through the statuses, as its status events tell it: (status entered, at, actor)."""

    order_id: str
    created_at: datetime
    steps: list[tuple[str, datetime, str]] = field(default_factory=list)


async def status_timelines(db: Database) -> list[Timeline]:
    """Every order with its status events, oldest order first (calibration and backtests of `simulate`)."""
    timelines = {
        row["id"]: Timeline(row["id"], parse_ts(row["created_at"]))
        for row in await db.fetchall("SELECT id, created_at FROM orders ORDER BY created_at, id")
    }
    for row in await db.fetchall(
        "SELECT order_id, to_status, actor, at FROM order_status_events ORDER BY order_id, at, id"
    ):
        if (timeline := timelines.get(row["order_id"])) is not None:
            timeline.steps.append((row["to_status"], parse_ts(row["at"]), row["actor"]))
    return list(timelines.values())


@dataclass(frozen=True)
class HistoryManager:
    id: str
    name: str
    capacity: int


async def history_managers(db: Database) -> list[HistoryManager]:
    rows = await db.fetchall(
        "SELECT id, name, coalesce(capacity_override, capacity) AS capacity FROM managers ORDER BY id"
    )
    return [HistoryManager(row["id"], row["name"], row["capacity"]) for row in rows]


@dataclass(frozen=True)
class RecordedSignal:
    """A signal as the history recorded it: when it was raised and resolved, with what resolution."""

    id: int
    raised_at: datetime
    resolved_at: datetime | None
    owner_person: int | None
    deadline_at: datetime | None
    resolution: str | None


async def recorded_signals(db: Database) -> list[RecordedSignal]:
    rows = await db.fetchall(
        "SELECT id, raised_at, resolved_at, owner_person, deadline_at, resolution FROM ai_signals ORDER BY id"
    )
    return [
        RecordedSignal(
            row["id"],
            parse_ts(row["raised_at"]),
            parse_ts_opt(row["resolved_at"]),
            row["owner_person"],
            parse_ts_opt(row["deadline_at"]),
            row["resolution"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class RecordedOffer:
    """An order card the bot sent (ai_assignments): to whom, when, and how it ended."""

    manager_id: str
    state: str  # offered | accepted | declined | expired | released
    offered_at: datetime
    answered_at: datetime | None


async def recorded_offers(db: Database) -> list[RecordedOffer]:
    rows = await db.fetchall(
        "SELECT manager_id, state, offered_at, answered_at FROM ai_assignments ORDER BY id"
    )
    return [
        RecordedOffer(
            row["manager_id"], row["state"], parse_ts(row["offered_at"]), parse_ts_opt(row["answered_at"])
        )
        for row in rows
    ]
