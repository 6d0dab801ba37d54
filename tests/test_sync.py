"""The BikeWerk sync over real HTTP against the simulator into a real SQLite file: a full sync, an incremental
one, the bot's own changes, faults (5xx, timeouts, malformed records, schema drift) and resuming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bikewerk.client import BikeWerkClient, RetryPolicy
from bikewerk.outbox import CrmOutboxWorker, enqueue_crm_write
from bikewerk.sync import EVENTS_CURSOR, ORDERS_CURSOR, Syncer, SyncProgress
from bikewerk.sync_command import run_sync_command
from bot.config import load_settings
from domain.policy import Policy, calendar_for
from domain.sla import plan_visit
from domain.statuses import FINAL_STATUSES, Status, next_steps
from storage import orders as order_store
from storage.db import Database, parse_ts, ts
from storage.timers import open_visit
from testkit.clocks import ManualClock
from testkit.simulator import BikeWerkSimulator

ANCHOR = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
POLICY = Policy.default()
TAKEN = "('accepted', 'inspection', 'awaiting_client', 'ready_for_shipment')"  # open, with a manager
CALENDAR = calendar_for(POLICY, "Europe/Berlin")


async def no_sleep(seconds: float) -> None:
    """The client's retries wait for nothing in tests."""


@dataclass
class World:
    sim: BikeWerkSimulator
    db: Database
    client: BikeWerkClient
    clock: ManualClock
    syncer: Syncer
    tmp_path: Path

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return [tuple(row) for row in await self.db.fetchall(sql, params)]

    async def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return (await self.rows(sql, params))[0][0]

    async def api(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.sim.url}{path}", params=params) as response,
        ):
            assert response.status == 200
            return await response.json()

    def another_syncer(self, db: Database) -> Syncer:
        return Syncer(db, self.client, POLICY, CALENDAR, self.clock, page_size=25, batch_records=60)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(ANCHOR + timedelta(minutes=1))
    sim = BikeWerkSimulator(seed=11, orders=120, events_per_order=6, anchor=ANCHOR, clock=clock)
    url = await sim.start()
    db = await Database.open(tmp_path / "sync.db")
    client = BikeWerkClient(url, sleep=no_sleep, retry=RetryPolicy(attempts=4), timeout=2)
    syncer = Syncer(db, client, POLICY, CALENDAR, clock, page_size=25, batch_records=60)
    yield World(sim, db, client, clock, syncer, tmp_path)
    await client.close()
    await db.close()
    await sim.stop()


async def test_a_full_sync_stores_the_crm_as_it_is(world: World) -> None:
    report = await world.syncer.sync_once()

    assert report.ok and report.workspace and report.violations == 0
    assert set(report.new_order_ids) == set(world.sim.order_ids()) and report.changed_order_ids == []
    assert (report.managers, report.orders, report.events) == (6, 120, 720)
    assert report.pages > 10  # 25 records a page
    api_orders = (await world.api("/api/crm/orders", limit="1000"))["items"]
    api_events = (await world.api("/api/crm/order_status_events", limit="1000"))["items"]
    stored = {
        row[0]: row
        for row in await world.rows(
            "SELECT id, status, crm_status, created_at, updated_at, status_since, client_name, client_city,"
            " bike_brand, bike_model, price_eur, is_ebike, seller, crm_manager_id, assigned_manager_id,"
            " sale_eur, purchase_eur, shipping_eur, fees_eur FROM orders"
        )
    }
    assert len(stored) == 120
    for o in api_orders:
        row = stored[o["id"]]
        p = o["prices"]
        assert row[1:5] == (o["status"], o["status"], _ts(o["created_at"]), _ts(o["updated_at"]))
        assert row[5] == _ts(o["updated_at"])  # the simulator changes an order when its status changes
        client, bike = o["client"], o["bike"]
        assert row[6:10] == (client["name"], client["city"], bike["brand"], bike["model"])
        assert row[10:13] == (bike["price_eur"], int(bike["is_ebike"]), o["seller"])
        assert row[13] == o["manager_id"]
        assert row[14] == (o["manager_id"] if o["status"] != "pending_manager" else None)
        assert row[15:] == (p["sale_eur"], p["purchase_eur"], p["shipping_eur"], p["fees_eur"])
    events = await world.rows(
        "SELECT crm_event_id, order_id, from_status, to_status, actor, source, at FROM order_status_events"
        " ORDER BY crm_event_id"
    )
    assert events == [
        (e["id"], e["order_id"], e["from_status"], e["to_status"], e["actor"], "crm", _ts(e["at"]))
        for e in api_events
    ]
    managers = await world.rows("SELECT id, telegram_id, active, capacity FROM managers ORDER BY id")
    assert [m[1] for m in managers] == [1001, 1002, 1003, 1004, 1005, 1006]
    assert await world.value("SELECT value FROM sync_cursors WHERE name = ?", (EVENTS_CURSOR,)) == "720"
    assert await world.value("SELECT count(*) FROM sync_cursors WHERE name = ?", (ORDERS_CURSOR,)) == 1
    snapshot = json.loads(await world.value("SELECT payload FROM workspace_snapshots"))
    assert snapshot["orders_total"] == 120


async def test_every_open_order_gets_its_sla_visit_from_when_it_entered_its_status(world: World) -> None:
    await world.syncer.sync_once()
    timers = {
        row[0]: row[1:]
        for row in await world.rows(
            "SELECT order_id, status, entered_at, breach_at, reminder_at, policy_version FROM sla_timers"
            " WHERE closed_at IS NULL"
        )
    }
    orders = await world.rows("SELECT id, status, status_since FROM orders")
    open_orders = [o for o in orders if Status(o[1]) not in FINAL_STATUSES]
    assert open_orders and timers.keys() == {o[0] for o in open_orders}
    for order_id, status, since in open_orders:
        entered = await world.value(
            "SELECT max(at) FROM order_status_events WHERE order_id = ? AND to_status = ?", (order_id, status)
        )
        planned = plan_visit(Status(status), parse_ts(entered), POLICY, CALENDAR)
        assert planned is not None and since == entered
        assert timers[order_id] == (
            status,
            entered,
            ts(planned.breach_at),
            ts(planned.reminder_at),
            POLICY.version,
        )


async def test_an_incremental_sync_reads_only_what_changed(world: World) -> None:
    await world.syncer.sync_once()
    before = dict(world.sim.stats.requests), dict(world.sim.stats.records)

    quiet = await world.syncer.sync_once()
    assert quiet.ok and (quiet.orders, quiet.events, quiet.new_order_ids, quiet.changed_order_ids) == (
        0,
        0,
        [],
        [],
    )
    requests = {k: v - before[0].get(k, 0) for k, v in world.sim.stats.requests.items()}
    assert requests == {"managers": 1, "events": 1, "orders": 1, "leads": 1, "workspace": 1}

    moving, status = (await world.rows(f"SELECT id, status FROM orders WHERE status IN {TAKEN} ORDER BY id"))[
        0
    ]
    target = next_steps(Status(status))[0]
    world.clock.advance(timedelta(minutes=30))
    world.sim.change_status(moving, target.value, actor="m-01")
    new = world.sim.create_order()["id"]
    records_before = dict(world.sim.stats.records)
    report = await world.syncer.sync_once()

    assert report.new_order_ids == [new] and report.changed_order_ids == [moving]
    assert (report.orders, report.events) == (2, 2)
    records = {k: v - records_before.get(k, 0) for k, v in world.sim.stats.records.items()}
    moved_leads = records.pop("leads", 0)  # leads that moved in the funnel in those 30 minutes, not all
    assert records == {"orders": 2, "events": 2, "managers": 6}  # only the changes crossed the wire
    assert moved_leads < world.sim.stats.records["leads"] / 10
    visits = await world.rows(
        "SELECT status, entered_at, closed_at FROM sla_timers WHERE order_id = ? ORDER BY id", (moving,)
    )
    changed_at = ts(world.clock.now())
    assert visits[-2][0] == status and visits[-2][2] == changed_at
    assert visits[-1] == (target.value, changed_at, None)
    assert await world.value("SELECT status_since FROM orders WHERE id = ?", (moving,)) == changed_at
    assert await world.rows("SELECT status FROM orders WHERE id = ?", (new,)) == [("pending_manager",)]
    assert await world.value("SELECT count(*) FROM order_status_events") == 722


async def test_the_bots_own_status_change_is_neither_undone_nor_doubled(world: World) -> None:
    await world.syncer.sync_once()
    order_id = await world.value("SELECT id FROM orders WHERE status = 'accepted' ORDER BY id LIMIT 1")
    world.clock.advance(timedelta(minutes=5))
    now = world.clock.now()
    async with (
        world.db.transaction() as conn
    ):  # what the bot's use case writes when a manager moves the order
        event_id = await order_store.add_status_event(
            conn,
            order_id=order_id,
            from_status=Status.ACCEPTED,
            to_status=Status.INSPECTION,
            actor="m-01",
            at=now,
        )
        await order_store.set_status(conn, order_id, Status.INSPECTION, now)
        await open_visit(conn, order_id, plan_visit(Status.INSPECTION, now, POLICY, CALENDAR))
        await enqueue_crm_write(
            conn,
            kind="status",
            order_id=order_id,
            payload={"status": "inspection", "actor": "m-01", "at": now},
            idempotency_key=f"status:{event_id}",
            now=now,
        )
    # The CRM touches the order before our write reaches it: it still shows "accepted".
    world.clock.advance(timedelta(minutes=1))
    world.sim.change_status(order_id, "accepted", manager_id="m-04")
    report = await world.syncer.sync_once()
    assert report.changed_order_ids == [] and report.orders == 1
    assert await world.rows("SELECT status, crm_manager_id FROM orders WHERE id = ?", (order_id,)) == [
        ("inspection", "m-04")
    ]

    rows_before = await world.value(
        "SELECT count(*) FROM order_status_events WHERE order_id = ?", (order_id,)
    )
    timers_before = await world.value("SELECT count(*) FROM sla_timers WHERE order_id = ?", (order_id,))
    assert await CrmOutboxWorker(world.db, world.client, world.clock).flush() == 1
    report = await world.syncer.sync_once()

    assert report.ok and report.changed_order_ids == [] and report.events == 0
    # The CRM's echo of our change is attached to the bot's own row, not stored a second time ...
    echo = await world.value("SELECT crm_event_id FROM order_status_events WHERE id = ?", (event_id,))
    assert echo == world.sim.event_count
    assert (
        await world.value("SELECT count(*) FROM order_status_events WHERE order_id = ?", (order_id,))
        == rows_before
    )
    # ... and opens no second visit.
    assert (
        await world.value("SELECT count(*) FROM sla_timers WHERE order_id = ?", (order_id,)) == timers_before
    )
    assert await world.value("SELECT status FROM orders WHERE id = ?", (order_id,)) == "inspection"


async def test_the_crm_manager_fills_in_ours_only_when_we_have_none(world: World) -> None:
    await world.syncer.sync_once()
    ours, theirs = await world.rows(f"SELECT id FROM orders WHERE status IN {TAKEN} ORDER BY id LIMIT 2")
    async with world.db.transaction() as conn:
        await order_store.set_assigned_managers(conn, [("m-06", ours[0]), (None, theirs[0])])
    world.clock.advance(timedelta(minutes=1))
    for order_id, manager in ((ours[0], "m-02"), (theirs[0], "m-03")):  # the CRM reassigns both
        world.sim.change_status(order_id, world.sim.order(order_id)["status"], manager_id=manager)
    await world.syncer.sync_once()
    assert await world.value("SELECT assigned_manager_id FROM orders WHERE id = ?", ours) == "m-06"
    assert await world.value("SELECT assigned_manager_id FROM orders WHERE id = ?", theirs) == "m-03"


async def test_a_sync_under_faults_stores_every_good_record_once_and_keeps_every_bad_one_aside(
    world: World,
) -> None:
    world.sim.set_faults(malformed_share=0.15, error_rate=0.3, timeout_share=0.05, timeout_ms=1_000)
    world.client = BikeWerkClient(
        world.sim.url or "", sleep=no_sleep, retry=RetryPolicy(attempts=3), timeout=0.3
    )
    syncer = world.another_syncer(world.db)
    runs = []
    for _ in range(40):  # some runs stop on a burst of failures; each resumes where the last one stopped
        runs.append(await syncer.sync_once())
        if runs[-1].ok:
            break
    await world.client.close()

    assert runs[-1].ok and any(not r.ok for r in runs) and world.sim.stats.injected["error"] > 0
    bad_orders = set(world.sim.stats.malformed["orders"])
    bad_events = {int(i) for i in world.sim.stats.malformed["events"]}
    assert bad_orders and bad_events
    stored_orders = {row[0] for row in await world.rows("SELECT id FROM orders")}
    assert stored_orders == set(world.sim.order_ids()) - bad_orders
    stored_events = [row[0] for row in await world.rows("SELECT crm_event_id FROM order_status_events")]
    assert sorted(stored_events) == sorted(set(range(1, 721)) - bad_events)  # each once
    kept_aside = await world.rows("SELECT source, record_id, reason FROM contract_violations")
    assert sorted(r[1] for r in kept_aside if r[0] == "orders") == sorted(bad_orders)
    assert sorted(int(r[1]) for r in kept_aside if r[0] == "order_status_events") == sorted(bad_events)
    reasons = " | ".join(r[2] for r in kept_aside)
    assert "unknown order status 'on_hold'" in reasons and "bike: Field required" in reasons
    assert "to_status" in reasons or "at: Input should be" in reasons
    signals = await world.rows(
        "SELECT dedup_key, state FROM ai_signals WHERE type = 'sync.contract_violation' ORDER BY dedup_key"
    )
    assert signals == [
        ("sync.contract_violation:leads", "open"),  # the simulator breaks leads too (testkit/sim_leads.py)
        ("sync.contract_violation:order_status_events", "open"),
        ("sync.contract_violation:orders", "open"),
    ]
    assert sum(r.violations for r in runs) == len(kept_aside)


async def test_schema_drift_is_read_as_the_same_data(world: World) -> None:
    await world.syncer.sync_once()
    drifted = await Database.open(world.tmp_path / "drifted.db")
    try:
        world.sim.set_faults(drift=True)
        report = await world.another_syncer(drifted).sync_once()
        assert report.ok and report.violations == 0
        for table, columns in (
            (
                "orders",
                "id, status, created_at, updated_at, status_since, client_name, bike_model, price_eur,"
                " is_ebike, sale_eur, fees_eur, crm_manager_id, assigned_manager_id",
            ),
            ("order_status_events", "crm_event_id, order_id, from_status, to_status, actor, at"),
            ("managers", "id, name, telegram_id, active, capacity"),
            ("sla_timers", "order_id, status, entered_at, breach_at"),
        ):
            sql = f"SELECT {columns} FROM {table} ORDER BY 1, 2"
            plain = [tuple(r) for r in await world.db.fetchall(sql)]
            assert plain == [tuple(r) for r in await drifted.fetchall(sql)], table
        crm_names = {row[0] for row in await drifted.fetchall("SELECT crm_status FROM orders")}
        assert all(name.isupper() for name in crm_names)  # kept as the CRM wrote it, mapped for the bot
    finally:
        await drifted.close()


async def test_a_telegram_id_claimed_by_two_managers_is_kept_aside(tmp_path: Path) -> None:
    sim = BikeWerkSimulator(
        orders=0,
        managers=[
            {"id": "m-01", "name": "Anna Petrova", "telegram_id": 1001},
            {"id": "m-02", "name": "Max Weber", "telegram_id": 1001},
            {"id": "m-03", "name": "Olga Ivanova", "telegram_id": 1003},
        ],
    )
    url = await sim.start()
    db = await Database.open(tmp_path / "sync.db")
    try:
        async with BikeWerkClient(url) as client:
            clock = ManualClock(ANCHOR)
            report = await Syncer(db, client, POLICY, CALENDAR, clock).sync_once()
        assert report.ok and report.managers == 1 and report.violations == 2
        assert [tuple(r) for r in await db.fetchall("SELECT id, telegram_id FROM managers")] == [
            ("m-03", 1003)
        ]
        reasons = {r[0]: r[1] for r in await db.fetchall("SELECT record_id, reason FROM contract_violations")}
        assert reasons == {
            "m-01": "telegram_id 1001 also belongs to manager m-02",
            "m-02": "telegram_id 1001 also belongs to manager m-01",
        }
    finally:
        await db.close()
        await sim.stop()


async def test_an_interrupted_sync_resumes_after_the_last_stored_page(world: World) -> None:
    def outage_after_two_batches(progress: SyncProgress) -> None:
        if progress.stage == EVENTS_CURSOR and progress.pages >= 4:
            world.sim.set_faults(fail_next=100)

    world.client = BikeWerkClient(world.sim.url or "", sleep=no_sleep, retry=RetryPolicy(attempts=2))
    syncer = Syncer(
        world.db,
        world.client,
        POLICY,
        CALENDAR,
        world.clock,
        page_size=25,
        batch_records=50,
        progress=outage_after_two_batches,
    )
    stopped = await syncer.sync_once()
    assert not stopped.ok and "failed 2 times" in (stopped.error or "")
    stored = await world.value("SELECT count(*) FROM order_status_events")
    assert 0 < stored < 720 and stored % 25 == 0
    assert await world.value("SELECT value FROM sync_cursors WHERE name = ?", (EVENTS_CURSOR,)) == str(stored)
    assert await world.value("SELECT count(*) FROM orders") == 0

    world.sim.set_faults()
    resumed = await world.another_syncer(world.db).sync_once()
    await world.client.close()
    assert resumed.ok and resumed.events == 720 - stored and resumed.orders == 120
    assert await world.value("SELECT count(DISTINCT crm_event_id) FROM order_status_events") == 720
    assert await world.value("SELECT count(*) FROM order_status_events") == 720


async def test_main_py_sync_once_prints_its_progress_and_a_summary(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.db.close()  # `main.py sync` opens the database itself, and only one process may
    settings = load_settings(
        DATABASE_PATH=str(world.tmp_path / "cli.db"), BIKEWERK_API_URL=world.sim.url, TIMEZONE="Europe/Berlin"
    )
    assert await run_sync_command(settings, once=True) == 0
    out = capsys.readouterr().out
    assert "order_status_events:" in out and "records/s" in out
    assert "sync done" in out and "120 orders (120 new" in out and "720 new events" in out
    world.db = await Database.open(world.tmp_path / "sync.db")


def _ts(iso: str) -> str:
    return ts(datetime.fromisoformat(iso))
