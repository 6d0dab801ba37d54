"""The bot's Prometheus metrics (`GET /metrics`, SPEC §13), in a registry of their own per BotApp (never the
global one), so tests and benchmarks can run several apps in one process.

Three kinds of figures: counters the process moves as things happen (updates handled and their latency, job
runs and failures), live figures read from the running parts at scrape time (`Live`: messages sent, failed
and 429s; the last sync), and counts read from the store before each scrape (`storage.health.store_counts`:
messages queued, CRM outbox pending and refused, records kept aside, open signals by severity and circle).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.db import Database
from storage.health import StoreCounts, store_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "bikewerk_bot"


@dataclass(frozen=True)
class Live:
    """What the running parts know at scrape time."""

    messages_sent: int = 0  # message versions delivered since start
    messages_failed: int = 0  # attempts that failed (retried later or given up)
    retry_afters: int = 0  # 429 answers (RetryAfter) from the Bot API
    sync_duration_seconds: float | None = None  # the last full sync run
    sync_lag_seconds: float | None = None  # since the last successful sync ended
    sync_failures: int = 0  # sync runs that stopped early


class BotMetrics:
    def __init__(self, live: Callable[[], Live] = Live) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.live = live
        self.counts = StoreCounts()
        self.updates = Counter(
            f"{PREFIX}_updates_handled", "Telegram updates handled", ["outcome"], registry=self.registry
        )
        self.update_seconds = Histogram(
            f"{PREFIX}_update_seconds",
            "Time to handle one Telegram update",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.job_runs = Counter(f"{PREFIX}_job_runs", "Scheduled job runs", ["job"], registry=self.registry)
        self.job_failures = Counter(
            f"{PREFIX}_job_failures", "Scheduled job runs that raised", ["job"], registry=self.registry
        )
        self.registry.register(_Figures(self))
        self.middleware = _UpdateTimer(self)

    def watch_jobs(self, scheduler: BaseScheduler) -> None:
        """Count every run and failure of the scheduler's jobs."""
        scheduler.add_listener(self._job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _job_event(self, event: JobExecutionEvent) -> None:
        self.job_runs.labels(job=event.job_id).inc()
        if event.exception is not None:
            self.job_failures.labels(job=event.job_id).inc()

    async def render(self, db: Database) -> bytes:
        """The text exposition, with the store's counts read now."""
        self.counts = await store_counts(db)
        return generate_latest(self.registry)


class _UpdateTimer(BaseMiddleware):
    def __init__(self, metrics: BotMetrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await handler(event, data)
            outcome = "ok"
            return result
        finally:
            self._metrics.updates.labels(outcome=outcome).inc()
            self._metrics.update_seconds.observe(time.perf_counter() - started)


class _Figures(Collector):
    def __init__(self, metrics: BotMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        live, counts = self._metrics.live(), self._metrics.counts
        yield GaugeMetricFamily(
            f"{PREFIX}_messages_queued", "Messages waiting to be sent", counts.messages_queued
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_messages_dead",
            "Messages given up on (blocked chat, permanent error)",
            counts.messages_dead,
        )
        yield CounterMetricFamily(f"{PREFIX}_messages_sent", "Messages delivered", live.messages_sent)
        yield CounterMetricFamily(f"{PREFIX}_messages_failed", "Failed send attempts", live.messages_failed)
        yield CounterMetricFamily(f"{PREFIX}_telegram_429", "RetryAfter (429) answers", live.retry_afters)
        yield GaugeMetricFamily(
            f"{PREFIX}_crm_outbox_pending", "CRM writes not acknowledged", counts.outbox_pending
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_crm_outbox_refused", "CRM writes refused by the CRM as they are", counts.outbox_refused
        )
        yield GaugeMetricFamily(f"{PREFIX}_sync_kept_aside", "CRM records kept aside", counts.kept_aside)
        yield CounterMetricFamily(
            f"{PREFIX}_sync_failures", "Sync runs that stopped early", live.sync_failures
        )
        if live.sync_duration_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_sync_duration_seconds", "Duration of the last sync run", live.sync_duration_seconds
            )
        if live.sync_lag_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_sync_lag_seconds", "Seconds since the last successful sync", live.sync_lag_seconds
            )
        signals = GaugeMetricFamily(
            f"{PREFIX}_open_signals", "Signals not resolved", labels=["severity", "circle"]
        )
        for (severity, circle), count in sorted(counts.open_signals.items()):
            signals.add_metric([severity, circle], count)
        yield signals
