"""The governance circle's KPIs (SPEC §14; definitions in docs/kpi.md) over a window [start, end).

`governance_kpis(conn, (start, end))` reads through any connection (the read-only one of `kpi --json` too)
and returns plain JSON values; a ratio or a mean over an empty window is None, never 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from domain.governance import lead_time_days
from storage import governance as store

Window = tuple[datetime, datetime]


async def governance_kpis(conn: aiosqlite.Connection, window: Window) -> dict[str, Any]:
    start, end = window
    listed = await store.list_in_force(conn)
    version = listed.version if listed else None
    created, screened = await store.screening_coverage(conn, start, end, version)
    imports = await store.list_imports(conn, start, end)
    return {
        "compliance_risk_count": await store.open_compliance_signals(conn),
        "sanctions_screen_coverage": None if created == 0 else round(screened / created, 4),
        "sanctions_list_version": version,
        "sanctions_holds_live": len(await store.live_holds(conn)),
        "doc_to_process_drift_count": await store.drift_count(conn, start, end),
        "policy_update_lead_time_days": lead_time_days(imports),
    }
