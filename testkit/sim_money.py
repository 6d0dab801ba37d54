"""The money and trust side of the simulator's seeded orders (SPEC §14): channel, countries, payments and
refunds, compensations and disputes, and the shipping that sometimes costs more than usual, drawn from a
random stream of their own so the rest of the data set stays as it was.

Shares (about): 8 % of delivered orders compensated (one in five of those twice), 4 %
disputed, 4 % under-collected, 4 % shipped above the usual rate, cancelled orders paid and refunded half the
time, partial refunds on lost disputes. Every instant lies between the order's creation and the anchor.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

CHANNELS = (("website", 40), ("instagram", 20), ("telegram_ads", 15), ("referral", 15), ("marketplace", 10))
CITY_COUNTRY = {"Wien": "AT", "Zürich": "CH", "Amsterdam": "NL", "Praha": "CZ"}
SELLER_COUNTRIES = (("DE", 80), ("PL", 8), ("NL", 5), ("AT", 4), ("CZ", 3))
COMPENSATION_REASONS = ("scratch not in photos", "late delivery", "missing part", "wrong size", "brake noise")
DISPUTE_OUTCOMES = ("client_won", "seller_won", "settled")
DELIVERED, CANCELLED, PENDING = 6, 7, 0
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _between(rng: random.Random, low: int, high: int) -> int:
    at = low + int(rng.uniform(0, max(0, high - low)))
    return at - at % 1_000_000


def money_of(
    rng: random.Random,
    record: dict[str, Any],
    *,
    status: int,
    created: int,
    updated: int,
    anchor: int,
    incidents: bool = True,
) -> dict[str, Any]:
    """The fields of SPEC §14 for one order, as changes to its `record` (client, prices, seller). Without
    `incidents` the order is paid in full once past pending_manager and nothing else happens to it."""
    prices = dict(record["prices"])
    sale = float(prices["sale_eur"])
    client = {**record["client"], "country": CITY_COUNTRY.get(record["client"].get("city", ""), "DE")}
    fields: dict[str, Any] = {
        "channel": _pick(rng, CHANNELS),
        "client": client,
        "seller_country": _pick(rng, SELLER_COUNTRIES),
        "compensations": [],
        "disputes": [],
        "payments": [],
    }
    if rng.random() < 0.04 and incidents:
        prices["shipping_eur"] = float(rng.choice((220, 260, 310, 380)))
        fields["prices"] = prices
    if status == PENDING:
        return fields
    end = max(updated, min(anchor, updated + 7 * _DAY_US))
    paid_at = _between(rng, created, min(updated, created + _DAY_US))
    payments = fields["payments"]
    if status == CANCELLED:
        if rng.random() < 0.5 and incidents:
            payments.append({"id": "p1", "amount_eur": sale, "kind": "payment", "at": _iso(paid_at)})
            payments.append(
                {"id": "r1", "amount_eur": sale, "kind": "refund", "at": _iso(_between(rng, updated, end))}
            )
        return fields
    share = rng.uniform(0.8, 0.97) if rng.random() < 0.04 else 1.0
    payments.append(
        {"id": "p1", "amount_eur": round(sale * share, 2), "kind": "payment", "at": _iso(paid_at)}
    )
    if status != DELIVERED:
        return fields
    if rng.random() < 0.08:
        for n in range(2 if rng.random() < 0.2 else 1):
            fields["compensations"].append(
                {
                    "id": f"c{n + 1}",
                    "amount_eur": float(rng.choice((40, 60, 90, 120, 180, 250, 400))),
                    "reason": rng.choice(COMPENSATION_REASONS),
                    "at": _iso(_between(rng, updated, end)),
                }
            )
    if rng.random() < 0.04:
        opened = _between(rng, updated, end)
        closed = rng.random() < 0.6
        outcome = rng.choice(DISPUTE_OUTCOMES) if closed else None
        closed_at = _between(rng, opened, end) if closed else None
        fields["disputes"].append(
            {
                "id": "d1",
                "opened_at": _iso(opened),
                "closed_at": None if closed_at is None else _iso(closed_at),
                "outcome": outcome,
            }
        )
        if outcome == "client_won" and closed_at is not None:
            payments.append(
                {"id": "r1", "amount_eur": round(sale * 0.2, 2), "kind": "refund", "at": _iso(closed_at)}
            )
    return fields


def merged(record: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`record` with entries added by the simulator's control side (`/sim/orders/{id}/money`): lists grow,
    prices change field by field."""
    result = dict(record)
    for key in ("compensations", "disputes", "payments"):
        if key in extra:
            result[key] = [*record.get(key, []), *extra[key]]
    if "prices" in extra:
        result["prices"] = {**record["prices"], **extra["prices"]}
    return result
