"""A use-case world with the CRM in it: the order world's services (real SQLite, ManualClock) plus the
BikeWerk simulator over HTTP on the same clock, a client without real waits, and the sync between them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bikewerk.client import BikeWerkClient, RetryPolicy
from bikewerk.sync import Syncer, SyncReport
from bot.services import Services
from domain.policy import Policy
from testkit.clocks import ManualClock
from testkit.simulator import BikeWerkSimulator
from tests.support.order_world import clock_of, make_services


async def _no_wait(_: float) -> None:
    return None


@dataclass
class CrmWorld:
    services: Services
    simulator: BikeWerkSimulator
    url: str
    client: BikeWerkClient
    syncer: Syncer

    @property
    def clock(self) -> ManualClock:
        return clock_of(self.services)

    async def sync(self) -> SyncReport:
        return await self.syncer.sync_once()

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The simulator's control side over HTTP (`/sim/...`)."""
        async with aiohttp.ClientSession() as http, http.post(self.url + path, json=body) as r:
            assert r.status < 300, await r.text()
            data: dict[str, Any] = await r.json()
            return data


@asynccontextmanager
async def crm_world(
    tmp_path: Path, *, policy: Policy | None = None, **simulator: Any
) -> AsyncIterator[CrmWorld]:
    services = await make_services(tmp_path, policy=policy)
    sim = BikeWerkSimulator(**{"seed": 1, "orders": 0, "managers": 0, **simulator}, clock=services.clock)
    url = await sim.start()
    client = BikeWerkClient(
        url,
        retry=RetryPolicy(attempts=2, base_delay=0.01),
        sleep=_no_wait,
        timeout=2.0,
        clock=services.clock,
    )
    syncer = Syncer(
        services.db,
        client,
        services.policy,
        services.calendar,
        services.clock,
        settings=services.settings,
        wake_sender=services.wake_sender,
    )
    try:
        yield CrmWorld(services, sim, url, client, syncer)
    finally:
        await client.close()
        await sim.stop()
        await services.db.close()
