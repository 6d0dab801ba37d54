"""A simulator of the BikeWerk API (contract in bikewerk/contract.py) for tests, the demo and the benchmarks.

It serves a deterministic data set built from a seed: managers (Telegram ids 1001, 1002, ...), orders with
realistic status histories and prices spread over recent days, and their status events. It accepts the CRM
writes (assign, status) honouring Idempotency-Key, and injects faults on demand: latency, 5xx bursts,
timeouts, malformed records and schema drift. The control side lives under `/sim/` (SPEC §13):

- `POST /sim/orders` (optional body: client, bike, seller, prices) creates an order in pending_manager;
- `POST /sim/orders/{id}/status` `{"status", "actor"?, "manager_id"?}` changes an order as someone in the CRM;
- `POST /sim/orders/{id}/money` `{compensations?, disputes?, payments?, prices?}` adds entries to an order's
  lists or changes its prices (testkit/sim_money.py draws the seeded ones: channel, countries, payments, ...);
- `POST /sim/managers` `{id, name, telegram_id, active, capacity, timezone}` adds or updates a manager;
- `POST /sim/faults` (body: `Faults`; fields left out are reset) and `GET /sim/faults`;
- `GET /sim/writes`: every write received, with its idempotency key and whether it was applied;
- `POST /sim/webhook` `{"url", "secret"}` (`{}` stops it): from then on every change of an order (created,
  status, manager) is pushed to `url` as the CRM would, `{"type", "id"}` signed with HMAC-SHA256 of the body
  in `X-BikeWerk-Signature` (testkit/sim_push.py); the fault `push_drop_share` drops that share of pushes;
- `GET /sim/stats`: requests per route, records served, faults injected, ids served malformed.

Scale: 100,000 orders and 1,000,000 events are built in seconds and held as a few compact arrays (the event
log in time order, as a CRM numbers its events); a record's JSON is rendered once and reused until the record
changes, so serving pages costs little (`prerender()` does all of it up front).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import logging
import random
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bikewerk.contract import MAX_PAGE_SIZE, AssignWrite, Manager, StatusWrite, as_json, describe, validate
from bot.clock import Clock, SystemClock
from bot.logs import log_event
from domain.statuses import STATUS_ORDER, Status
from testkit.sim_leads import LeadFunnel
from testkit.sim_money import merged, money_of
from testkit.sim_push import Pusher

log = logging.getLogger(__name__)

# Status codes of the data set: the lifecycle order (the forward chain 0..6, then cancelled).
_CODES: tuple[Status, ...] = tuple(STATUS_ORDER)
_CODE_OF = {status: code for code, status in enumerate(_CODES)}
PENDING, IN_TRANSIT, DELIVERED, CANCELLED = 0, 5, 6, 7
_FINAL = frozenset({DELIVERED, CANCELLED})
# How long an order usually stays in each open status before its next step, in minutes (low, high).
_DWELL_MINUTES = ((5, 120), (30, 600), (180, 1800), (60, 3600), (120, 1800), (1440, 12960))
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DRIFT_ZONE = ZoneInfo("Europe/Berlin")
_NO_MANAGER = -1
_NONE = 255  # no "from" status: the order's first event
_EVENT_BITS = 27  # up to 134 million seeded events
_EVENT_MASK = (1 << _EVENT_BITS) - 1

# fmt: off
_FIRST = ("Anna", "Lukas", "Marie", "Jonas", "Sofia", "Felix", "Lena", "Paul", "Emma", "Maximilian", "Olga",
          "Dmitri", "Irina", "Sergei", "Hannah", "Elias", "Mia", "Noah", "Clara", "Leon")
_LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
         "Koch", "Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Richter", "Wolf", "Klein", "Neumann")
_CITIES = ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf", "Leipzig",
           "Dresden", "Hannover", "Nürnberg", "Wien", "Zürich", "Amsterdam", "Praha")
_SHOPS = ("Velo-Outlet München", "Radhaus Leipzig", "Bike Second Hand Köln", "2Rad Börse Hamburg",
          "Fahrradmarkt Dresden")
_MANAGER_NAMES = ("Anna Petrova", "Max Weber", "Olga Ivanova", "Lukas Schmidt", "Irina Smirnova",
                  "Jonas Fischer", "Elena Koch", "Paul Wagner", "Daria Kuznetsova", "Felix Becker")
# fmt: on
# brand, model, lowest and highest resale price (EUR), e-bike
_BIKES = (
    ("Canyon", "Spectral CF 8", 2200, 3800, False),
    ("Canyon", "Grizl CF SL 7", 1500, 2600, False),
    ("Specialized", "Stumpjumper EVO", 2500, 4500, False),
    ("Specialized", "Turbo Levo", 3500, 6500, True),
    ("Trek", "Fuel EX 8", 2300, 4000, False),
    ("Trek", "Rail 9.7", 3800, 6800, True),
    ("Cube", "Stereo Hybrid 140", 2600, 4200, True),
    ("Cube", "Attain GTC", 800, 1500, False),
    ("Giant", "Trance X 29", 1900, 3200, False),
    ("Santa Cruz", "Hightower", 3000, 5500, False),
    ("Orbea", "Rise M20", 4000, 6500, True),
    ("Cannondale", "SuperSix EVO", 2000, 4200, False),
    ("Scott", "Spark RC", 2500, 5000, False),
    ("YT", "Capra Core 3", 2300, 3900, False),
    ("Riese & Müller", "Supercharger2", 3500, 6000, True),
)

_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _us(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def order_id_of(index: int) -> str:
    return f"BW-{index + 1:06d}"


def _index_of(order_id: str) -> int | None:
    prefix, _, number = order_id.partition("-")
    if prefix != "BW" or not number.isdigit() or len(number) < 6:
        return None
    return int(number) - 1


def plan_history(rng: random.Random, transitions: int) -> list[int]:
    """The status codes an order went through in exactly `transitions` changes, first status included.

    Most long histories end delivered, a few cancelled or still open; short ones are open or cancelled. Spare
    changes become detours the CRM really sees: an order sent back one step (the client wants more photos, a
    manager drops it), or once two steps (an inspection abandoned, the order back in the queue). Delivered and
    cancelled come only last.
    """
    if transitions <= 0:
        return [PENDING]
    roll = rng.random()
    long_enough = transitions >= DELIVERED
    if long_enough and roll < 0.85:
        cancel, end = False, DELIVERED
    elif roll < (0.93 if long_enough else 0.35):
        cancel, end = True, rng.randint(0, min(IN_TRANSIT, transitions - 1))
    else:
        cancel, end = False, rng.randint(0, min(IN_TRANSIT, transitions))
    moves = transitions - cancel
    if moves - end == 1:  # one spare change cannot make a detour: end one step further (or back)
        end = end + 1 if end < IN_TRANSIT else end - 1
    extra = moves - end
    back2 = extra % 2  # an odd surplus (>= 3) takes one two-step detour
    back1 = (extra - 3 * back2) // 2
    forward = end + back1 + 2 * back2
    seq, at = [PENDING], PENDING
    while back2:
        if at >= 2:
            at, back2 = at - 2, 0
        else:
            at, forward = at + 1, forward - 1
        seq.append(at)
    while forward or back1:
        left = forward + back1
        if (
            back1
            and at >= 1
            and (forward == 0 or (at == IN_TRANSIT and left > 1) or rng.random() < back1 / left)
        ):
            at, back1 = at - 1, back1 - 1
        else:
            at, forward = at + 1, forward - 1
        seq.append(at)
    if cancel:
        seq.append(CANCELLED)
    return seq


def _was_accepted(seq: list[int]) -> bool:
    """Whether the order is (or ended) with a manager: it left the queue and did not go back to it."""
    last_open = seq[-2] if seq[-1] == CANCELLED and len(seq) > 1 else seq[-1]
    return last_open not in (PENDING, CANCELLED)


class Faults(BaseModel):
    """Fault injection on the `/api/` routes; the `/sim/` control side is never disturbed."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1)  # share of requests answered with `error_status`
    fail_next: int = Field(default=0, ge=0)  # the next N requests fail: a deterministic 5xx burst
    error_status: int = Field(default=503, ge=400, le=599)
    retry_after_s: float | None = Field(default=None, ge=0)  # sent as Retry-After with injected errors
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    timeout_share: float = Field(default=0.0, ge=0, le=1)  # requests that hang (writes: applied, then hang)
    timeout_next: int = Field(default=0, ge=0)  # the next N requests hang: a deterministic timeout
    timeout_ms: int = Field(default=30_000, ge=0, le=600_000)
    malformed_share: float = Field(default=0.0, ge=0, le=1)  # records served broken (stable per record)
    drift: bool = (
        False  # tolerable schema drift: extra fields, local offsets, numbers as strings, STATUS case
    )
    push_drop_share: float = Field(default=0.0, ge=0, le=1)  # pushes to the webhook lost on the way


@dataclass
class _Stats:
    requests: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    malformed: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in _BREAKERS})

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "records": dict(self.records),
            "injected": dict(self.injected),
            "malformed": {kind: sorted(ids) for kind, ids in self.malformed.items()},
        }


class _Refused(Exception):
    """A request the CRM refuses: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class BikeWerkSimulator:
    """The simulated CRM. `start()` serves it over HTTP; the methods below are the same control as `/sim/`."""

    def __init__(
        self,
        seed: int = 1,
        orders: int = 200,
        managers: int | Sequence[Mapping[str, Any]] = 6,
        events_per_order: float = 8.0,
        *,
        days: float = 30.0,
        anchor: datetime | None = None,
        token: str | None = None,
        clock: Clock | None = None,
        lead_days: float | None = None,
    ) -> None:
        if orders < 0 or events_per_order < 0 or days <= 0:
            raise ValueError("orders, events_per_order must be >= 0 and days > 0")
        self.seed = seed
        self.token = token
        self.clock = clock or SystemClock()
        anchor = anchor or self.clock.now().replace(microsecond=0)
        self._anchor_us = _us(anchor)
        # The sales funnel (testkit/sim_leads.py): leads from `lead_days` (default `days`) before the anchor.
        self.leads = LeadFunnel(seed, anchor - timedelta(days=days if lead_days is None else lead_days))
        self._span_us = int(days * 86_400 * _US)
        self._managers: list[dict[str, Any]] = self._seed_managers(managers)
        self._seeded_managers = len(self._managers)  # histories draw from these, whatever is added later
        self._seeded = orders
        total = max(orders, round(orders * events_per_order))
        self._base, self._rem = divmod(total, orders) if orders else (0, 0)
        # Orders, one slot per order index (order ids follow creation time, as the CRM numbers them).
        self._created = array("q")
        self._updated = array("q")
        self._status = bytearray()
        self._manager = array("h")
        # The event log in id order (= time order), event id = position + 1; new events are appended.
        self._ev_order = array("i")
        self._ev_from = bytearray()  # _NONE: the order's first status
        self._ev_to = bytearray()
        self._ev_actor = array("h")  # a manager index, or _NO_MANAGER for the CRM itself
        self._ev_at = array("q")
        self._seed_orders(orders)
        self._overrides: dict[int, dict[str, Any]] = {}
        self._money: dict[int, dict[str, Any]] = {}  # entries added through /sim/orders/{id}/money
        # JSON of records as served without faults; an order's is dropped when it changes.
        self._rendered_orders: dict[int, bytes] = {}
        self._rendered_events: dict[int, bytes] = {}
        # The change feed: (updated_at µs, order index), sorted; a changed order moves to the end.
        self._feed = sorted(zip(self._updated, range(orders), strict=True))
        self._last_change_us = max(self._feed[-1][0] if self._feed else 0, self._anchor_us)
        self._idempotency: dict[str, tuple[int, dict[str, Any], str]] = {}
        self.writes: list[dict[str, Any]] = []
        self.faults = Faults()
        self._fault_rng = random.Random(seed)
        self.stats = _Stats()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self.pusher = Pusher(seed)  # POST /sim/webhook

    # --- the seeded data set ----------------------------------------------------------------------

    def _rng(self, stream: int, index: int) -> random.Random:
        return random.Random((self.seed << 40) ^ (index << 3) ^ stream)

    def _length(self, index: int) -> int:
        """Events of seeded order `index`: the mean, varied in pairs so the total stays exact."""
        base = self._base + (index < self._rem)
        partner = index ^ 1
        if partner >= self._seeded:
            return base
        spread = max(0, min(self._base - 1, self._base // 2 + 1))
        shift = self._rng(1, index // 2).randint(-spread, spread)
        return base + (shift if index % 2 == 0 else -shift)

    def _history(self, index: int) -> tuple[list[int], list[int], int]:
        """(status codes, event instants in µs, manager index) of seeded order `index`, always the same."""
        rng = self._rng(2, index)
        manager = rng.randrange(self._seeded_managers) if self._seeded_managers else _NO_MANAGER
        seq = plan_history(rng, self._length(index) - 1)
        steps = [rng.uniform(*_DWELL_MINUTES[code]) for code in seq[:-1]]
        if seq[-1] in _FINAL:
            last = self._anchor_us - int(rng.uniform(0, self._span_us))
        else:
            high = _DWELL_MINUTES[seq[-1]][1]
            last = self._anchor_us - int(rng.uniform(0, 0.6 * high) * 60 * _US)
        last -= last % _US
        times = [last]
        for minutes in reversed(steps):
            times.append(times[-1] - int(minutes * 60) * _US)
        times.reverse()
        return seq, times, manager

    def _seed_orders(self, orders: int) -> None:
        """Build the seeded orders and their event log, in creation and in time order."""
        histories = [self._history(index) for index in range(orders)]
        by_creation = sorted(range(orders), key=lambda index: histories[index][1][0])
        packed: list[int] = []  # (instant << 27) | event number: one sort puts the log in time order
        events: list[tuple[int, int, int, int]] = []  # (order index, from, to, actor)
        for index, generated in enumerate(by_creation):
            seq, times, manager = histories[generated]
            self._created.append(times[0])
            self._updated.append(times[-1])
            self._status.append(seq[-1])
            self._manager.append(manager if _was_accepted(seq) else _NO_MANAGER)
            for k, code in enumerate(seq):
                back = k > 0 and code < seq[k - 1]
                actor = _NO_MANAGER if k == 0 or back or code == PENDING else manager
                packed.append(times[k] << _EVENT_BITS | len(events))
                events.append((index, seq[k - 1] if k else _NONE, code, actor))
        packed.sort()
        for key in packed:
            order, from_code, to_code, actor = events[key & _EVENT_MASK]
            self._append_event(order, from_code, to_code, actor, key >> _EVENT_BITS)

    def _append_event(self, order: int, from_code: int, to_code: int, actor: int, at_us: int) -> None:
        self._ev_order.append(order)
        self._ev_from.append(from_code)
        self._ev_to.append(to_code)
        self._ev_actor.append(actor)
        self._ev_at.append(at_us)

    def _fields(self, index: int) -> dict[str, Any]:
        """The order's client, bike, seller and prices (stable per order)."""
        rng = self._rng(3, index)
        brand, model, low, high, ebike = rng.choice(_BIKES)
        price = float(round(rng.uniform(low, high) / 10) * 10)
        if rng.random() < 0.7:
            seller = f"{rng.choice(_FIRST)} {rng.choice(_LAST)[0]}. (private)"
        else:
            seller = rng.choice(_SHOPS)
        record = {
            "client": {"name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "city": rng.choice(_CITIES)},
            "bike": {"brand": brand, "model": model, "price_eur": price, "is_ebike": ebike},
            "seller": seller,
            "prices": {
                "sale_eur": price,
                "purchase_eur": round(price * rng.uniform(0.66, 0.84), 2),
                "shipping_eur": float(rng.choice((49, 79, 119, 149))),
                "fees_eur": round(price * 0.029 + 0.35, 2),
            },
        }
        record.update(self._overrides.get(index, {}))
        added = self._money.get(index, {})
        record = merged(record, {"prices": added.get("prices", {})})
        updated = self._updated[index]
        drawn = money_of(
            self._rng(4, index),
            record,
            status=self._status[index],
            created=self._created[index],
            updated=updated,
            anchor=max(self._anchor_us, updated),
            incidents=index < self._seeded,  # an order made through /sim/ gets only what the test adds
        )
        return merged({**record, **drawn}, added)

    def _seed_managers(self, managers: int | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(managers, int):
            return [as_json(validate(Manager, m)) for m in managers]
        rng = random.Random(self.seed)
        return [
            {
                "id": f"m-{k + 1:02d}",
                "name": _MANAGER_NAMES[k % len(_MANAGER_NAMES)]
                + ("" if k < len(_MANAGER_NAMES) else f" {k}"),
                "telegram_id": 1001 + k,
                "active": True,
                "capacity": rng.choice((8, 10, 12, 15)),
                "timezone": "Europe/Berlin",
            }
            for k in range(managers)
        ]

    # --- reading ----------------------------------------------------------------------------------

    @property
    def order_count(self) -> int:
        return len(self._status)

    @property
    def event_count(self) -> int:
        return len(self._ev_at)

    def order_ids(self) -> list[str]:
        return [order_id_of(index) for index in range(self.order_count)]

    def _manager_id(self, index: int) -> str | None:
        m = self._manager[index]
        return None if m == _NO_MANAGER else str(self._managers[m]["id"])

    def order(self, order_id: str) -> dict[str, Any]:
        """The order as the API serves it (without faults)."""
        return self._order_record(self._lookup(order_id))

    def _lookup(self, order_id: str) -> int:
        index = _index_of(order_id)
        if index is None or not 0 <= index < self.order_count:
            raise _Refused(404, f"unknown order {order_id!r}")
        return index

    def _order_record(self, index: int) -> dict[str, Any]:
        return {
            "id": order_id_of(index),
            "status": _CODES[self._status[index]].value,
            "created_at": _iso(self._created[index]),
            "updated_at": _iso(self._updated[index]),
            "manager_id": self._manager_id(index),
            **self._fields(index),
        }

    def _orders_after(self, key: tuple[int, int], limit: int) -> tuple[list[int], tuple[int, int]]:
        """Indexes of the orders changed after `key` in the feed, and the feed key of the last one."""
        start = bisect.bisect_right(self._feed, key)
        chunk = self._feed[start : start + limit]
        return [index for _, index in chunk], (chunk[-1] if chunk else key)

    def _event_record(self, position: int) -> dict[str, Any]:
        from_code, actor = self._ev_from[position], self._ev_actor[position]
        return {
            "id": position + 1,
            "order_id": order_id_of(self._ev_order[position]),
            "from_status": None if from_code == _NONE else _CODES[from_code].value,
            "to_status": _CODES[self._ev_to[position]].value,
            "actor": "crm" if actor == _NO_MANAGER else str(self._managers[actor]["id"]),
            "at": _iso(self._ev_at[position]),
        }

    def _order_json(self, index: int) -> bytes:
        text = self._rendered_orders.get(index)
        if text is None:
            text = self._rendered_orders[index] = _dumps(self._order_record(index)).encode()
        return text

    def _event_json(self, position: int) -> bytes:
        text = self._rendered_events.get(position)
        if text is None:
            text = self._rendered_events[position] = _dumps(self._event_record(position)).encode()
        return text

    def prerender(self) -> None:
        """Render every record's JSON now, so serving pages later costs next to no CPU. The sync benchmark
        does this: a real CRM runs on its own machine, not on the cores the sync is measured on."""
        for index in range(self.order_count):
            self._order_json(index)
        for position in range(self.event_count):
            self._event_json(position)

    def workspace(self) -> dict[str, Any]:
        by_status = Counter(self._status)
        return {
            "generated_at": _iso(_us(self.clock.now())),
            "orders_total": self.order_count,
            "orders_by_status": {_CODES[code].value: by_status.get(code, 0) for code in range(len(_CODES))},
            "events_total": self.event_count,
            "managers_total": len(self._managers),
            "managers_active": sum(1 for m in self._managers if m["active"]),
            "api": {
                "requests": sum(self.stats.requests.values()),
                "faults": sum(self.stats.injected.values()),
            },
        }

    # --- changing (as the CRM's own users, or through the API's writes) ---------------------------

    def _next_change_us(self) -> int:
        """Now, but always after every change already served, so the change feed keeps its order."""
        self._last_change_us = max(_us(self.clock.now()), self._last_change_us + 1)
        return self._last_change_us

    def _touch(self, index: int) -> int:
        self.pusher.push("order.updated", order_id_of(index), self.faults.push_drop_share)
        self._rendered_orders.pop(index, None)
        at = self._next_change_us()
        old = (self._updated[index], index)
        del self._feed[bisect.bisect_left(self._feed, old)]
        self._updated[index] = at
        self._feed.append((at, index))
        return at

    def _set_status(self, index: int, code: int, actor: str) -> None:
        current = self._status[index]
        at = self._touch(index)
        self._status[index] = code
        self._append_event(index, current, code, self._actor_code(actor), at)

    def create_order(self, **overrides: Any) -> dict[str, Any]:
        """A new order in pending_manager (fields not given are generated)."""
        index = self.order_count
        at = self._next_change_us()
        self._created.append(at)
        self._updated.append(at)
        self._status.append(PENDING)
        self._manager.append(_NO_MANAGER)
        self._feed.append((at, index))
        if overrides:
            self._overrides[index] = overrides
        self._append_event(index, _NONE, PENDING, _NO_MANAGER, at)
        self.pusher.push("order.created", order_id_of(index), self.faults.push_drop_share)
        return self._order_record(index)

    def change_status(
        self, order_id: str, status: str, *, actor: str = "crm", manager_id: str | None = None
    ) -> dict[str, Any]:
        """Change an order as someone working in the CRM would (no idempotency, no write log)."""
        index = self._lookup(order_id)
        code = self._status_code(status)
        if manager_id is not None:
            self._manager[index] = self._manager_index(manager_id)
        if code != self._status[index]:
            self._set_status(index, code, actor)
        elif manager_id is not None:
            self._touch(index)
        return self._order_record(index)

    def add_money(self, order_id: str, **extra: Any) -> dict[str, Any]:
        """Add compensations, disputes or payments to an order, or change its prices (as the CRM's users do
        after the fact); the order shows as changed to the next sync."""
        index = self._lookup(order_id)
        unknown = set(extra) - {"compensations", "disputes", "payments", "prices"}
        if unknown:
            raise _Refused(400, f"unknown fields: {', '.join(sorted(unknown))}")
        self._money[index] = merged({"prices": {}, **self._money.get(index, {})}, extra)
        self._touch(index)
        return self._order_record(index)

    def _status_code(self, name: str) -> int:
        try:
            return _CODE_OF[Status(name.strip().casefold())]
        except ValueError:
            raise _Refused(422, f"unknown status {name!r}") from None

    def _actor_code(self, actor: str) -> int:
        """Who made a change, as stored in the event log: a manager index, else the CRM."""
        return next((k for k, m in enumerate(self._managers) if m["id"] == actor), _NO_MANAGER)

    def _manager_index(self, manager_id: str) -> int:
        for k, m in enumerate(self._managers):
            if m["id"] == manager_id:
                return k
        raise _Refused(422, f"unknown manager {manager_id!r}")

    def upsert_manager(self, data: Mapping[str, Any]) -> dict[str, Any]:
        try:
            manager = as_json(validate(Manager, data))
        except ValidationError as exc:
            raise _Refused(400, describe(exc)) from None
        for k, m in enumerate(self._managers):
            if m["id"] == manager["id"]:
                self._managers[k] = manager
                return manager
        self._managers.append(manager)
        return manager

    def set_faults(self, faults: Faults | None = None, **fields: Any) -> Faults:
        """Replace the faults (fields left out go back to no fault); the fault dice restart from the seed."""
        self.faults = faults or Faults(**fields)
        self._fault_rng = random.Random(self.seed)
        return self.faults

    def _apply_write(self, kind: str, order_id: str, body: Any) -> dict[str, Any]:
        index = self._lookup(order_id)
        model: type[AssignWrite] | type[StatusWrite] = AssignWrite if kind == "assign" else StatusWrite
        try:
            request = model.model_validate(body)
        except ValidationError as exc:
            raise _Refused(422, describe(exc)) from None
        current = self._status[index]
        if current in _FINAL:
            raise _Refused(422, f"order {order_id} is {_CODES[current].value}; it can no longer change")
        if isinstance(request, AssignWrite):
            self._manager[index] = self._manager_index(request.manager_id)
            self._touch(index)
            return {"order_id": order_id, "manager_id": request.manager_id, "applied": True}
        code = self._status_code(request.status)
        if code != current:
            self._set_status(index, code, request.actor)
        return {"order_id": order_id, "status": _CODES[code].value, "applied": code != current}

    # --- HTTP -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(
            [
                web.get("/api/crm/orders", self._get_orders, name="orders"),
                web.get("/api/crm/orders/{order_id}", self._get_order, name="order"),
                web.get("/api/crm/order_status_events", self._get_events, name="events"),
                web.get("/api/crm/managers", self._get_managers, name="managers"),
                web.get("/api/admin/workspace", self._get_workspace, name="workspace"),
                web.get("/api/crm/leads", self._get_leads, name="leads"),
                web.post("/sim/leads/degrade", self._sim_degrade_leads),
                web.post("/api/crm/orders/{order_id}/assign", self._post_write, name="assign"),
                web.post("/api/crm/orders/{order_id}/status", self._post_write, name="status"),
                web.post("/sim/orders", self._sim_create_order),
                web.post("/sim/orders/{order_id}/status", self._sim_change_status),
                web.post("/sim/orders/{order_id}/money", self._sim_add_money),
                web.post("/sim/managers", self._sim_manager),
                web.get("/sim/faults", self._sim_get_faults),
                web.post("/sim/faults", self._sim_set_faults),
                web.get("/sim/writes", self._sim_writes),
                web.post("/sim/webhook", self._sim_webhook),
                web.get("/sim/stats", self._sim_stats),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port) and return the base URL."""
        # A hung (timed-out) request is cancelled when its client goes away, so stop() never waits for it.
        self._runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        await self.pusher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            if not request.path.startswith("/api/"):
                return await handler(request)
            route = request.match_info.route.name or "unknown"
            self.stats.requests[route] += 1
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                return _error(401, "missing or wrong bearer token")
            return await self._with_faults(request, handler)
        except _Refused as exc:
            return _error(exc.status, str(exc))

    async def _with_faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.fail_next or (faults.error_rate and self._fault_rng.random() < faults.error_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            self.stats.injected["error"] += 1
            headers = {} if faults.retry_after_s is None else {"Retry-After": f"{faults.retry_after_s:g}"}
            return _error(faults.error_status, "injected failure", headers)
        if faults.timeout_next or (faults.timeout_share and self._fault_rng.random() < faults.timeout_share):
            faults.timeout_next = max(0, faults.timeout_next - 1)
            self.stats.injected["timeout"] += 1
            # A write is applied before the answer is lost: the client must retry it under the same key.
            response = await handler(request) if request.method == "POST" else None
            await asyncio.sleep(faults.timeout_ms / 1000)
            return response or await handler(request)
        return await handler(request)

    def _limit(self, request: web.Request, default: int = 500) -> int:
        try:
            limit = int(request.query.get("limit", default))
        except ValueError:
            raise _Refused(400, "limit must be an integer") from None
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise _Refused(400, f"limit must be between 1 and {MAX_PAGE_SIZE}")
        return limit

    async def _get_orders(self, request: web.Request) -> web.Response:
        limit = self._limit(request)
        key = _feed_key(request.query.get("cursor"), request.query.get("updated_since"))
        indexes, last = self._orders_after(key, limit)
        self.stats.records["orders"] += len(indexes)
        tail = {
            "next_cursor": f"{last[0]}.{last[1]}",
            "has_more": bisect.bisect_right(self._feed, last) < len(self._feed),
        }
        if self._faulty_records():
            return _json({"items": [self._served("orders", self._order_record(i)) for i in indexes], **tail})
        return _page([self._order_json(i) for i in indexes], tail)

    async def _get_order(self, request: web.Request) -> web.Response:
        index = self._lookup(request.match_info["order_id"])
        self.stats.records["orders"] += 1
        if self._faulty_records():
            return _json(self._served("orders", self._order_record(index)))
        return web.Response(body=self._order_json(index), content_type="application/json")

    async def _get_events(self, request: web.Request) -> web.Response:
        limit = self._limit(request)
        try:
            since_id = max(0, int(request.query.get("since_id", 0)))
        except ValueError:
            raise _Refused(400, "since_id must be an integer") from None
        positions = range(since_id, min(since_id + limit, self.event_count))
        self.stats.records["events"] += len(positions)
        last = positions[-1] + 1 if positions else since_id
        tail = {"next_since_id": last, "has_more": last < self.event_count}
        if self._faulty_records():
            return _json(
                {"items": [self._served("events", self._event_record(p)) for p in positions], **tail}
            )
        return _page([self._event_json(p) for p in positions], tail)

    async def _get_leads(self, request: web.Request) -> web.Response:
        items, cursor, more = self.leads.page(
            self.clock.now(), request.query.get("cursor"), self._limit(request)
        )
        self.stats.records["leads"] += len(items)
        if self._faulty_records():
            items = [self._served("leads", item) for item in items]
        return _json({"items": items, "next_cursor": cursor, "has_more": more})

    async def _sim_degrade_leads(self, request: web.Request) -> web.Response:
        """`{"channel", "factor", "since"?}`: the channel's leads from `since` (default now) convert worse."""
        body = await _body(request)
        try:
            since = datetime.fromisoformat(body["since"]) if body.get("since") else self.clock.now()
            self.leads.degrade(str(body.get("channel")), since, float(body.get("factor", 0.5)))
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _json({"degradations": len(self.leads.degradations)})

    def _faulty_records(self) -> bool:
        return bool(self.faults.malformed_share or self.faults.drift)

    async def _get_managers(self, request: web.Request) -> web.Response:
        self.stats.records["managers"] += len(self._managers)
        return _json({"items": [self._served("managers", dict(m)) for m in self._managers]})

    async def _get_workspace(self, request: web.Request) -> web.Response:
        return _json(self.workspace())

    async def _post_write(self, request: web.Request) -> web.Response:
        kind = request.match_info.route.name or ""
        order_id = request.match_info["order_id"]
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise _Refused(400, "the Idempotency-Key header is required")
        try:
            body = await request.json()
        except ValueError:
            raise _Refused(400, "the body is not JSON") from None
        fingerprint = _dumps([kind, order_id, body], sort_keys=True)
        entry = {
            "idempotency_key": key,
            "kind": kind,
            "order_id": order_id,
            "payload": body,
            "received_at": _iso(_us(self.clock.now())),
            "applied": False,
            "replayed": False,
        }
        self.writes.append(entry)
        if key in self._idempotency:
            status, answer, seen = self._idempotency[key]
            if seen != fingerprint:
                entry["status"] = 422
                return _error(422, f"Idempotency-Key {key!r} was used for another request")
            entry.update(status=status, replayed=True)
            return _json(answer, status, {"Idempotent-Replayed": "true"})
        try:
            answer = self._apply_write(kind, order_id, body)
        except _Refused as exc:
            entry["status"] = exc.status
            raise
        # Only an applied write is remembered: a refused one changed nothing and may succeed later.
        self._idempotency[key] = (200, answer, fingerprint)
        entry.update(status=200, applied=True)
        return _json(answer)

    def _served(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the faults make it: broken for a stable share of records, drifted when asked."""
        faults = self.faults
        if faults.malformed_share:
            digest = zlib.crc32(f"{self.seed}:{kind}:{record['id']}".encode())
            if digest / 2**32 < faults.malformed_share:
                self.stats.malformed[kind].add(str(record["id"]))
                return _BREAKERS[kind][digest % len(_BREAKERS[kind])](record)
        return _DRIFTERS[kind](record) if faults.drift else record

    # --- /sim/ control ----------------------------------------------------------------------------

    async def _sim_create_order(self, request: web.Request) -> web.Response:
        body = await _body(request)
        unknown = set(body) - {"client", "bike", "seller", "prices"}
        if unknown:
            return _error(400, f"unknown fields: {', '.join(sorted(unknown))}")
        return _json(self.create_order(**body), 201)

    async def _sim_change_status(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body.get("status"), str):
            return _error(400, "status is required")
        try:
            record = self.change_status(
                request.match_info["order_id"],
                body["status"],
                actor=str(body.get("actor") or "crm"),
                manager_id=body.get("manager_id"),
            )
        except _Refused as exc:
            return _error(exc.status, str(exc))
        return _json(record)

    async def _sim_add_money(self, request: web.Request) -> web.Response:
        try:
            return _json(self.add_money(request.match_info["order_id"], **await _body(request)))
        except _Refused as exc:
            return _error(exc.status, str(exc))

    async def _sim_manager(self, request: web.Request) -> web.Response:
        try:
            return _json(self.upsert_manager(await _body(request)))
        except _Refused as exc:
            return _error(exc.status, str(exc))

    async def _sim_get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.model_dump())

    async def _sim_set_faults(self, request: web.Request) -> web.Response:
        try:
            faults = Faults.model_validate(await _body(request))
        except ValidationError as exc:
            return _error(400, describe(exc))
        return _json(self.set_faults(faults).model_dump())

    async def _sim_writes(self, request: web.Request) -> web.Response:
        return _json({"items": self.writes})

    async def _sim_webhook(self, request: web.Request) -> web.Response:
        body = await _body(request)
        url, secret = body.get("url"), body.get("secret", "")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return _error(400, "url must be an http(s) URL (or absent, to stop pushing)")
        if not isinstance(secret, str) or (url and not secret):
            return _error(400, "secret must be a non-empty string")
        self.pusher.set_webhook(url, secret)
        return _json({"url": url})

    async def _sim_stats(self, request: web.Request) -> web.Response:
        return _json({**self.stats.as_json(), "orders": self.order_count, "events": self.event_count})


def _feed_key(cursor: str | None, updated_since: str | None) -> tuple[int, int]:
    """Where in the change feed a page starts: after the cursor, or after every order updated by then."""
    if cursor:
        updated, _, index = cursor.partition(".")
        try:
            return int(updated), int(index)
        except ValueError:
            raise _Refused(400, f"bad cursor {cursor!r}") from None
    if updated_since:
        try:
            since = datetime.fromisoformat(updated_since.replace(" ", "+"))
        except ValueError:
            raise _Refused(400, f"updated_since is not an ISO timestamp: {updated_since!r}") from None
        if since.tzinfo is None:
            raise _Refused(400, "updated_since needs a UTC offset")
        return _us(since), 1 << 62
    return -1, -1


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _page(items: list[bytes], tail: dict[str, Any]) -> web.Response:
    """A page built from records already rendered as JSON: `{"items": [...], <tail>}`."""
    body = b'{"items":[' + b",".join(items) + b"]," + _dumps(tail)[1:].encode()
    return web.Response(body=body, content_type="application/json")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status, headers)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "the body is not JSON"}', content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error": "the body must be an object"}', content_type="application/json"
        )
    return body


# --- faults: how a record breaks the contract, and how it drifts without breaking it -------------


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


def _negative_price(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "bike": {**record["bike"], "price_eur": -record["bike"]["price_eur"] - 1}}


_BREAKERS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], ...]] = {
    "orders": (
        lambda r: {**r, "status": "on_hold"},
        lambda r: _without(r, "bike"),
        lambda r: {**r, "created_at": "yesterday"},
        _negative_price,
        lambda r: {
            **r,
            "payments": [
                *r.get("payments", []),
                {"id": "x", "amount_eur": 10, "kind": "gift", "at": r["updated_at"]},
            ],
        },
        lambda r: {
            **r,
            "compensations": [{"id": "x", "amount_eur": -50, "reason": "?", "at": r["updated_at"]}],
        },
    ),
    "events": (
        lambda r: {**r, "to_status": "teleported"},
        lambda r: {**r, "at": "soon"},
        lambda r: {**r, "order_id": None},
    ),
    "managers": (
        lambda r: {**r, "name": ""},
        lambda r: {**r, "telegram_id": "not a number"},
    ),
    "leads": (
        lambda r: _without(r, "channel"),
        lambda r: {**r, "created_at": "last tuesday"},
        lambda r: {**r, "cost_eur": -5},
    ),
}


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(_DRIFT_ZONE).isoformat()


def _drift_order(r: dict[str, Any]) -> dict[str, Any]:
    bike, prices = r["bike"], r["prices"]
    return {
        **r,
        "status": r["status"].upper(),
        "created_at": _local(r["created_at"]),
        "updated_at": _local(r["updated_at"]),
        "source_system": "crm-v2",
        "bike": {
            **bike,
            "price_eur": f"{bike['price_eur']:.2f}",
            "is_ebike": int(bike["is_ebike"]),
            "size": "M",
        },
        "prices": {k: None if v is None else f"{v:.2f}" for k, v in prices.items()} | {"currency": "EUR"},
        "client": {**r["client"], "vip": False},
    }


def _drift_event(r: dict[str, Any]) -> dict[str, Any]:
    from_status = r["from_status"]
    return {
        **r,
        "id": str(r["id"]),
        "to_status": r["to_status"].upper(),
        "from_status": from_status.upper() if from_status else from_status,
        "at": _local(r["at"]),
        "source": "crm-v2",
    }


def _drift_manager(r: dict[str, Any]) -> dict[str, Any]:
    return {
        **r,
        "capacity": str(r["capacity"]),
        "active": "true" if r["active"] else "false",
        "team": "sales",
    }


_DRIFTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "orders": _drift_order,
    "events": _drift_event,
    "managers": _drift_manager,
    "leads": lambda r: {**r, "channel": str(r["channel"]).upper(), "utm": "spring"},
}


async def serve_simulator(
    host: str, port: int, *, seed: int, orders: int, managers: int, events_per_order: float = 8.0
) -> int:
    """`main.py simulator`: serve the simulator until cancelled (Ctrl+C); exit code 2 if it cannot listen."""
    sim = BikeWerkSimulator(seed=seed, orders=orders, managers=managers, events_per_order=events_per_order)
    try:
        url = await sim.start(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    log_event(log, "simulator.started", url=url, orders=sim.order_count, events=sim.event_count, seed=seed)
    print(f"BikeWerk simulator at {url} ({sim.order_count} orders, {sim.event_count} events, seed {seed})")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
    return 0
