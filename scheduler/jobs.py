"""The scheduled jobs of the bot process (APScheduler 3, in the bot's event loop).

A job is a thin wrapper: it calls the same use case the tests call, with `services`, and keeps nothing in
memory that must survive: what is due, sent or breached lives in SQLite, so a missed or skipped run loses
nothing. Add a job with one `add(...)` line in `register_jobs` (explicit id, a trigger in the configured time
zone); the defaults below apply to every job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from backbone import decisions, sweep
from bikewerk.client import BikeWerkClient
from bikewerk.sync import Syncer
from bot.config import Settings
from bot.logs import log_event
from bot.services import Services
from circles.governance import drift
from circles.reliability import health
from circles.revenue import bands
from circles.sales_ops import digests, dispatcher, kpi, orders, sla

log = logging.getLogger(__name__)

JOB_DEFAULTS: dict[str, Any] = {
    # A run that starts late (a busy loop, a suspended laptop) still runs within five minutes; older ones are
    # dropped, and coalesce folds a backlog into one run.
    "misfire_grace_time": 300,
    "coalesce": True,
    "max_instances": 1,
}


def make_scheduler(settings: Settings) -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=settings.tz, job_defaults=dict(JOB_DEFAULTS))


def register_jobs(scheduler: AsyncIOScheduler, services: Services, bikewerk: BikeWerkClient) -> None:
    """Every job of the process, registered with fixed ids (a restart replaces, never duplicates)."""
    settings = services.settings
    tz = settings.tz

    def add(job_id: str, func: Callable[..., Awaitable[Any]], trigger: BaseTrigger, *args: Any) -> None:
        scheduler.add_job(func, trigger, args=args, id=job_id, name=job_id, replace_existing=True)

    syncer = Syncer(
        services.db,
        bikewerk,
        services.policy,
        services.calendar,
        services.clock,
        settings=settings,
        wake_sender=services.wake_sender,
    )
    add(
        "bikewerk.sync",
        sync_bikewerk,
        IntervalTrigger(seconds=settings.sync_interval_seconds, timezone=tz),
        syncer,
        services,
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
    add("governance.drift", governance_drift, every_minute, services)
    add("reliability.health", reliability_health, every_minute, services)
    # The revenue funnel's bands: yesterday judged once a day, an hour before the digests.
    add(
        "revenue.funnel",
        revenue_funnel,
        CronTrigger(hour=(hour - 1) % 24, minute=minute, timezone=tz),
        services,
    )
    # More jobs go here, one `add(...)` each.


async def sync_bikewerk(syncer: Syncer, services: Services) -> None:
    report = await syncer.sync_once()
    # New orders are offered at once and cards follow what the CRM changed, not a dispatch minute later.
    if report.new_order_ids:
        await dispatcher.dispatch_pending(services)
    if report.changed_order_ids:
        await orders.refresh_cards(services, report.changed_order_ids)
    log_event(
        log,
        "job.sync",
        logging.INFO if report.ok else logging.WARNING,
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


async def dispatch_tick(services: Services) -> None:
    await dispatcher.dispatch_tick(services)


async def governance_drift(services: Services) -> None:
    await drift.detect_drift(services, services.clock.now())


async def reliability_health(services: Services) -> None:
    await health.check_health(services, services.clock.now())


async def revenue_funnel(services: Services) -> None:
    await bands.watch_funnel(services, services.clock.now())
