"""The reliability circle's KPIs (SPEC §14; definitions in docs/kpi.md) over a window [start, end).

`reliability_kpis(conn, (start, end))` reads the stored latency records, sync runs, health checks, contract
violations, signals and the last workspace snapshot; a ratio, a percentile or a mean over an empty window is
None, never 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from domain.reliability import percentile
from domain.signals import Circle
from storage import reliability as store

Window = tuple[datetime, datetime]


async def reliability_kpis(conn: aiosqlite.Connection, window: Window) -> dict[str, Any]:
    start, end = window
    timed = await store.latencies(conn, start, end)
    p95 = percentile([ms for ms, _ in timed], 0.95)
    incidents, minutes = await store.incidents(conn, str(Circle.PLATFORM), start, end)
    violations, _ = await store.violations(conn, start, end, sample=0)
    checks, passed = await store.health_share(conn, start, end)
    workspace = await store.last_workspace(conn)
    crm_total = workspace[1].get("orders_total") if workspace else None
    gap = None
    if isinstance(crm_total, int):
        gap = abs(crm_total - await store.order_count(conn))
    return {
        "api_p95_ms": None if p95 is None else round(p95, 1),
        "api_requests": len(timed),
        "api_error_rate": None if not timed else round(sum(1 for _, ok in timed if not ok) / len(timed), 4),
        "incident_count": incidents,
        "mttr_min": None if not minutes else round(sum(minutes) / len(minutes), 1),
        "data_contract_violations": violations,
        "critical_path_health": None if checks == 0 else round(passed / checks, 4),
        "crm_orders_not_mirrored": gap,  # |orders the CRM's workspace counts - orders stored here|
    }
