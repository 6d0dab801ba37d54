"""`python main.py sync [--once]`: the sync on the command line, with a progress line and a summary."""

from __future__ import annotations

import asyncio
import logging
import time

from bikewerk.client import BikeWerkClient
from bikewerk.sync import Syncer, SyncProgress, SyncReport
from bot.clock import SystemClock
from bot.config import Settings
from domain.policy import calendar_for, load_policy
from storage.db import Database

log = logging.getLogger(__name__)


class TerminalProgress:
    """Prints the sync's progress: at most one line every `every` seconds, and each stage's last."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self._last = 0.0

    def __call__(self, p: SyncProgress) -> None:
        now = time.monotonic()
        if now - self._last < self.every and not p.done:
            return
        self._last = now
        rate = p.records / p.seconds if p.seconds > 0 else 0.0
        print(f"  {p.stage}: {p.pages} pages, {p.records} records, {rate:,.0f} records/s", flush=True)


def summary(report: SyncReport) -> str:
    seconds = (report.finished_at - report.started_at).total_seconds() if report.finished_at else 0.0
    text = (
        f"{report.managers} managers, {report.orders} orders ({len(report.new_order_ids)} new, "
        f"{len(report.changed_order_ids)} changed status), {report.events} new events, "
        f"{report.violations} records kept aside, {report.pages} pages"
    )
    if report.ok:
        return f"sync done in {seconds:.1f} s: {text}"
    return f"sync stopped after {seconds:.1f} s: {report.error}; stored so far: {text}"


async def run_sync_command(settings: Settings, *, once: bool) -> int:
    """`main.py sync [--once]`: one run, or a run every SYNC_INTERVAL_SECONDS until interrupted.
    Exit code 0 when the (last) run completed, 1 when it stopped on an error."""
    policy = load_policy(settings.policy_file)
    calendar = calendar_for(policy, settings.timezone)
    db = await Database.open(settings.database_path)
    try:
        token = settings.bikewerk_api_token.get_secret_value()
        async with BikeWerkClient(settings.bikewerk_api_url, token) as client:
            syncer = Syncer(
                db, client, policy, calendar, SystemClock(), settings=settings, progress=TerminalProgress()
            )
            while True:
                print(f"syncing from {settings.bikewerk_api_url} into {settings.database_path}", flush=True)
                report = await syncer.sync_once()
                print(summary(report), flush=True)
                if once:
                    return 0 if report.ok else 1
                await asyncio.sleep(settings.sync_interval_seconds)
    finally:
        await db.close()
