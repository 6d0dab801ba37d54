"""The CRM's pushes (POST /crm/events) end to end: the BikeWerk simulator pushes its changes over HTTP to the
real bot (BotApp, its push server on a free port), which checks the signature, reads the order through the
contract and the sync's code, and offers a new order at once, without waiting for a sync; the manual clock
never moves. A push that breaks the contract, or names an order the CRM does not know, changes nothing and is
kept aside; a push lost on the way is caught by the next sync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bikewerk.push import PUSH_PATH, SIGNATURE_HEADER, sign
from bot.sender import SendLimits
from scheduler.jobs import sync_bikewerk
from storage import crm
from storage.people import set_language
from testkit.emulator import BotMessage, RateLimits
from testkit.simulator import BikeWerkSimulator
from tests.support.harness import Harness, start_harness

SECRET = "push-secret-for-tests"
ANNA, BORIS = 1001, 1002
UNLIMITED = SendLimits(global_per_s=10_000, private_per_s=10_000, group_per_min=10_000, private_burst=10_000)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(
        tmp_path,
        simulator=True,
        rate_limits=RateLimits(enabled=False),
        send_limits=UNLIMITED,
        BIKEWERK_WEBHOOK_SECRET=SECRET,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=0,
    )
    sim = harness.simulator
    assert sim is not None and harness.app.push_url is not None
    for manager_id, telegram_id in (("anna", ANNA), ("boris", BORIS)):
        sim.upsert_manager(
            {"id": manager_id, "name": f"Manager {manager_id}", "telegram_id": telegram_id, "capacity": 10}
        )
        harness.emulator.add_user(telegram_id, f"Manager{telegram_id}", language_code="en")
        async with harness.services.db.transaction() as conn:
            await set_language(conn, telegram_id=telegram_id, lang="en", now=harness.clock.now())
    await sync_bikewerk(harness.app.syncer, harness.services)  # the managers, as at start-up
    sim.pusher.set_webhook(harness.app.push_url + PUSH_PATH, SECRET)
    try:
        yield harness
    finally:
        await harness.stop()


def simulator(h: Harness) -> BikeWerkSimulator:
    assert h.simulator is not None
    return h.simulator


async def pushed(h: Harness) -> None:
    """Every push the simulator made is delivered, applied by the bot, and its messages sent."""
    assert h.app.push is not None
    await simulator(h).pusher.delivered()
    await h.app.push.wait_idle()
    await h.settle()


async def post(h: Harness, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    assert h.app.push_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(h.app.push_url + PUSH_PATH, data=body, headers=headers) as r,
    ):
        return r.status


def cards(h: Harness, order_id: str) -> list[BotMessage]:
    return [
        m
        for chat in (ANNA, BORIS)
        for m in h.emulator.transcript(chat)
        if f"Order {order_id} " in (m.text or "")
    ]


async def query(h: Harness, sql: str, *params: object) -> list[tuple[object, ...]]:
    return [tuple(row) for row in await h.services.db.conn.execute_fetchall(sql, params)]


async def order_ids(h: Harness) -> set[str]:
    return {str(row[0]) for row in await query(h, "SELECT id FROM orders")}


async def test_an_order_created_in_the_crm_is_offered_at_once_without_a_sync(h: Harness) -> None:
    order_id = simulator(h).create_order()["id"]
    await pushed(h)
    assert [p["status"] for p in simulator(h).pusher.log] == [202]
    (card,) = cards(h, order_id)
    assert card in h.emulator.transcript(ANNA)  # both free: the first by id
    assert card.reply_markup is not None  # Accept / Decline
    # The next sync reads the same order again and changes nothing: still one card, one offer.
    await sync_bikewerk(h.app.syncer, h.services)
    await h.settle()
    assert len(cards(h, order_id)) == 1
    rows = await query(h, "SELECT count(*) FROM ai_assignments WHERE order_id = ?", order_id)
    assert rows[0][0] == 1


async def test_a_status_changed_in_the_crm_edits_the_card_through_the_push(h: Harness) -> None:
    order_id = simulator(h).create_order()["id"]
    await pushed(h)
    simulator(h).change_status(order_id, "cancelled")
    await pushed(h)
    rows = await query(h, "SELECT status FROM orders WHERE id = ?", order_id)
    assert rows[0][0] == "cancelled"
    events = await query(
        h, "SELECT to_status FROM order_status_events WHERE order_id = ? ORDER BY at", order_id
    )
    assert [e[0] for e in events] == ["pending_manager", "cancelled"]


async def test_a_push_without_a_valid_signature_is_refused_and_logged(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = simulator(h).create_order()["id"]  # known to the CRM; the push is not delivered yet
    await simulator(h).pusher.delivered()
    assert h.app.push is not None
    await h.app.push.wait_idle()
    body = json.dumps({"type": "order.created", "id": order_id}).encode()
    caplog.set_level(logging.WARNING)
    before = await order_ids(h)
    assert await post(h, body, None) == 401
    assert await post(h, body, sign("another secret", body)) == 401
    assert await post(h, body, "not hex at all") == 401
    assert await post(h, body + b" ", sign(SECRET, body)) == 401  # the body changed after signing
    assert await post(h, body, sign(SECRET, body).upper()) == 202  # hex in either case
    refused = [r for r in caplog.records if "push.refused" in r.getMessage()]
    assert len(refused) == 4
    assert h.app.push is not None and h.app.push.refused == 4
    await pushed(h)
    assert await order_ids(h) == before  # the signed push found the order already stored


async def test_a_replayed_push_is_harmless(h: Harness) -> None:
    order_id = simulator(h).create_order()["id"]
    await pushed(h)
    body = json.dumps({"type": "order.created", "id": order_id}).encode()
    for _ in range(3):
        assert await post(h, body, sign(SECRET, body)) == 202
    await pushed(h)
    assert len(cards(h, order_id)) == 1
    rows = await query(
        h, "SELECT count(*), count(DISTINCT id) FROM order_status_events WHERE order_id = ?", order_id
    )
    assert rows[0] == (1, 1)


async def test_a_push_for_an_unknown_order_changes_nothing_and_is_kept_aside(h: Harness) -> None:
    before = await order_ids(h)
    body = json.dumps({"type": "order.updated", "id": "BW-NOPE"}).encode()
    assert await post(h, body, sign(SECRET, body)) == 202
    await pushed(h)
    assert await order_ids(h) == before
    (kept,) = await crm.list_violations(h.services.db.conn, "crm_events")
    assert kept.record_id == "BW-NOPE" and "unknown" in kept.reason
    assert await open_contract_signals(h) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "order.exploded", "id": "BW-1"}',
        b'{"type": "order.created"}',
        b"not json",
        b"[1, 2]",
    ],
)
async def test_a_malformed_push_changes_nothing_and_is_kept_aside(h: Harness, body: bytes) -> None:
    before = await order_ids(h)
    assert await post(h, body, sign(SECRET, body)) == 400
    await pushed(h)
    assert await order_ids(h) == before
    (kept,) = await crm.list_violations(h.services.db.conn, "crm_events")
    assert kept.raw == body.decode()
    assert kept.reason.startswith("push: ")
    assert await open_contract_signals(h) == 1


async def test_a_pushed_order_breaking_the_contract_is_kept_aside_like_a_synced_one(h: Harness) -> None:
    simulator(h).set_faults(malformed_share=1.0)
    order_id = simulator(h).create_order()["id"]
    await pushed(h)
    assert order_id not in await order_ids(h)
    assert cards(h, order_id) == []
    kept = await crm.list_violations(h.services.db.conn, "orders")
    assert [k.record_id for k in kept] == [order_id]


async def test_pushes_lost_on_the_way_are_caught_by_the_next_sync(h: Harness) -> None:
    simulator(h).set_faults(push_drop_share=0.5)
    created = [simulator(h).create_order()["id"] for _ in range(10)]
    await pushed(h)
    log = simulator(h).pusher.log
    dropped = {p["id"] for p in log if p["dropped"]}
    assert dropped and len(dropped) < len(created)  # some lost, some delivered
    assert all(p["status"] == 202 for p in log if not p["dropped"])
    assert [o for o in created if not cards(h, o)] == sorted(dropped)
    await sync_bikewerk(h.app.syncer, h.services)  # the safety net, on its period
    await h.settle()
    assert all(len(cards(h, o)) == 1 for o in created)


async def test_the_first_sync_runs_at_start_up(h: Harness) -> None:
    job = h.app.scheduler.get_job("bikewerk.sync")
    assert job is not None
    interval = job.trigger.interval.total_seconds()
    assert interval == h.settings.sync_interval_seconds
    # Registered to run as the scheduler starts, not one period later.
    assert job.next_run_time is not None
    assert (job.next_run_time - job.trigger.start_date).total_seconds() < interval


async def open_contract_signals(h: Harness) -> int:
    rows = await query(
        h, "SELECT count(*) FROM ai_signals WHERE type = 'sync.contract_violation' AND state != 'resolved'"
    )
    return int(str(rows[0][0]))


async def test_the_simulator_is_told_where_to_push_over_http(h: Harness) -> None:
    assert h.simulator_url is not None and h.app.push_url is not None
    url = h.app.push_url + PUSH_PATH

    async def webhook(body: dict[str, object]) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{h.simulator_url}/sim/webhook", json=body) as r,
        ):
            return r.status

    assert await webhook({"url": "ftp://nowhere", "secret": SECRET}) == 400
    assert await webhook({"url": url}) == 400  # a webhook needs its secret
    assert await webhook({}) == 200  # stops pushing
    pushes = len(simulator(h).pusher.log)
    silent = simulator(h).create_order()["id"]
    assert len(simulator(h).pusher.log) == pushes and cards(h, silent) == []
    assert await webhook({"url": url, "secret": SECRET}) == 200
    order_id = simulator(h).create_order()["id"]
    await pushed(h)
    assert len(cards(h, order_id)) == 1


async def test_a_lead_push_runs_the_sync_at_once(h: Harness) -> None:
    simulator(h).pusher.set_webhook(None)
    missed = simulator(h).create_order()["id"]  # no push: only a sync would find it
    body = json.dumps({"type": "lead.updated", "id": "L-1"}).encode()
    assert await post(h, body, sign(SECRET, body)) == 202
    await pushed(h)
    assert len(cards(h, missed)) == 1
