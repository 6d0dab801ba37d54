"""Assignments of orders to managers (table ai_assignments) with the dispatch passes that made them
(dispatch_passes), the managers' dispatch settings (shift, capacity, leave, misses) and the orders waiting for
a manager (table dispatch_waits).

Every candidate's score for an assignment is kept without writing M candidates per order: the pass stores each
manager's snapshot once plus the managers it picked in order, and the assignment its pass and pick number.
Replaying the picks before it on that snapshot (domain.dispatch.DispatchBoard) gives every candidate and score
at that moment exactly (`candidates_of`); a pass over 10,000 orders and 200 managers would otherwise write
2,000,000 candidate entries.

An assignment goes offered -> accepted | declined | expired | released. Every answer is a conditional update
`WHERE state = 'offered'`, so of two racing answers exactly one changes the row; the partial unique indexes of
migrations/002 keep one live offer and one accepted assignment per order whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

from domain.dispatch import DispatchBoard, ManagerSnapshot, ShiftOverride
from domain.statuses import Status
from storage.db import parse_ts, parse_ts_opt, ts
from storage.orders import id_list

AssignmentState = Literal["offered", "accepted", "declined", "expired", "released"]


@dataclass(frozen=True)
class StoredCandidate:
    """One manager as scored for one assignment."""

    manager_id: str
    load: float | None  # weighted open orders / capacity; None for a manager with no capacity
    open_orders: int
    capacity: int
    # "ok" (eligible) or why not: inactive, on_leave, off_shift, at_capacity, excluded, no_telegram
    reason: str

    @property
    def eligible(self) -> bool:
        return self.reason == "ok"


@dataclass(frozen=True)
class Assignment:
    id: int
    order_id: str
    manager_id: str
    state: AssignmentState
    offered_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    decline_reason: str | None
    candidates_json: str  # {"pass": id, "pick": n, "excluded": [...]}: see candidates_of
    reason: str
    telegram_id: int | None  # the manager's, for the card


_ASSIGNMENT_SQL = """
SELECT a.*, m.telegram_id FROM ai_assignments a JOIN managers m ON m.id = a.manager_id
"""


def _assignment(row: aiosqlite.Row) -> Assignment:
    return Assignment(
        id=row["id"],
        order_id=row["order_id"],
        manager_id=row["manager_id"],
        state=row["state"],
        offered_at=parse_ts(row["offered_at"]),
        expires_at=parse_ts(row["expires_at"]),
        answered_at=parse_ts_opt(row["answered_at"]),
        decline_reason=row["decline_reason"],
        candidates_json=row["candidates"],
        reason=row["reason"],
        telegram_id=row["telegram_id"],
    )


async def _assignments(conn: aiosqlite.Connection, where: str, params: Sequence[object]) -> list[Assignment]:
    rows = await conn.execute_fetchall(f"{_ASSIGNMENT_SQL} WHERE {where} ORDER BY a.id", params)
    return [_assignment(row) for row in rows]


async def get_assignment(conn: aiosqlite.Connection, assignment_id: int) -> Assignment | None:
    found = await _assignments(conn, "a.id = ?", (assignment_id,))
    return found[0] if found else None


async def assignments_of(conn: aiosqlite.Connection, order_id: str) -> list[Assignment]:
    return await _assignments(conn, "a.order_id = ?", (order_id,))


async def due_offers(conn: aiosqlite.Connection, now: datetime) -> list[Assignment]:
    """Offers nobody answered by their acceptance deadline."""
    return await _assignments(conn, "a.state = 'offered' AND a.expires_at <= ?", (ts(now),))


async def offers_of_manager(conn: aiosqlite.Connection, manager_id: str) -> list[Assignment]:
    return await _assignments(conn, "a.manager_id = ? AND a.state = 'offered'", (manager_id,))


async def offers_for_orders(conn: aiosqlite.Connection, order_ids: Iterable[str]) -> list[Assignment]:
    return await _assignments(
        conn, "a.state = 'offered' AND a.order_id IN (SELECT value FROM json_each(?))", (id_list(order_ids),)
    )


async def refusals_of_pending(conn: aiosqlite.Connection) -> dict[str, set[str]]:
    """For orders waiting in pending_manager: the managers who declined or missed each one already."""
    rows = await conn.execute_fetchall(
        """
        SELECT a.order_id, a.manager_id FROM ai_assignments a JOIN orders o ON o.id = a.order_id
        WHERE o.status = 'pending_manager' AND a.state IN ('declined', 'expired')
        """
    )
    refused: dict[str, set[str]] = {}
    for order_id, manager_id in rows:
        refused.setdefault(order_id, set()).add(manager_id)
    return refused


@dataclass(frozen=True)
class NewOffers:
    """Offers made together (a dispatch pass's batch, a handover): one instant, deadline and reason for all,
    so the batch formats its times once. `picks` are (order id, manager id, candidates reference), in order;
    the k-th gets assignment id `first_id + k`."""

    first_id: int
    offered_at: datetime
    expires_at: datetime
    reason: str
    picks: Sequence[tuple[str, str, str]]

    @property
    def last_id(self) -> int:
        return self.first_id + len(self.picks) - 1


async def next_assignment_id(conn: aiosqlite.Connection) -> int:
    """The id the next offer gets. Inside the caller's write transaction nobody else can take it, and knowing
    ids before the batch insert lets one statement write offers, their CRM writes and their cards."""
    row = await conn.execute_fetchall("SELECT coalesce(max(id), 0) + 1 FROM ai_assignments")
    return int(next(iter(row))[0])


async def insert_offers(conn: aiosqlite.Connection, offers: NewOffers) -> None:
    """The offers, and their orders now with the offered manager."""
    await add_offer_rows(conn, offers)
    await mark_offered_orders(conn, offers)


async def add_offer_rows(conn: aiosqlite.Connection, offers: NewOffers) -> None:
    """The offers in one statement (rows as one JSON parameter, so SQLite walks the batch without coming back
    to Python for every row)."""
    await conn.execute(
        """
        INSERT INTO ai_assignments (id, order_id, manager_id, state, offered_at, expires_at, candidates,
                                    reason)
        SELECT ?1 + key, json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'offered', ?2, ?3,
               json_extract(value, '$[2]'), ?4
        FROM json_each(?5)
        """,
        (
            offers.first_id,
            ts(offers.offered_at),
            ts(offers.expires_at),
            offers.reason,
            json.dumps(offers.picks, ensure_ascii=False),
        ),
    )


async def mark_offered_orders(conn: aiosqlite.Connection, offers: NewOffers) -> None:
    """The orders of stored offers now with the offered manager, in one statement."""
    await conn.execute(
        """
        UPDATE orders SET assigned_manager_id = a.manager_id
        FROM ai_assignments a WHERE a.id BETWEEN ? AND ? AND orders.id = a.order_id
        """,
        (offers.first_id, offers.last_id),
    )


async def answer(
    conn: aiosqlite.Connection,
    assignment_id: int,
    state: AssignmentState,
    now: datetime,
    *,
    decline_reason: str | None = None,
) -> bool:
    """Move an offer to `state`; False when it is no longer an offer (answered, expired or withdrawn)."""
    cursor = await conn.execute(
        """
        UPDATE ai_assignments SET state = ?, answered_at = ?, decline_reason = ?
        WHERE id = ? AND state = 'offered'
        """,
        (state, ts(now), decline_reason, assignment_id),
    )
    return cursor.rowcount > 0


# --- managers as the dispatcher sees them


@dataclass(frozen=True)
class DispatchManager:
    id: str
    name: str
    telegram_id: int | None
    active: bool
    on_leave: bool
    capacity: int  # the admin's override when set, else the CRM's
    capacity_override: int | None
    shift_override: ShiftOverride | None
    misses: int
    last_assigned_at: datetime | None


def _manager(row: aiosqlite.Row) -> DispatchManager:
    return DispatchManager(
        id=row["id"],
        name=row["name"],
        telegram_id=row["telegram_id"],
        active=bool(row["active"]),
        on_leave=bool(row["on_leave"]),
        capacity=row["capacity_override"] if row["capacity_override"] is not None else row["capacity"],
        capacity_override=row["capacity_override"],
        shift_override=row["shift_override"],
        misses=row["misses"],
        last_assigned_at=parse_ts_opt(row["last_assigned_at"]),
    )


async def dispatch_managers(conn: aiosqlite.Connection) -> list[DispatchManager]:
    rows = await conn.execute_fetchall("SELECT * FROM managers ORDER BY id")
    return [_manager(row) for row in rows]


async def get_manager(conn: aiosqlite.Connection, manager_id: str) -> DispatchManager | None:
    rows = list(await conn.execute_fetchall("SELECT * FROM managers WHERE id = ?", (manager_id,)))
    return _manager(rows[0]) if rows else None


async def manager_of_telegram(conn: aiosqlite.Connection, telegram_id: int) -> DispatchManager | None:
    rows = list(await conn.execute_fetchall("SELECT * FROM managers WHERE telegram_id = ?", (telegram_id,)))
    return _manager(rows[0]) if rows else None


async def stamp_last_assigned(conn: aiosqlite.Connection, stamps: Iterable[tuple[str, datetime]]) -> None:
    await conn.executemany(
        "UPDATE managers SET last_assigned_at = ? WHERE id = ?", [(ts(at), mid) for mid, at in stamps]
    )


async def count_miss(conn: aiosqlite.Connection, manager_id: str) -> None:
    await conn.execute("UPDATE managers SET misses = misses + 1 WHERE id = ?", (manager_id,))


async def set_shift_override(
    conn: aiosqlite.Connection, manager_id: str, override: ShiftOverride | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE managers SET shift_override = ?, updated_at = ? WHERE id = ?", (override, ts(now), manager_id)
    )


async def set_capacity_override(
    conn: aiosqlite.Connection, manager_id: str, capacity: int | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE managers SET capacity_override = ?, updated_at = ? WHERE id = ?",
        (capacity, ts(now), manager_id),
    )


async def set_on_leave(conn: aiosqlite.Connection, manager_id: str, on_leave: bool, now: datetime) -> None:
    await conn.execute(
        "UPDATE managers SET on_leave = ?, updated_at = ? WHERE id = ?", (int(on_leave), ts(now), manager_id)
    )


# --- orders no manager could take


async def waiting_orders(conn: aiosqlite.Connection) -> set[str]:
    return {row[0] for row in await conn.execute_fetchall("SELECT order_id FROM dispatch_waits")}


async def add_wait(conn: aiosqlite.Connection, order_id: str, now: datetime, signal_id: int | None) -> None:
    await conn.execute(
        "INSERT OR IGNORE INTO dispatch_waits (order_id, since, signal_id) VALUES (?, ?, ?)",
        (order_id, ts(now), signal_id),
    )


async def end_waits(conn: aiosqlite.Connection, order_ids: Iterable[str]) -> None:
    await conn.executemany("DELETE FROM dispatch_waits WHERE order_id = ?", ((oid,) for oid in order_ids))


# --- dispatch passes: every candidate of every assignment, stored once per pass


@dataclass(frozen=True)
class DispatchPass:
    id: int
    at: datetime
    weights: dict[Status, float]
    managers: list[ManagerSnapshot]
    unreachable: frozenset[str]  # managers without a Telegram chat (or blocked): never picked, "no_telegram"
    picks: list[str]  # the manager of each assignment of the pass, in order


def _snapshot_json(m: ManagerSnapshot, unreachable: Collection[str]) -> list[object]:
    orders = {status.value: n for status, n in m.open_orders_by_status.items()}
    last = ts(m.last_assigned_at) if m.last_assigned_at is not None else None
    return [
        m.manager_id,
        m.active,
        m.on_leave,
        m.capacity,
        m.on_shift,
        orders,
        last,
        m.manager_id in unreachable,
    ]


async def insert_pass(
    conn: aiosqlite.Connection,
    *,
    at: datetime,
    weights: Mapping[Status, float],
    managers: Sequence[ManagerSnapshot],
    unreachable: Collection[str],
) -> int:
    """Store a pass's starting point; its picks follow with `set_pass_picks` when the pass is done."""
    cursor = await conn.execute(
        "INSERT INTO dispatch_passes (at, weights, managers, picks) VALUES (?, ?, ?, '[]')",
        (
            ts(at),
            json.dumps({status.value: w for status, w in weights.items()}),
            json.dumps([_snapshot_json(m, unreachable) for m in managers], ensure_ascii=False),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def set_pass_picks(conn: aiosqlite.Connection, pass_id: int, picks: Sequence[str]) -> None:
    await conn.execute(
        "UPDATE dispatch_passes SET picks = ? WHERE id = ?",
        (json.dumps(list(picks), ensure_ascii=False), pass_id),
    )


def offer_reference(pass_id: int, pick: int, excluded: Collection[str]) -> str:
    """What ai_assignments.candidates holds: the pass, the pick number and the managers excluded for the order
    (they declined or missed it before). Written out by hand: a pass over a backlog makes thousands."""
    names = json.dumps(sorted(excluded), ensure_ascii=False) if excluded else "[]"
    return f'{{"pass": {pass_id}, "pick": {pick}, "excluded": {names}}}'


async def get_pass(conn: aiosqlite.Connection, pass_id: int) -> DispatchPass | None:
    rows = list(await conn.execute_fetchall("SELECT * FROM dispatch_passes WHERE id = ?", (pass_id,)))
    if not rows:
        return None
    row = rows[0]
    managers = [
        ManagerSnapshot(
            manager_id=mid,
            active=active,
            on_leave=on_leave,
            capacity=capacity,
            on_shift=shift,
            open_orders_by_status={Status(s): n for s, n in orders.items()},
            last_assigned_at=parse_ts_opt(last),
        )
        for mid, active, on_leave, capacity, shift, orders, last, _ in json.loads(row["managers"])
    ]
    return DispatchPass(
        id=row["id"],
        at=parse_ts(row["at"]),
        weights={Status(s): w for s, w in json.loads(row["weights"]).items()},
        managers=managers,
        unreachable=frozenset(entry[0] for entry in json.loads(row["managers"]) if entry[7]),
        picks=json.loads(row["picks"]),
    )


def replay(dispatch: DispatchPass, pick: int, excluded: Collection[str]) -> list[StoredCandidate]:
    """Every candidate with its score as it stood for pick number `pick` of the pass."""
    board = DispatchBoard(dispatch.managers, dispatch.weights)
    for manager_id in dispatch.picks[:pick]:
        board.record_assignment(manager_id, dispatch.at)
    return [
        StoredCandidate(
            c.manager_id,
            round(c.load, 4) if c.load != float("inf") else None,
            c.open_orders,
            c.capacity,
            "no_telegram" if c.manager_id in dispatch.unreachable and c.reason == "excluded" else c.reason,
        )
        for c in board.candidates({*excluded, *dispatch.unreachable})
    ]


async def candidates_of(conn: aiosqlite.Connection, assignment: Assignment) -> list[StoredCandidate]:
    """Every manager as scored when this assignment was made (empty if its pass is gone)."""
    reference = json.loads(assignment.candidates_json)
    dispatch = await get_pass(conn, reference["pass"])
    return [] if dispatch is None else replay(dispatch, reference["pick"], reference["excluded"])
