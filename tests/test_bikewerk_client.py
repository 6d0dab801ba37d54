"""The BikeWerk client against the simulator over real HTTP: which failures are retried and how long it waits
(the sleep is injected, so nothing waits for real), bearer auth, pagination and answers off the contract."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from bikewerk.client import (
    BikeWerkClient,
    BikeWerkContractError,
    BikeWerkHTTPError,
    BikeWerkUnavailable,
    RetryPolicy,
)
from bikewerk.contract import Order, OrdersPage, as_json, read_page
from testkit.clocks import ManualClock
from testkit.simulator import BikeWerkSimulator


class Sleeps:
    """The client's sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def sim() -> AsyncIterator[BikeWerkSimulator]:
    simulator = BikeWerkSimulator(seed=3, orders=60, events_per_order=5)
    await simulator.start()
    yield simulator
    await simulator.stop()


@asynccontextmanager
async def serving(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """A stand-in API answering in ways the simulator never does; yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def client_for(url: str, sleeps: Sleeps, **kwargs: object) -> BikeWerkClient:
    options: dict[str, object] = {"retry": RetryPolicy(attempts=5, base_delay=1.0, max_delay=20.0)}
    options.update(kwargs)
    return BikeWerkClient(url, sleep=sleeps, rng=random.Random(1), **options)  # type: ignore[arg-type]


async def test_server_errors_are_retried_with_growing_jittered_waits(sim: BikeWerkSimulator) -> None:
    sim.set_faults(fail_next=3, error_status=500)
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps) as client:
        page = await client.managers()
    assert len(page.records) == 6
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = 1.0 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling  # exponential, with jitter in the upper half
    assert sim.stats.requests["managers"] == 4 and client.stats.retries == 3


async def test_a_429_waits_as_long_as_retry_after_says(sim: BikeWerkSimulator) -> None:
    sim.set_faults(fail_next=1, error_status=429, retry_after_s=7)
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps) as client:
        await client.managers()
    assert sleeps.delays == [7.0]


async def test_a_retry_after_beyond_the_policy_gives_up_at_once_and_passes_the_hint_on(
    sim: BikeWerkSimulator,
) -> None:
    sim.set_faults(fail_next=1, error_status=503, retry_after_s=600)
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps) as client:
        with pytest.raises(BikeWerkUnavailable) as caught:
            await client.managers()
    assert caught.value.retry_after == 600 and sleeps.delays == []
    assert sim.stats.requests["managers"] == 1


async def test_other_client_errors_are_final_at_once(sim: BikeWerkSimulator) -> None:
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps) as client:
        with pytest.raises(BikeWerkHTTPError) as bad_request:
            await client.orders_page(limit=0)
        with pytest.raises(BikeWerkHTTPError) as not_found:
            await client.write("assign", "BW-999999", {"manager_id": "m-01"}, idempotency_key="k")
    assert bad_request.value.status == 400 and "limit" in str(bad_request.value)
    assert not_found.value.status == 404 and "unknown order" in str(not_found.value)
    assert sleeps.delays == [] and sim.stats.requests["orders"] == 1 and sim.stats.requests["assign"] == 1


async def test_a_timeout_is_retried(sim: BikeWerkSimulator) -> None:
    # The hang (60 s) dwarfs the client's timeout (2 s), and 2 s is ample for the answered retry on a loaded
    # machine: exactly one retry, whatever the load (the server cancels the hanging handler on stop).
    sim.set_faults(timeout_next=1, timeout_ms=60_000)
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps, timeout=2.0) as client:
        page = await client.events_page(limit=10)
    assert [e.id for e in page.records] == list(range(1, 11))
    assert len(sleeps.delays) == 1 and sim.stats.injected["timeout"] == 1


async def test_the_client_gives_up_after_its_last_attempt(sim: BikeWerkSimulator) -> None:
    sim.set_faults(fail_next=10)
    sleeps = Sleeps()
    async with client_for(sim.url or "", sleeps, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(BikeWerkUnavailable) as caught:
            await client.workspace()
    assert "failed 3 times" in str(caught.value) and "503" in str(caught.value)
    assert len(sleeps.delays) == 2 and sim.stats.requests["workspace"] == 3


async def test_an_unreachable_api_is_retried_then_reported() -> None:
    gone = BikeWerkSimulator(orders=0)
    url = await gone.start()
    await gone.stop()
    sleeps = Sleeps()
    async with client_for(url, sleeps, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(BikeWerkUnavailable) as caught:
            await client.managers()
    assert "failed 2 times" in str(caught.value) and len(sleeps.delays) == 1


async def test_the_bearer_token_is_sent_and_a_wrong_one_is_not_retried() -> None:
    sim = BikeWerkSimulator(orders=5, token="s3cret")
    url = await sim.start()
    sleeps = Sleeps()
    try:
        async with client_for(url, sleeps, token="s3cret") as client:
            assert len((await client.managers()).records) == 6
        async with client_for(url, sleeps, token="wrong") as client:
            with pytest.raises(BikeWerkHTTPError) as caught:
                await client.managers()
        assert caught.value.status == 401 and sleeps.delays == []
    finally:
        await sim.stop()


async def test_pagination_walks_every_page_once(sim: BikeWerkSimulator) -> None:
    async with BikeWerkClient(sim.url or "") as client:
        order_pages = [page async for page in client.iter_orders(limit=7)]
        event_pages = [page async for page in client.iter_events(limit=40)]
        after = await client.orders_page(cursor=order_pages[-1].position)
    ids = [o.id for page in order_pages for o in page.records]
    assert len(ids) == len(set(ids)) == 60 and len(order_pages) == 9
    assert [page.more for page in order_pages] == [True] * 8 + [False]
    assert [e.id for page in event_pages for e in page.records] == list(range(1, 301))
    assert after.records == [] and not after.more  # the last position waits for the next change


async def test_a_page_with_bad_records_keeps_the_good_ones(sim: BikeWerkSimulator) -> None:
    sim.set_faults(malformed_share=0.25)
    async with BikeWerkClient(sim.url or "") as client:
        page = await client.orders_page(limit=100)
    assert len(page.records) + len(page.rejected) == page.received == 60
    rejected = {r.record_id for r in page.rejected}
    assert rejected and rejected <= set(sim.stats.malformed["orders"])
    assert all(r.reason and r.raw for r in page.rejected)
    # The other broken records have a status no one knows: the contract's shape holds, the sync refuses them.
    unknown = [o for o in page.records if o.id in set(sim.stats.malformed["orders"])]
    assert all(o.status == "on_hold" for o in unknown)


async def test_an_answer_that_is_not_a_page_is_a_contract_error() -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async def no_cursor(request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    routes = [web.get("/api/crm/orders", garbage), web.get("/api/crm/order_status_events", no_cursor)]
    async with serving(routes) as url, BikeWerkClient(url) as client:
        with pytest.raises(BikeWerkContractError, match="not a page of the contract"):
            await client.orders_page()
        with pytest.raises(BikeWerkContractError, match="next_since_id"):
            await client.events_page()


async def test_a_write_returns_the_crms_answer(sim: BikeWerkSimulator) -> None:
    order = sim.create_order()
    async with BikeWerkClient(sim.url or "") as client:
        answer = await client.write("assign", order["id"], {"manager_id": "m-02"}, idempotency_key="w-1")
        with pytest.raises(ValueError, match="unknown CRM write"):
            await client.write("delete", order["id"], {}, idempotency_key="w-2")
    assert answer == {"order_id": order["id"], "manager_id": "m-02", "applied": True}


async def test_a_retry_after_date_is_counted_from_the_clients_clock() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    answers = iter(
        [
            web.json_response(
                {"error": "maintenance"},
                status=503,
                headers={"Retry-After": format_datetime(now + timedelta(seconds=9), usegmt=True)},
            ),
            web.json_response({"items": []}),
        ]
    )

    async def managers(request: web.Request) -> web.Response:
        return next(answers)

    sleeps = Sleeps()
    routes = [web.get("/api/crm/managers", managers)]
    async with serving(routes) as url, client_for(url, sleeps, clock=ManualClock(now)) as client:
        assert (await client.managers()).records == []
    assert sleeps.delays == [9.0]


def test_a_seller_sent_as_an_object_reads_as_its_name_and_country() -> None:
    order: dict[str, object] = {
        "id": "o1",
        "status": "new",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
        "client": {"name": "Ana"},
        "bike": {"brand": "Cube", "model": "Attain", "price_eur": 900},
    }
    sellers: list[dict[str, object]] = [
        {"seller": " Shop A "},
        {"seller": {"name": " Shop B ", "country": "DE"}},
        {"seller": {"name": "Shop C", "country": "DE"}, "seller_country": "AT"},  # the field wins
        {"seller": {"country": "CZ"}},
        {"seller": None},  # kept aside: the page is then read record by record
    ]
    body = json.dumps({"items": [{**order, **s} for s in sellers], "next_cursor": "c"}).encode()
    page = read_page(OrdersPage, Order, body, limit=10)
    assert [(o.seller, o.seller_country) for o in page.records] == [
        ("Shop A", None),
        ("Shop B", "DE"),
        ("Shop C", "AT"),
        ("", "CZ"),
    ]
    assert len(page.rejected) == 1
    assert as_json(page.records[1])["seller"] == "Shop B"
