"""Reliability from the simulator's faults: latency makes the CRM slow (p95 above the policy's bound), an
outage makes it unreachable and the sync lag, malformed records make a burst of contract violations with a
sample; each is a signal to the admins that resolves itself when the condition clears, and the KPIs (p95,
incidents, MTTR, violations, critical-path health) are read back from what was stored."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from circles.reliability.health import check_health
from circles.reliability.kpi import reliability_kpis
from domain.policy import Policy
from domain.reliability import percentile
from tests.support.crm_world import CrmWorld, crm_world
from tests.support.order_world import ADMIN, rows


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0


async def _signals(world: CrmWorld, type_: str) -> list[dict[str, object]]:
    return await rows(world.services, "SELECT * FROM ai_signals WHERE type = ? ORDER BY id", type_)


async def test_a_slow_crm_raises_crm_slow_and_recovers(tmp_path: Path) -> None:
    shipped = Policy.default()
    bound = shipped.reliability.model_copy(update={"api_p95_bound_ms": 150})
    policy = shipped.model_copy(update={"reliability": bound})
    async with crm_world(tmp_path, policy=policy, orders=3) as world:
        start = world.clock.now()
        await world.post("/sim/faults", {"latency_ms": 250})
        assert (await world.sync()).ok
        health = await check_health(world.services, world.clock.now())
        assert "reliability.crm_slow" in health.raised and not health.checks["crm_api"]
        slow = (await _signals(world, "reliability.crm_slow"))[0]
        details = json.loads(str(slow["details"]))
        assert details["p95_ms"] >= 250 and details["bound_ms"] == 150
        assert ADMIN in json.loads(str(slow["ping_chats"]))

        await world.post("/sim/faults", {})
        world.clock.advance(timedelta(minutes=61))  # the slow hour is over
        assert (await world.sync()).ok
        health = await check_health(world.services, world.clock.now())
        assert health.resolved == ["reliability.crm_slow"] and health.healthy

        kpis = await reliability_kpis(
            world.services.db.conn, (start, world.clock.now() + timedelta(seconds=1))
        )
        assert kpis["api_p95_ms"] >= 250
        assert kpis["incident_count"] == 1 and 60 <= kpis["mttr_min"] <= 62
        assert kpis["critical_path_health"] == 0.875  # 1 of 8 component checks failed
        assert kpis["crm_orders_not_mirrored"] == 0


async def test_an_outage_makes_the_crm_unreachable_and_the_sync_lag(tmp_path: Path) -> None:
    async with crm_world(tmp_path, orders=3) as world:
        assert (await world.sync()).ok
        await world.post("/sim/faults", {"error_rate": 1.0})
        for _ in range(3):
            world.clock.advance(timedelta(minutes=6))
            assert not (await world.sync()).ok
        health = await check_health(world.services, world.clock.now())
        assert set(health.raised) >= {"reliability.crm_unreachable", "reliability.sync_lagging"}
        assert not health.checks["crm"] and not health.checks["sync"]
        unreachable = json.loads(str((await _signals(world, "reliability.crm_unreachable"))[0]["details"]))
        assert unreachable["failed_runs"] == 3 and "503" in unreachable["error"]
        lag = json.loads(str((await _signals(world, "reliability.sync_lagging"))[0]["details"]))
        assert lag["minutes_since_good_sync"] == 18

        await world.post("/sim/faults", {})
        assert (await world.sync()).ok
        health = await check_health(world.services, world.clock.now())
        assert set(health.resolved) == {"reliability.crm_unreachable", "reliability.sync_lagging"}


async def test_malformed_records_make_a_burst_of_violations_with_a_sample(tmp_path: Path) -> None:
    async with crm_world(tmp_path, orders=30) as world:
        start = world.clock.now()
        await world.post("/sim/faults", {"malformed_share": 1.0})
        await world.sync()
        health = await check_health(world.services, world.clock.now())
        assert "reliability.contract_violations" in health.raised
        burst = json.loads(str((await _signals(world, "reliability.contract_violations"))[0]["details"]))
        assert burst["records_last_hour"] >= 20 and burst["bound"] == 20
        assert len(burst["sample"]) == 3 and all(s["reason"] for s in burst["sample"])
        kpis = await reliability_kpis(
            world.services.db.conn, (start, world.clock.now() + timedelta(seconds=1))
        )
        assert kpis["data_contract_violations"] == burst["records_last_hour"]


async def test_malformed_leads_are_kept_aside_and_drifted_ones_read(tmp_path: Path) -> None:
    async with crm_world(tmp_path, orders=0, lead_days=2) as world:
        await world.post("/sim/faults", {"malformed_share": 0.2})
        report = await world.sync()
        kept = await rows(
            world.services, "SELECT record_id, reason FROM contract_violations WHERE source = 'leads'"
        )
        served_bad = set(world.simulator.stats.malformed["leads"])
        assert kept and {k["record_id"] for k in kept} == served_bad
        stored = await rows(world.services, "SELECT count(*) AS n FROM leads")
        assert stored[0]["n"] == report.leads > 0

        await world.post("/sim/faults", {"drift": True})
        world.clock.advance(timedelta(hours=30))  # every lead changed (lost or moved) since
        await world.sync()
        channels = await rows(world.services, "SELECT DISTINCT channel FROM leads ORDER BY channel")
        assert {c["channel"] for c in channels} <= {
            "website",
            "instagram",
            "telegram_ads",
            "referral",
            "marketplace",
        }
