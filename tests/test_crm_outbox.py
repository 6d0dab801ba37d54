"""Writes back to the CRM through the outbox, against the simulator over real HTTP: delivered in order under
their Idempotency-Key, retried with backoff through an outage or a lost answer and applied exactly once; a
refused write kept aside with a signal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bikewerk.client import BikeWerkClient, RetryPolicy
from bikewerk.outbox import CrmOutboxWorker, enqueue_crm_write
from storage import crm
from storage.db import Database
from testkit.clocks import ManualClock
from testkit.simulator import BikeWerkSimulator

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def no_sleep(seconds: float) -> None:
    """The client's own quick retries wait for nothing in tests."""


@dataclass
class World:
    sim: BikeWerkSimulator
    db: Database
    clock: ManualClock
    client: BikeWerkClient
    worker: CrmOutboxWorker

    async def enqueue(self, kind: Any, order_id: str, payload: dict[str, Any], key: str) -> None:
        async with self.db.transaction() as conn:
            await enqueue_crm_write(
                conn, kind=kind, order_id=order_id, payload=payload, idempotency_key=key, now=self.clock.now()
            )

    async def rows(self) -> list[crm.OutboxRow]:
        return await crm.outbox_rows(self.db.conn)

    def applied(self) -> dict[str, int]:
        """How many times the CRM applied each idempotency key."""
        counts: dict[str, int] = {}
        for write in self.sim.writes:
            counts[write["idempotency_key"]] = counts.get(write["idempotency_key"], 0) + int(write["applied"])
        return counts


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(NOW)
    sim = BikeWerkSimulator(seed=5, orders=0, clock=clock)
    url = await sim.start()
    db = await Database.open(tmp_path / "outbox.db")
    client = BikeWerkClient(url, sleep=no_sleep, retry=RetryPolicy(attempts=2), timeout=2.0)
    yield World(sim, db, clock, client, CrmOutboxWorker(db, client, clock))
    await client.close()
    await db.close()
    await sim.stop()


def status(to: str, at: datetime = NOW) -> dict[str, Any]:
    return {"status": to, "actor": "m-01", "at": at}


async def test_a_write_off_the_contract_is_refused_and_a_key_is_queued_once(world: World) -> None:
    with pytest.raises(ValueError, match="manager_id"):
        await world.enqueue("assign", "BW-000001", {"manager": "m-01"}, "a-1")
    with pytest.raises(ValueError, match="on_hold"):
        await world.enqueue("status", "BW-000001", status("on_hold"), "s-1")
    with pytest.raises(ValueError, match="unknown CRM write"):
        await world.enqueue("delete", "BW-000001", {}, "d-1")
    assert await world.rows() == []
    await world.enqueue("status", "BW-000001", status("accepted"), "s-2")
    await world.enqueue("status", "BW-000001", status("accepted"), "s-2")
    assert [r.idempotency_key for r in await world.rows()] == ["s-2"]


async def test_writes_reach_the_crm_in_order_and_are_acknowledged(world: World) -> None:
    first, second = world.sim.create_order()["id"], world.sim.create_order()["id"]
    await world.enqueue("assign", first, {"manager_id": "m-02"}, "assign:1")
    await world.enqueue("status", first, status("accepted"), "status:1")
    await world.enqueue("assign", second, {"manager_id": "m-03"}, "assign:2")

    assert await world.worker.flush() == 3
    keys = [w["idempotency_key"] for w in world.sim.writes]
    assert sorted(keys) == ["assign:1", "assign:2", "status:1"]
    assert keys.index("assign:1") < keys.index("status:1")  # one order's writes keep their order
    sent = next(w["payload"] for w in world.sim.writes if w["idempotency_key"] == "status:1")
    assert sent == {"status": "accepted", "actor": "m-01", "at": "2026-11-23T09:00:00Z"}
    assert world.sim.order(first)["status"] == "accepted" and world.sim.order(first)["manager_id"] == "m-02"
    assert world.sim.order(second)["manager_id"] == "m-03"
    assert all(r.acked_at == NOW and r.attempts == 1 for r in await world.rows())
    assert await world.worker.flush() == 0 and len(world.sim.writes) == 3  # nothing left to send


async def test_an_outage_is_retried_with_growing_backoff_and_each_write_applied_once(world: World) -> None:
    order = world.sim.create_order()["id"]
    await world.enqueue("assign", order, {"manager_id": "m-02"}, "assign:1")
    await world.enqueue("status", order, status("accepted"), "status:1")
    world.sim.set_faults(error_rate=1.0)

    waits = []
    for _ in range(3):
        assert await world.worker.flush() == 0
        first, later = await world.rows()
        assert later.attempts == 0  # the order's next write waits behind the first
        waits.append(first.next_attempt_at - world.clock.now())
        assert "503" in (first.last_error or "")
        assert await world.worker.flush() == 0  # not due again yet: nothing is sent
        world.clock.set(first.next_attempt_at)
    assert timedelta(seconds=15) <= waits[0] <= timedelta(seconds=30)
    assert timedelta(seconds=30) <= waits[1] <= timedelta(seconds=60)
    assert timedelta(seconds=60) <= waits[2] <= timedelta(seconds=120)
    assert world.sim.writes == []  # the CRM saw none of it

    world.sim.set_faults()
    assert await world.worker.flush() == 2
    assert world.applied() == {"assign:1": 1, "status:1": 1}
    assert world.sim.order(order)["status"] == "accepted"


async def test_a_lost_answer_is_retried_under_the_same_key_and_applied_once(world: World) -> None:
    order = world.sim.create_order()["id"]
    await world.enqueue("status", order, status("accepted"), "status:7")
    world.sim.set_faults(timeout_next=1, timeout_ms=60_000)  # far beyond the client's 2 s: one lost answer

    assert await world.worker.flush() == 1
    assert [(w["applied"], w["replayed"]) for w in world.sim.writes] == [(True, False), (False, True)]
    assert world.applied() == {"status:7": 1}
    events = world.sim.event_count
    assert world.sim.order(order)["status"] == "accepted" and events == 2  # created, accepted: once


async def test_a_refused_write_is_kept_aside_with_a_signal_and_no_longer_holds_the_orders_next(
    world: World,
) -> None:
    order = world.sim.create_order()["id"]
    await world.enqueue("assign", order, {"manager_id": "m-99"}, "assign:9")
    await world.enqueue("status", order, status("accepted"), "status:9")

    assert await world.worker.flush() == 0
    refused, waiting = await world.rows()
    assert refused.refused_at == NOW and refused.next_attempt_at == NOW + timedelta(hours=6)
    assert "422" in (refused.last_error or "") and "unknown manager" in (refused.last_error or "")
    violations = await crm.list_violations(world.db.conn, "crm_writes")
    assert [(v.record_id, v.raw) for v in violations] == [(order, '{"manager_id": "m-99"}')]
    signal = await world.db.fetchone("SELECT type, order_id, details FROM ai_signals")
    assert signal is not None and (signal["type"], signal["order_id"]) == ("sync.contract_violation", order)

    assert await world.worker.flush() == 1  # the status write goes on without it
    assert world.sim.order(order)["status"] == "accepted" and waiting.acked_at is None

    # Once the CRM knows the manager, the refused write passes on its slow retry.
    world.sim.upsert_manager({"id": "m-99", "name": "Late Arrival", "telegram_id": 1099})
    world.clock.advance(timedelta(hours=6))
    assert await world.worker.flush() == 1
    assert world.sim.order(order)["manager_id"] == "m-99"
    assert world.applied() == {"assign:9": 1, "status:9": 1}
    assert len(await crm.list_violations(world.db.conn, "crm_writes")) == 1  # kept aside once


async def test_the_worker_runs_until_stopped_and_sends_at_once_when_woken(world: World) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(world.worker.run(stop, poll_seconds=60))
    order = world.sim.create_order()["id"]
    await world.enqueue("assign", order, {"manager_id": "m-04"}, "assign:4")
    world.worker.wake()
    async with asyncio.timeout(30):
        while world.applied() != {"assign:4": 1}:  # noqa: ASYNC110 - the worker runs in the meantime
            await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(30):
        await task
    assert (await world.rows())[0].acked_at == NOW
