"""The reliability circle's watch (AI-CTO/SRE): a health check of the critical path, stored (health_checks),
and the signals it raises or resolves: the CRM unreachable or slow, the sync lagging, the sender's backlog,
a burst of contract violations (with a sample of what was refused).

`check_health(services, now)` is the job (every minute) and the data of `/health`. The components checked:
`crm` (the last sync run reached the CRM), `sync` (a successful sync within the policy's lag), `sender`
(the Telegram queue under its bound), `crm_api` (p95 over the last hour under its bound). A condition that
clears resolves its live signal ("recovered"), so incidents get their time to resolve (MTTR).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from backbone.signals import Routing, raise_signal, resolve_signal
from bot.logs import log_event
from bot.services import Services
from circles.reliability.kpi import reliability_kpis
from domain.reliability import Finding, Observed, findings, percentile
from storage import reliability as store
from storage import signals as signal_store

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
REPEAT_EVERY = timedelta(minutes=15)  # a condition still firing refreshes its signal at most this often
_COMPONENT = {
    "reliability.crm_unreachable": "crm",
    "reliability.sync_lagging": "sync",
    "reliability.sender_backlog": "sender",
    "reliability.crm_slow": "crm_api",
}


@dataclass(frozen=True)
class Health:
    at: datetime
    checks: dict[str, bool]  # component -> passed
    findings: list[Finding]
    raised: list[str]  # signal types raised (or repeated) now
    resolved: list[str]  # signal types resolved now

    @property
    def healthy(self) -> bool:
        return all(self.checks.values())


async def observe(conn: aiosqlite.Connection, services: Services, now: datetime) -> Observed:
    policy = services.policy.reliability
    runs = await store.recent_runs(conn, max(policy.unreachable_failures, 1))
    timed = await store.latencies(conn, now - HOUR, now + timedelta(microseconds=1))
    count, sample = await store.violations(conn, now - HOUR, now + timedelta(microseconds=1))
    return Observed(
        now=now,
        recent_runs_ok=[r.ok for r in runs],
        last_good_sync=await store.last_good_sync(conn),
        p95_ms_last_hour=percentile([ms for ms, _ in timed], 0.95),
        requests_last_hour=len(timed),
        sender_backlog=await store.sender_backlog(conn, now),
        violations_last_hour=count,
        violation_sample=[
            {"source": v.source, "record": v.record_id or "-", "reason": v.reason[:200]} for v in sample
        ],
        last_error=runs[0].error if runs and not runs[0].ok else None,
    )


async def check_health(services: Services, now: datetime) -> Health:
    settings = services.settings
    admins = [settings.admin_chat_id] if settings.admin_chat_id is not None else list(settings.admin_ids)
    routing = Routing.from_settings(settings)
    raised: list[str] = []
    resolved: list[str] = []
    async with services.db.transaction() as conn:
        seen = await observe(conn, services, now)
        found = findings(seen, services.policy.reliability)
        checks = {component: True for component in _COMPONENT.values()}
        for finding in found:
            component = _COMPONENT.get(finding.type)
            if component is not None:
                checks[component] = not finding.firing
        await store.add_health_checks(
            conn, now, [(component, ok, "") for component, ok in sorted(checks.items())]
        )
        for finding in found:
            key = finding.type
            live = await signal_store.live_signal_by_dedup(conn, key)
            if finding.firing and live is not None and now - live.last_seen_at < REPEAT_EVERY:
                raised.append(finding.type)  # still firing; its ping was refreshed a moment ago
            elif finding.firing:
                await raise_signal(
                    conn,
                    type=finding.type,
                    dedup_key=key,
                    now=now,
                    details=finding.details,
                    raised_by="reliability",
                    settings=settings,
                    notify=admins,
                )
                raised.append(finding.type)
            elif live is not None:
                await resolve_signal(conn, live, routing, now, by=None, resolution="recovered")
                resolved.append(finding.type)
    if raised or resolved:
        services.wake_sender()
        log_event(log, "reliability.check", logging.WARNING if raised else logging.INFO, raised=raised)
    return Health(now, checks, found, raised, resolved)


@dataclass(frozen=True)
class HealthReport:
    """`/health` for the admins: the conditions now and the circle's KPIs over the last 24 hours."""

    at: datetime
    findings: list[Finding]
    kpis: dict[str, Any]
    outbox_backlog: int
    last_good_sync: datetime | None


async def health_report(services: Services, now: datetime) -> HealthReport:
    conn = services.db.reader
    seen = await observe(conn, services, now)
    return HealthReport(
        at=now,
        findings=findings(seen, services.policy.reliability),
        kpis=await reliability_kpis(conn, (now - timedelta(hours=24), now + timedelta(microseconds=1))),
        outbox_backlog=await store.outbox_backlog(conn),
        last_good_sync=seen.last_good_sync,
    )
