"""The BikeWerk simulator over real HTTP: a deterministic data set that keeps the contract, the change feed,
idempotent writes, the /sim/ control side and fault injection."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bikewerk import contract
from domain.statuses import Status
from testkit.simulator import CANCELLED, DELIVERED, BikeWerkSimulator, plan_history

ANCHOR = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def started(**kwargs: Any) -> BikeWerkSimulator:
    sim = BikeWerkSimulator(**{"seed": 7, "orders": 60, "events_per_order": 6, "anchor": ANCHOR, **kwargs})
    await sim.start()
    return sim


@pytest.fixture
async def sim() -> AsyncIterator[BikeWerkSimulator]:
    simulator = await started()
    yield simulator
    await simulator.stop()


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, expect: int = 200, **kwargs: Any
) -> Any:
    async with http.request(method, url, **kwargs) as response:
        body = await response.json()
        assert response.status == expect, body
        return body


async def all_events(http: aiohttp.ClientSession, sim: BikeWerkSimulator) -> list[dict[str, Any]]:
    page = await call(http, "GET", f"{sim.url}/api/crm/order_status_events", params={"limit": "10000"})
    assert not page["has_more"]
    return list(page["items"])


async def all_orders(http: aiohttp.ClientSession, sim: BikeWerkSimulator) -> list[dict[str, Any]]:
    page = await call(http, "GET", f"{sim.url}/api/crm/orders", params={"limit": "10000"})
    return list(page["items"])


async def test_the_same_seed_serves_the_same_data_and_another_seed_other_data(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    twin = await started()
    other = await started(seed=8)
    try:
        assert await all_orders(http, sim) == await all_orders(http, twin)
        assert await all_events(http, sim) == await all_events(http, twin)
        assert await all_orders(http, sim) != await all_orders(http, other)
    finally:
        await twin.stop()
        await other.stop()


async def test_records_keep_the_contract_and_histories_add_up(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    orders = {o["id"]: contract.validate(contract.Order, o) for o in await all_orders(http, sim)}
    events = [contract.validate(contract.StatusEvent, e) for e in await all_events(http, sim)]
    managers = await call(http, "GET", f"{sim.url}/api/crm/managers")

    assert len(orders) == 60
    assert len(events) == 60 * 6  # the mean number of events per order, exactly
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.at for e in events] == sorted(e.at for e in events)  # ids follow time, as in a real CRM
    assert [m["telegram_id"] for m in managers["items"]] == [1001, 1002, 1003, 1004, 1005, 1006]
    by_order: dict[str, list[contract.StatusEvent]] = {}
    for e in events:
        by_order.setdefault(e.order_id, []).append(e)
    assert by_order.keys() == orders.keys()
    for order_id, history in by_order.items():
        order = orders[order_id]
        assert history[0].from_status is None and history[0].to_status == "pending_manager"
        for before, after in itertools.pairwise(history):
            assert after.from_status == before.to_status
            assert before.to_status not in ("delivered", "cancelled")  # final statuses come last
        assert order.status == history[-1].to_status
        assert order.created_at == history[0].at and order.updated_at == history[-1].at
        assert order.created_at <= ANCHOR and order.bike.price_eur > 0
        assert order.prices.sale_eur == order.bike.price_eur
        assert (order.manager_id is None) == (order.status == "pending_manager" or _never_taken(history))


def _never_taken(history: list[contract.StatusEvent]) -> bool:
    return history[-1].to_status == "cancelled" and history[-1].from_status == "pending_manager"


@given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=10_000))
def test_a_history_has_exactly_the_changes_asked_for_and_moves_like_an_order(
    transitions: int, seed: int
) -> None:
    seq = plan_history(random.Random(seed), transitions)
    assert len(seq) == transitions + 1
    assert seq[0] == 0
    for before, after in itertools.pairwise(seq):
        assert before not in (DELIVERED, CANCELLED)
        # one step on, back one or two steps (a detour), or cancelled
        assert after == CANCELLED or after - before in (1, -1, -2)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=40), st.floats(min_value=0, max_value=12))
def test_the_data_set_has_exactly_the_events_asked_for(orders: int, per_order: float) -> None:
    sim = BikeWerkSimulator(seed=1, orders=orders, events_per_order=per_order, anchor=ANCHOR)
    assert sim.order_count == orders
    assert sim.event_count == max(orders, round(orders * per_order))  # every order has its first event


async def test_the_change_feed_resumes_after_its_cursor_and_brings_a_changed_order_once_more(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    url = f"{sim.url}/api/crm/orders"
    first = await call(http, "GET", url, params={"limit": "25"})
    second = await call(http, "GET", url, params={"limit": "50", "cursor": first["next_cursor"]})
    assert first["has_more"] and not second["has_more"]
    assert len(first["items"]) + len(second["items"]) == 60
    keys = [(o["updated_at"], o["id"]) for o in first["items"] + second["items"]]
    assert keys == sorted(keys)

    quiet = await call(http, "GET", url, params={"cursor": second["next_cursor"]})
    assert quiet["items"] == [] and quiet["next_cursor"] == second["next_cursor"]

    changed = first["items"][0]["id"]
    await call(http, "POST", f"{sim.url}/sim/orders/{changed}/status", json={"status": "cancelled"})
    after = await call(http, "GET", url, params={"cursor": second["next_cursor"]})
    assert [o["id"] for o in after["items"]] == [changed]
    assert after["items"][0]["status"] == "cancelled"

    since = first["items"][-1]["updated_at"]
    newer = await call(http, "GET", url, params={"updated_since": since, "limit": "100"})
    assert all(o["updated_at"] > since for o in newer["items"])  # updated_since is exclusive
    assert changed in [o["id"] for o in newer["items"]]


async def test_sim_orders_creates_a_pending_order_with_its_first_event(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    created = await call(
        http,
        "POST",
        f"{sim.url}/sim/orders",
        json={"client": {"name": "Ada Lovelace", "city": "Köln"}},
        expect=201,
    )
    assert created["id"] == "BW-000061" and created["status"] == "pending_manager"
    assert created["client"]["name"] == "Ada Lovelace" and created["manager_id"] is None
    events = await all_events(http, sim)
    assert events[-1]["order_id"] == "BW-000061" and events[-1]["to_status"] == "pending_manager"
    await call(http, "POST", f"{sim.url}/sim/orders", json={"colour": "red"}, expect=400)


async def test_sim_status_change_records_an_event_and_refuses_unknown_orders_and_statuses(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    created = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
    url = f"{sim.url}/sim/orders/{created['id']}/status"
    moved = await call(http, "POST", url, json={"status": "accepted", "actor": "m-02", "manager_id": "m-02"})
    assert moved["status"] == "accepted" and moved["manager_id"] == "m-02"
    last = (await all_events(http, sim))[-1]
    assert (last["from_status"], last["to_status"], last["actor"]) == ("pending_manager", "accepted", "m-02")
    await call(http, "POST", url, json={"status": "on_hold"}, expect=422)
    await call(
        http, "POST", f"{sim.url}/sim/orders/BW-999999/status", json={"status": "accepted"}, expect=404
    )


async def test_a_write_under_one_idempotency_key_is_applied_once_and_answered_the_same(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    order = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
    url = f"{sim.url}/api/crm/orders/{order['id']}/status"
    body = {"status": "accepted", "actor": "m-01"}
    first = await call(http, "POST", url, json=body, headers={"Idempotency-Key": "k-1"})
    again = await call(http, "POST", url, json=body, headers={"Idempotency-Key": "k-1"})
    assert first == again == {"order_id": order["id"], "status": "accepted", "applied": True}

    events = [e for e in await all_events(http, sim) if e["order_id"] == order["id"]]
    assert [e["to_status"] for e in events] == ["pending_manager", "accepted"]  # applied once
    writes = (await call(http, "GET", f"{sim.url}/sim/writes"))["items"]
    assert [(w["idempotency_key"], w["applied"], w["replayed"]) for w in writes] == [
        ("k-1", True, False),
        ("k-1", False, True),
    ]
    # The same key for another request, and a write without a key, are refused and change nothing.
    other = {"status": "inspection", "actor": "m-01"}
    await call(http, "POST", url, json=other, headers={"Idempotency-Key": "k-1"}, expect=422)
    await call(http, "POST", url, json=body, expect=400)
    assert sim.order(order["id"])["status"] == "accepted"


async def test_a_refused_write_is_not_remembered_so_it_can_pass_once_fixed(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    order = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
    url = f"{sim.url}/api/crm/orders/{order['id']}/assign"
    key = {"Idempotency-Key": "assign-1"}
    refused = await call(http, "POST", url, json={"manager_id": "m-77"}, headers=key, expect=422)
    assert "unknown manager" in refused["error"]
    await call(
        http,
        "POST",
        f"{sim.url}/sim/managers",
        json={"id": "m-77", "name": "New Person", "telegram_id": 1077},
    )
    applied = await call(http, "POST", url, json={"manager_id": "m-77"}, headers=key)
    assert applied["applied"] and sim.order(order["id"])["manager_id"] == "m-77"
    managers = await call(http, "GET", f"{sim.url}/api/crm/managers")
    assert managers["items"][-1]["telegram_id"] == 1077


async def test_a_final_order_refuses_status_writes(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    done = next(o for o in await all_orders(http, sim) if o["status"] == "delivered")
    answer = await call(
        http,
        "POST",
        f"{sim.url}/api/crm/orders/{done['id']}/status",
        json={"status": "cancelled", "actor": "m-01"},
        headers={"Idempotency-Key": "late"},
        expect=422,
    )
    assert "delivered" in answer["error"]


async def test_injected_failures_hit_the_api_but_never_the_control_side(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    await call(
        http, "POST", f"{sim.url}/sim/faults", json={"fail_next": 2, "error_status": 429, "retry_after_s": 3}
    )
    for _ in range(2):
        async with http.get(f"{sim.url}/api/crm/managers") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "3"
    await call(http, "GET", f"{sim.url}/sim/stats")  # the control side is never failed
    await call(http, "GET", f"{sim.url}/api/crm/managers")  # the burst is over
    stats = await call(http, "GET", f"{sim.url}/sim/stats")
    assert stats["injected"] == {"error": 2} and stats["requests"]["managers"] == 3


async def test_bad_fault_settings_and_bad_parameters_get_a_clear_400(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    bad = await call(http, "POST", f"{sim.url}/sim/faults", json={"error_rate": 2}, expect=400)
    assert "error_rate" in bad["error"]
    await call(http, "POST", f"{sim.url}/sim/faults", json={"flood": True}, expect=400)
    assert (await call(http, "GET", f"{sim.url}/sim/faults"))["error_rate"] == 0
    url = f"{sim.url}/api/crm/orders"
    assert "limit" in (await call(http, "GET", url, params={"limit": "0"}, expect=400))["error"]
    assert "cursor" in (await call(http, "GET", url, params={"cursor": "x"}, expect=400))["error"]
    assert (
        "updated_since"
        in (await call(http, "GET", url, params={"updated_since": "soon"}, expect=400))["error"]
    )


async def test_a_timed_out_write_is_applied_before_its_answer_is_lost(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    order = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
    sim.set_faults(timeout_next=1, timeout_ms=5_000)
    url = f"{sim.url}/api/crm/orders/{order['id']}/assign"
    short = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            url, json={"manager_id": "m-03"}, headers={"Idempotency-Key": "a"}, timeout=short
        ):
            pass
    assert sim.order(order["id"])["manager_id"] == "m-03"
    replay = await call(http, "POST", url, json={"manager_id": "m-03"}, headers={"Idempotency-Key": "a"})
    assert replay["applied"] and [w["applied"] for w in sim.writes] == [True, False]


async def test_malformed_records_are_the_same_ones_every_time_and_listed(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    await call(http, "POST", f"{sim.url}/sim/faults", json={"malformed_share": 0.2})
    first = await all_orders(http, sim)
    again = await all_orders(http, sim)
    assert first == again
    broken = {o["id"] for o in first if _breaks(o)}
    assert broken and len(broken) < 30
    stats = await call(http, "GET", f"{sim.url}/sim/stats")
    assert set(stats["malformed"]["orders"]) == broken


def _breaks(raw: dict[str, Any]) -> bool:
    try:
        order = contract.validate(contract.Order, raw)
    except ValueError:
        return True
    return order.status not in {status.value for status in Status}


async def test_schema_drift_looks_different_on_the_wire_but_means_the_same(
    http: aiohttp.ClientSession, sim: BikeWerkSimulator
) -> None:
    plain_orders, plain_events = await all_orders(http, sim), await all_events(http, sim)
    sim.set_faults(drift=True)
    drifted_orders, drifted_events = await all_orders(http, sim), await all_events(http, sim)
    assert drifted_orders[0]["bike"]["price_eur"] == f"{plain_orders[0]['bike']['price_eur']:.2f}"
    assert drifted_orders[0]["created_at"].endswith(("+01:00", "+02:00"))
    assert drifted_orders[0]["status"].isupper()
    for plain, drifted in zip(plain_orders, drifted_orders, strict=True):
        a, b = contract.validate(contract.Order, plain), contract.validate(contract.Order, drifted)
        assert (a.id, a.created_at, a.bike, a.prices) == (b.id, b.created_at, b.bike, b.prices)
    for plain_event, drifted_event in zip(plain_events, drifted_events, strict=True):
        e = contract.validate(contract.StatusEvent, plain_event)
        f = contract.validate(contract.StatusEvent, drifted_event)
        assert (e.id, e.at, e.to_status) == (f.id, f.at, f.to_status.lower())


async def test_latency_is_added_to_api_answers(http: aiohttp.ClientSession, sim: BikeWerkSimulator) -> None:
    sim.set_faults(latency_ms=150)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    await call(http, "GET", f"{sim.url}/api/crm/managers")
    assert loop.time() - started_at >= 0.15


async def test_a_token_protects_the_api(http: aiohttp.ClientSession) -> None:
    sim = await started(token="s3cret")
    try:
        await call(http, "GET", f"{sim.url}/api/crm/managers", expect=401)
        await call(
            http, "GET", f"{sim.url}/api/crm/managers", headers={"Authorization": "Bearer nope"}, expect=401
        )
        ok = await call(
            http, "GET", f"{sim.url}/api/crm/managers", headers={"Authorization": "Bearer s3cret"}
        )
        assert len(ok["items"]) == 6
    finally:
        await sim.stop()


async def test_changes_follow_the_simulators_clock(http: aiohttp.ClientSession) -> None:
    class Fixed:
        def now(self) -> datetime:
            return ANCHOR + timedelta(hours=1)

    sim = await started(clock=Fixed())
    try:
        created = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
        second = await call(http, "POST", f"{sim.url}/sim/orders", expect=201)
        assert created["created_at"] == "2026-11-23T09:00:00Z"
        # never two changes at one instant, so the change feed keeps its order
        assert datetime.fromisoformat(second["created_at"]) > datetime.fromisoformat(created["created_at"])
        workspace = await call(http, "GET", f"{sim.url}/api/admin/workspace")
        assert workspace["orders_total"] == 62 and workspace["events_total"] == 60 * 6 + 2
    finally:
        await sim.stop()
