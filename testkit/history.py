"""A seeded CRM history with status events, for calibrating and backtesting `main.py simulate`.

The history is made by a people model of its own, which `demo/calibration.py` does not know: a shared queue
that each manager looks at with gamma-distributed gaps during their own hours, takes the oldest orders from
(up to their capacity), and works at their own pace, now and then forgetting a step for a Weibull-long while;
clients answer after a Weibull wait (some of them much later) and some say no; carriers take gamma-long
trips. Nothing of the bot is in force ("as today"): no offers, no reminders, no recorded escalations.

    python -m testkit.history OUT.sqlite [--days 60 --orders-per-day 40 --seed 1 --end 2026-12-04]

The database is a bot database (migrated), with managers, orders and their CRM status events, as a sync of
this CRM would leave it; `main.py simulate --replay OUT.sqlite` or `--backtest OUT.sqlite` reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from domain.calendar import WorkingCalendar
from domain.models import Manager
from domain.policy import Policy, calendar_for
from domain.statuses import Status
from storage.crm import CrmEvent, MirrorOrder, insert_crm_events, upsert_managers, upsert_orders
from storage.db import Database, ts

WEEKDAYS = (1.15, 1.1, 1.0, 1.05, 0.95, 0.85, 0.9)  # Monday first
HOURS = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 0.8, 1.1, 1.5, 1.5, 1.4, 1.6, 1.5, 1.3, 1.2, 1.2, 1.3, 1.4,
         1.6, 1.4, 1.1, 0.8, 0.4)  # fmt: skip


@dataclass(frozen=True)
class Person:
    """One manager of the history: when they work, how often they look at the queue, how they work."""

    id: str
    name: str
    hours: tuple[int, int]  # local start and end hour of their own day (inside it they look at the queue)
    look_mean: float  # calendar minutes between two looks at the queue, on average (gamma, shape 2)
    pace: float  # multiplies the time their steps take
    forget: float  # share of their steps forgotten for a while
    capacity: int
    takes: int = 2  # orders taken in one look


TEAM = (
    Person("m1", "Anna Petrova", (8, 17), 14, 0.8, 0.04, 90),
    Person("m2", "Max Weber", (10, 19), 45, 1.2, 0.15, 60),
    Person("m3", "Olga Ivanova", (9, 18), 25, 1.0, 0.08, 80),
    Person("m4", "Lukas Schmidt", (9, 15), 70, 1.1, 0.20, 50),
    Person("m5", "Irina Smirnova", (9, 18), 30, 0.9, 0.10, 80),
    Person("m6", "Jonas Fischer", (11, 20), 35, 1.3, 0.12, 60),
)
CANCEL_AT_CLIENT = 0.09  # clients who say no after the inspection report
CANCEL_WAITING = 0.015  # orders the client withdraws before anyone takes them


@dataclass(frozen=True)
class History:
    managers: tuple[Person, ...]
    orders: tuple[MirrorOrder, ...]
    events: tuple[CrmEvent, ...]


@dataclass
class _Order:
    index: int
    created: datetime
    status: Status = Status.PENDING_MANAGER
    manager: str | None = None
    since: datetime = field(default=datetime.min.replace(tzinfo=UTC))


def _gamma(rng: random.Random, mean: float, shape: float) -> float:
    return rng.gammavariate(shape, mean / shape)


class _World:
    def __init__(self, seed: int, team: tuple[Person, ...], calendar: WorkingCalendar, end: datetime) -> None:
        self.rng = random.Random(f"history:{seed}")
        self.team = {p.id: p for p in team}
        self.calendar, self.end = calendar, end
        self.queue: dict[int, _Order] = {}
        self.held: dict[str, int] = dict.fromkeys(self.team, 0)
        self.events: list[CrmEvent] = []
        self.orders: list[_Order] = []
        self._heap: list[tuple[datetime, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, when: datetime, action: Callable[..., None], *args: Any) -> None:
        if when < self.end:
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, action, args))

    def run(self) -> None:
        while self._heap:
            when, _, action, args = heapq.heappop(self._heap)
            action(when, *args)

    # people's time

    def _on_duty(self, person: Person, when: datetime) -> bool:
        local = when.astimezone(self.calendar.tz)
        return self.calendar.is_working(when) and person.hours[0] <= local.hour < person.hours[1]

    def _next_duty(self, person: Person, when: datetime) -> datetime:
        at = when
        for _ in range(400):
            if self._on_duty(person, at):
                return at
            local = at.astimezone(self.calendar.tz)
            if local.hour < person.hours[0]:
                start = datetime.combine(local.date(), time(person.hours[0]), tzinfo=self.calendar.tz)
            else:
                start = datetime.combine(
                    local.date() + timedelta(days=1), time(person.hours[0]), self.calendar.tz
                )
            at = self.calendar.next_working_start(start.astimezone(UTC))
        return at

    def look_later(self, person: Person, when: datetime) -> None:
        gap = timedelta(minutes=_gamma(self.rng, person.look_mean, 2.0))
        self.at(self._next_duty(person, when + gap), self.look, person)

    # the lifecycle

    def arrive(self, when: datetime, order: _Order) -> None:
        order.since = when
        self.orders.append(order)
        self._event(order, None, Status.PENDING_MANAGER, "client", when)
        self.queue[order.index] = order
        if self.rng.random() < CANCEL_WAITING:
            self.at(when + timedelta(minutes=_gamma(self.rng, 600, 1.0)), self.withdraw, order)

    def withdraw(self, when: datetime, order: _Order) -> None:
        if order.status is Status.PENDING_MANAGER and order.index in self.queue:
            del self.queue[order.index]
            self.move(order, Status.CANCELLED, "client", when)

    def look(self, when: datetime, person: Person) -> None:
        for order in list(self.queue.values())[: person.takes]:
            if self.held[person.id] >= person.capacity:
                break
            del self.queue[order.index]
            order.manager = person.id
            self.held[person.id] += 1
            self.move(order, Status.ACCEPTED, person.id, when)
        self.look_later(person, when)

    def step(self, when: datetime, order: _Order, status: Status, actor: str) -> None:
        self.move(order, status, actor, when)

    def move(self, order: _Order, status: Status, actor: str, when: datetime) -> None:
        self._event(order, order.status, status, actor, when)
        order.status, order.since = status, when
        if status in (Status.DELIVERED, Status.CANCELLED):
            if order.manager is not None:
                self.held[order.manager] -= 1
            return
        self._plan(order, when)

    def _plan(self, order: _Order, when: datetime) -> None:
        person = self.team[order.manager] if order.manager else None
        rng, status = self.rng, order.status
        if status is Status.AWAITING_CLIENT:
            wait = 60 * rng.weibullvariate(20, 1.1) + (60 * _gamma(rng, 70, 2) if rng.random() < 0.2 else 0)
            target = Status.CANCELLED if rng.random() < CANCEL_AT_CLIENT else Status.READY_FOR_SHIPMENT
            self.at(self.calendar.add_calendar_minutes(when, wait), self.step, order, target, "client")
            return
        if status is Status.IN_TRANSIT:
            trip = 60 * _gamma(rng, 62, 4)
            self.at(
                self.calendar.add_calendar_minutes(when, trip), self.step, order, Status.DELIVERED, "carrier"
            )
            return
        assert person is not None
        mean, shape = {
            Status.ACCEPTED: (80, 1.5),
            Status.INSPECTION: (330, 3),
            Status.READY_FOR_SHIPMENT: (260, 2),
        }[status]
        work = _gamma(rng, mean * person.pace, shape)
        if rng.random() < person.forget:
            work += 60 * rng.weibullvariate(14, 0.8)
        done = self.calendar.add_working_minutes(when, work)
        target = {
            Status.ACCEPTED: Status.INSPECTION,
            Status.INSPECTION: Status.AWAITING_CLIENT,
            Status.READY_FOR_SHIPMENT: Status.IN_TRANSIT,
        }[status]
        self.at(done, self.step, order, target, person.id)

    def _event(self, order: _Order, old: Status | None, new: Status, actor: str, when: datetime) -> None:
        self.events.append((len(self.events) + 1, _order_id(order.index), old, new, actor, ts(when)))


def _order_id(index: int) -> str:
    return f"H{index + 1:06d}"


def _arrivals(rng: random.Random, first: date, days: int, per_day: float, tz: Any) -> list[datetime]:
    week = [w * 7 / sum(WEEKDAYS) for w in WEEKDAYS]
    hours = [h / sum(HOURS) for h in HOURS]
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        for hour, share in enumerate(hours):
            rate = per_day * week[day.weekday()] * share
            start = datetime.combine(day, time(hour), tzinfo=tz)
            elapsed = rng.expovariate(rate)
            while elapsed < 1.0:
                result.append((start + timedelta(hours=elapsed)).astimezone(UTC))
                elapsed += rng.expovariate(rate)
    return result


def generate_history(
    *,
    seed: int = 1,
    days: int = 60,
    orders_per_day: float = 40,
    end: date = date(2026, 12, 4),
    calendar: WorkingCalendar | None = None,
    team: tuple[Person, ...] = TEAM,
) -> History:
    """`days` local days of orders ending the day before `end` (local midnight), worked by `team`."""
    calendar = calendar or calendar_for(Policy.default(), "Europe/Berlin")
    first = end - timedelta(days=days)
    horizon = datetime.combine(end, time(0), tzinfo=calendar.tz).astimezone(UTC)
    world = _World(seed, team, calendar, horizon)
    for index, at in enumerate(_arrivals(world.rng, first, days, orders_per_day, calendar.tz)):
        world.at(at, world.arrive, _Order(index, at))
    opening = datetime.combine(first, time(0), tzinfo=calendar.tz).astimezone(UTC)
    for person in team:
        world.look_later(person, opening)
    world.run()
    rng = random.Random(f"history:{seed}:fields")
    orders = tuple(
        MirrorOrder(
            _order_id(o.index),
            o.status,
            o.status.value,
            o.created,
            o.since,
            o.since,
            f"Client {o.index + 1}",
            "Berlin",
            "Canyon",
            "Grizl",
            round(rng.uniform(900, 4000), 2),
            False,
            "Radhaus Leipzig",
            o.manager,
            o.manager,
            None,
            None,
            None,
            None,
        )
        for o in world.orders
    )
    return History(team, orders, tuple(world.events))


async def write_history(path: Path, history: History) -> None:
    """A migrated bot database at `path` holding the history (as a sync would leave it)."""
    db = await Database.open(path)
    try:
        now = max((o.updated_at for o in history.orders), default=datetime.now(UTC))
        async with db.transaction() as conn:
            managers = [
                Manager(p.id, p.name, telegram_id=1001 + i, capacity=p.capacity)
                for i, p in enumerate(history.managers)
            ]
            await upsert_managers(conn, managers, now)
            await upsert_orders(conn, history.orders, now)
            await insert_crm_events(conn, history.events)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--orders-per-day", type=float, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 12, 4))
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; give a new file", file=sys.stderr)
        return 2
    history = generate_history(
        seed=args.seed, days=args.days, orders_per_day=args.orders_per_day, end=args.end
    )
    asyncio.run(write_history(args.out, history))
    print(f"{args.out}: {len(history.orders)} orders, {len(history.events)} status events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
