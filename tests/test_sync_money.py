"""The sync of SPEC §14's order fields: channel, countries, compensations, disputes and payments are stored
as the CRM lists them (replaced on each change), and a broken entry keeps its order aside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bikewerk.client import BikeWerkClient
from bikewerk.sync import Syncer
from domain.policy import Policy, calendar_for
from storage.db import Database
from testkit.clocks import ManualClock
from testkit.simulator import BikeWerkSimulator

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[BikeWerkSimulator]:
    simulator = BikeWerkSimulator(seed=1, orders=200, anchor=NOW, clock=ManualClock(NOW))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def _sync(db: Database, url: str) -> None:
    policy = Policy.default()
    async with BikeWerkClient(url) as client:
        report = await Syncer(
            db, client, policy, calendar_for(policy, "Europe/Berlin"), ManualClock(NOW)
        ).sync_once()
    assert report.ok


async def test_the_lists_are_stored_and_replaced_and_a_broken_entry_is_kept_aside(
    sim: BikeWerkSimulator, tmp_path: Path
) -> None:
    db = await Database.open(tmp_path / "bot.db")
    try:
        await _sync(db, sim.url or "")
        counts = {
            table: (await db.fetchall(f"SELECT COUNT(*) FROM {table}"))[0][0]
            for table in ("order_compensations", "order_disputes", "order_payments")
        }
        assert (
            counts["order_payments"] > 100
            and counts["order_compensations"] > 0
            and counts["order_disputes"] > 0
        )
        channels = {r[0] for r in await db.fetchall("SELECT DISTINCT channel FROM orders")}
        assert {"website", "instagram"} <= channels
        assert (await db.fetchall("SELECT COUNT(*) FROM orders WHERE client_country IS NULL"))[0][0] == 0

        delivered = next(o for o in sim.order_ids() if sim.order(o)["status"] == "delivered")
        at = NOW.isoformat()
        sim.add_money(delivered, compensations=[{"id": "late", "amount_eur": 75, "reason": "late", "at": at}])
        broken = next(o for o in sim.order_ids() if o != delivered and sim.order(o)["status"] == "delivered")
        sim.add_money(broken, payments=[{"id": "x", "amount_eur": 10, "kind": "gift", "at": at}])
        await _sync(db, sim.url or "")

        rows = await db.fetchall(
            "SELECT id, amount_eur FROM order_compensations WHERE order_id = ?", (delivered,)
        )
        assert ("late", 75.0) in [tuple(r) for r in rows]
        (violation,) = await db.fetchall("SELECT record_id, reason FROM contract_violations")
        assert violation["record_id"] == broken and "payments.1.kind" in violation["reason"]
    finally:
        await db.close()
