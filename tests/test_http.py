"""The bot's one HTTP server: /healthz names what is not alive, /metrics is Prometheus text that moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.jobs import sync_bikewerk
from storage.messages import put_message
from tests.support.harness import ADMIN_ID, Harness, start_harness


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path, simulator=True, HTTP_HOST="127.0.0.1", HTTP_PORT=0)
    try:
        yield harness
    finally:
        await harness.stop()


async def get(h: Harness, path: str) -> tuple[int, Any]:
    assert h.app.http_url is not None
    async with aiohttp.ClientSession() as http, http.get(h.app.http_url + path) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def healthy(h: Harness) -> None:
    """What `run` has and the harness leaves off: a running scheduler (paused: no job runs) and a sync."""
    h.app.scheduler.start(paused=True)
    await sync_bikewerk(h.app.syncer, h.services)


async def test_healthz_is_200_when_every_part_is_alive_then_503_naming_the_dead_sender(h: Harness) -> None:
    status, body = await get(h, "/healthz")
    assert status == 503 and "scheduler" in body["failing"] and "sync" in body["failing"]

    await healthy(h)
    status, body = await get(h, "/healthz")
    assert status == 200, body
    assert body["ok"] is True
    assert set(body["checks"]) == {"intake", "sender", "crm-outbox", "scheduler", "sync"}

    sender = h.app.task("sender")
    assert sender is not None
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    status, body = await get(h, "/healthz")
    assert status == 503
    assert body["failing"] == ["sender"]
    assert body["checks"]["sender"] == "task ended"


async def test_healthz_names_a_stale_sync(h: Harness) -> None:
    await healthy(h)
    h.clock.advance(timedelta(minutes=h.services.policy.reliability.sync_lag_minutes + 1))
    status, body = await get(h, "/healthz")
    assert status == 503 and body["failing"] == ["sync"]
    assert "ago" in body["checks"]["sync"]


def samples(text: str) -> dict[str, float]:
    """Every sample as `name{label=value,...}` -> value."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def queue_message(h: Harness) -> None:
    """A message through the outbox and the sender (as a signal or a card goes)."""
    async with h.services.db.transaction() as conn:
        await put_message(conn, chat_id=ADMIN_ID, ref="test:metrics", body="hello", now=h.clock.now())
    h.app.sender.wake()


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def test_metrics_parse_and_move_with_an_update_and_a_message(h: Harness) -> None:
    await healthy(h)
    status, text = await get(h, "/metrics")
    assert status == 200
    expected = {
        "bikewerk_bot_updates_handled",
        "bikewerk_bot_update_seconds",
        "bikewerk_bot_messages_queued",
        "bikewerk_bot_messages_sent",
        "bikewerk_bot_messages_failed",
        "bikewerk_bot_telegram_429",
        "bikewerk_bot_crm_outbox_pending",
        "bikewerk_bot_crm_outbox_refused",
        "bikewerk_bot_sync_duration_seconds",
        "bikewerk_bot_sync_lag_seconds",
        "bikewerk_bot_sync_kept_aside",
        "bikewerk_bot_open_signals",
        "bikewerk_bot_job_runs",
        "bikewerk_bot_job_failures",
    }
    assert expected <= families(text), expected - families(text)
    before = samples(text)

    await h.say(ADMIN_ID, "/start")
    await queue_message(h)
    await h.settle()
    _, text = await get(h, "/metrics")
    after = samples(text)
    assert after["bikewerk_bot_updates_handled_total{outcome=ok}"] >= 1
    assert after.get("bikewerk_bot_updates_handled_total{outcome=ok}", 0) > before.get(
        "bikewerk_bot_updates_handled_total{outcome=ok}", 0
    )
    assert after["bikewerk_bot_update_seconds_count{}"] > before["bikewerk_bot_update_seconds_count{}"]
    assert after["bikewerk_bot_messages_sent_total{}"] > before["bikewerk_bot_messages_sent_total{}"]


async def test_two_apps_in_one_process_keep_their_own_metrics(h: Harness, tmp_path: Path) -> None:
    other = await start_harness(tmp_path / "other", HTTP_HOST="127.0.0.1", HTTP_PORT=0)
    try:
        await queue_message(h)
        await h.settle()
        _, mine = await get(h, "/metrics")
        _, theirs = await get(other, "/metrics")
        assert samples(mine)["bikewerk_bot_messages_sent_total{}"] >= 1
        assert samples(theirs)["bikewerk_bot_messages_sent_total{}"] == 0
    finally:
        await other.stop()
