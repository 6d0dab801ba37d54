"""What a finished sync run tells the signals (issue 12): a source that went through without rejected records
clears its `sync.contract_violation`; a run that could not reach the CRM starts (or continues) an outage, and
an outage longer than the policy's `[crisis] crm_unreachable_minutes` raises the critical
`crisis.crm_unreachable`, which the next successful run clears.

The backbone (and with it the signal texts and aiogram, ~120 MB) is imported only when there is a signal to
raise or to clear, so a sync-only process stays small (see bikewerk/sync.py)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import aiosqlite

from bot.config import Settings
from domain.crisis import CrisisPolicy, crm_unreachable
from domain.signals import ClearWhen
from storage import crm
from storage.signals import live_dedup_keys

FAILING_SINCE = "health.sync_failing_since"  # a sync_cursors row: when the current outage began ("" none)
SOURCES = ("managers", "order_status_events", "orders", "leads", "workspace")
OUTAGE_KEY = "crisis.crm_unreachable"


async def record_sync_run(
    conn: aiosqlite.Connection,
    *,
    reached_crm: bool,
    clean_sources: Collection[str],
    now: datetime,
    settings: Settings | None,
    crisis: CrisisPolicy,
) -> None:
    """Inside one transaction after a run: clear what the run proved fixed, or track the outage."""
    since_text = await crm.get_cursor(conn, FAILING_SINCE)
    if not reached_crm:
        since = datetime.fromisoformat(since_text) if since_text else now
        if not since_text:
            await crm.set_cursor(conn, FAILING_SINCE, now.isoformat(), now)
        if crm_unreachable(crisis, since, now):
            from backbone.crisis import raise_crisis  # only when there is a crisis to raise

            await raise_crisis(
                conn,
                kind=OUTAGE_KEY,
                dedup_key=OUTAGE_KEY,
                now=now,
                settings=settings,
                crisis=crisis,
                facts={"failing_since": since.isoformat()},
            )
        return
    if since_text:
        await crm.set_cursor(conn, FAILING_SINCE, "", now)
    keys = [OUTAGE_KEY, *(f"sync.contract_violation:{source}" for source in clean_sources)]
    live = await live_dedup_keys(conn, keys)
    if not live:
        return
    from backbone.clearing import clear_by_dedup  # only when a signal is to be cleared

    for key in (k for k in keys if k in live):
        facts = {"source": key.rpartition(":")[2]} if key != OUTAGE_KEY else {}
        await clear_by_dedup(conn, key, ClearWhen.NEXT_RUN_OK, now, settings, crisis, **facts)
