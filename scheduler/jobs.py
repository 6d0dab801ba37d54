"""The scheduled jobs of the bot process (APScheduler 3, in the bot's event loop).

A job is a thin wrapper: it calls the same use case the tests call, with `services`, and keeps nothing in
memory that must survive: what is due, sent or breached lives in SQLite, so a missed or skipped run loses
nothing. Add a job with one `add(...)` line in `register_jobs` (explicit id, a trigger in the configured time
zone); the defaults below apply to every job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from backbone import decisions, sweep
from bikewerk.client import BikeWerkClient
from bikewerk.contract import PushEvent
from bikewerk.push import PushReceiver
from bikewerk.sync import Syncer, SyncReport
from bot.config import Settings
from bot.logs import log_event
from bot.services import Services
from circles import watch
from circles.governance import drift
from circles.reliability import health
from circles.revenue import bands
from circles.sales_ops import digests, dispatcher, kpi, orders, sla
from circles.strategy import daily as strategy
from storage.backup import dated_backup

log = logging.getLogger(__name__)

JOB_DEFAULTS: dict[str, Any] = {
    # A run that starts late (a busy loop, a suspended laptop) still runs within five minutes; older ones are
    # dropped, and coalesce folds a backlog into one run.
    "misfire_grace_time": 300,
    "coalesce": True,
    "max_instances": 1,
}


def make_scheduler(settings: Settings) -> AsyncIOScheduler:
    # APScheduler writes two INFO lines per job run (about 14,000 a day); its warnings and errors still show
    # (a missed run, a job that raised), and each job logs what it did that matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return AsyncIOScheduler(timezone=settings.tz, job_defaults=dict(JOB_DEFAULTS))


def register_jobs(
    scheduler: AsyncIOScheduler, services: Services, bikewerk: BikeWerkClient, *, syncer: Syncer | None = None
) -> None:
    """Every job of the process, registered with fixed ids (a restart replaces, never duplicates). `syncer`:
    the process's Syncer when the CRM's pushes share it (one is made otherwise)."""
    settings = services.settings
    tz = settings.tz

    def add(
        job_id: str, func: Callable[..., Awaitable[Any]], trigger: BaseTrigger, *args: Any, **options: Any
    ) -> None:
        scheduler.add_job(func, trigger, args=args, id=job_id, name=job_id, replace_existing=True, **options)

    # The first sync runs at start-up (a fresh process knows its managers at once), then every period: the
    # safety net behind the CRM's pushes.
    add(
        "bikewerk.sync",
        sync_bikewerk,
        IntervalTrigger(seconds=settings.sync_interval_seconds, timezone=tz),
        syncer or make_syncer(services, bikewerk),
        services,
        next_run_time=datetime.now(tz),
    )
    # KPIs and digests: the snapshot, the owner's and the leads' digests at DIGEST_TIME, the retro on Monday.
    hour, minute = map(int, settings.digest_time.split(":"))
    add("kpi.daily", kpi_daily, CronTrigger(hour=hour, minute=minute, timezone=tz), services)
    add("digest.owner", owner_digest, CronTrigger(hour=hour, minute=minute, timezone=tz), services)
    add("digest.leads", leads_digest, CronTrigger(hour=hour, minute=minute, timezone=tz), services)
    weekly = CronTrigger(day_of_week="mon", hour=hour, minute=minute, timezone=tz)
    add("digest.retro", weekly_retro, weekly, services)
    # The SLA watchdog, the signal escalation sweep and the decisions' observed effects, every minute.
    every_minute = IntervalTrigger(minutes=1, timezone=tz)
    add("sla.sweep", sla_sweep, every_minute, services)
    add("signals.sweep", signal_sweep, every_minute, services)
    add("decisions.effects", effect_sweep, every_minute, services)
    add("dispatch.tick", dispatch_tick, every_minute, services)
    # The nightly backup: dated copies of the database and the artifacts (BACKUP_DIR, BACKUP_KEEP).
    if settings.backup_keep > 0:
        add("backup.nightly", nightly_backup, CronTrigger(hour=3, minute=30, timezone=tz), services)
    add("circles.watch", circles_watch, every_minute, services)
    add("governance.drift", governance_drift, every_minute, services)
    add("reliability.health", reliability_health, every_minute, services)
    # The revenue funnel's bands: yesterday judged once a day, an hour before the digests.
    add(
        "revenue.funnel",
        revenue_funnel,
        CronTrigger(hour=(hour - 1) % 24, minute=minute, timezone=tz),
        services,
    )
    # The AI-CEO's day (the autopilot's review, then the summary to the owner), just after the digests.
    add(
        "strategy.daily",
        strategy_daily,
        CronTrigger(hour=hour, minute=minute, second=30, timezone=tz),
        services,
    )
    # More jobs go here, one `add(...)` each.


def make_syncer(services: Services, client: BikeWerkClient) -> Syncer:
    """The process's one Syncer: the periodic sync and the pushes share it (and its lock)."""
    return Syncer(
        services.db,
        client,
        services.policy,
        services.calendar,
        services.clock,
        settings=services.settings,
        wake_sender=services.wake_sender,
    )


async def after_sync(services: Services, report: SyncReport) -> None:
    """New orders are offered at once and cards follow what the CRM changed, not a dispatch minute later."""
    if report.new_order_ids:
        await dispatcher.dispatch_pending(services)
    if report.changed_order_ids:
        await orders.refresh_cards(services, report.changed_order_ids)


def make_push_receiver(syncer: Syncer, services: Services) -> PushReceiver | None:
    """The receiver of the CRM's pushes, when BIKEWERK_WEBHOOK_SECRET is set (None otherwise)."""
    secret = services.settings.bikewerk_webhook_secret
    if secret is None or not secret.get_secret_value():
        return None

    async def apply(event: PushEvent) -> None:
        await apply_push(syncer, services, event)

    async def keep_aside(record_id: str | None, reason: str, raw: str) -> None:
        await syncer.keep_aside("crm_events", record_id, reason, raw)

    return PushReceiver(secret.get_secret_value(), apply, keep_aside)


async def apply_push(syncer: Syncer, services: Services, event: PushEvent) -> None:
    """One CRM push: read that order now (a lead: an incremental sync run now), then react as after a sync."""
    if event.type == "lead.updated":
        report = await syncer.sync_once()
    else:
        report = await syncer.sync_order(event.id)
    await after_sync(services, report)


async def sync_bikewerk(syncer: Syncer, services: Services) -> None:
    report = await syncer.sync_once()
    await after_sync(services, report)
    # sync.finished / sync.failed said what the run did; this line is for debugging only.
    log_event(
        log,
        "job.sync",
        logging.DEBUG,
        orders=report.orders,
        events=report.events,
        new_orders=len(report.new_order_ids),
        violations=report.violations,
        error=report.error,
    )


async def kpi_daily(services: Services) -> None:
    await kpi.run_daily(services, services.clock.now())


async def owner_digest(services: Services) -> None:
    await digests.send_owner_digest(services, services.clock.now())


async def leads_digest(services: Services) -> None:
    await digests.send_leads_digest(services, services.clock.now())


async def weekly_retro(services: Services) -> None:
    await digests.send_weekly_retro(services, services.clock.now())


async def sla_sweep(services: Services) -> None:
    await sla.sweep(services, services.clock.now())


async def signal_sweep(services: Services) -> None:
    await sweep.sweep_signals(services, services.clock.now())


async def effect_sweep(services: Services) -> None:
    await decisions.sweep_effects(services, services.clock.now())


async def circles_watch(services: Services) -> None:
    await watch.run(services, services.clock.now())


async def dispatch_tick(services: Services) -> None:
    await dispatcher.dispatch_tick(services)


async def nightly_backup(services: Services) -> None:
    settings = services.settings
    folder = await asyncio.to_thread(
        dated_backup,
        settings.database_path,
        settings.artifacts_dir,
        settings.backup_dir,
        keep=settings.backup_keep,
        now=services.clock.now(),
    )
    log_event(log, "backup.done", folder=str(folder))


async def governance_drift(services: Services) -> None:
    await drift.detect_drift(services, services.clock.now())


async def reliability_health(services: Services) -> None:
    await health.check_health(services, services.clock.now())


async def revenue_funnel(services: Services) -> None:
    await bands.watch_funnel(services, services.clock.now())


async def strategy_daily(services: Services) -> None:
    await strategy.run_daily(services, services.clock.now())
