"""A channel degrades in the simulator: the real bot syncs four weeks of leads, then a day on which the
website's leads stop converting; the funnel watch finds the day outside the website's normal band and the
owner gets the signal with the conversion, the band, by how much and since when."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp

from bikewerk.sync import Syncer
from bot.i18n import in_locale
from circles.revenue.bands import watch_funnel
from keyboards.circle_views import funnel_usage_text, health_refused_text
from keyboards.signals import type_title
from testkit.emulator import RateLimits
from tests.support.harness import ADMIN_ID, OWNER_ID, Harness, start_harness


def _last(h: Harness, chat_id: int) -> str:
    message = h.emulator.last_message(chat_id)
    assert message is not None
    return message.text or ""


async def test_a_degraded_channel_reaches_the_owner_with_the_numbers(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, simulator=True, rate_limits=RateLimits(enabled=False))
    try:
        services = h.services
        syncer = Syncer(
            services.db,
            h.app.bikewerk,
            services.policy,
            services.calendar,
            h.clock,
            settings=services.settings,
        )
        assert (await syncer.sync_once()).leads > 1000  # four weeks of the funnel
        quiet = await watch_funnel(services, h.clock.now())
        assert quiet.excursions == []  # yesterday was a normal day

        midnight = h.clock.now().replace(hour=0, minute=0)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{h.simulator_url}/sim/leads/degrade",
                json={"channel": "website", "factor": 0.1, "since": midnight.isoformat()},
            ) as r,
        ):
            assert r.status == 200
        h.clock.advance(timedelta(days=1))
        assert (await syncer.sync_once()).ok
        watch = await watch_funnel(services, h.clock.now())
        channels = [(kind, subject) for kind, subject, _ in watch.excursions]
        assert ("revenue.channel_conversion", "website") in channels
        found = next(f for kind, subject, f in watch.excursions if subject == "website")
        assert found.value < found.band.low and found.since == midnight.date()
        await h.settle()

        with in_locale("ru"):
            title = type_title("revenue.channel_conversion")
        texts = [m.text or "" for m in h.emulator.transcript(OWNER_ID)]
        ping = next(t for t in texts if title in t)
        assert "website" in ping and f"{found.value * 100:.1f} %" in ping
        assert f"{found.band.low * 100:.1f} %" in ping and midnight.date().isoformat() in ping

        # /funnel days 2: the owner reads the two days per channel, with the conversion chart.
        before = len(h.emulator.transcript(OWNER_ID))
        h.emulator.send_text(OWNER_ID, "/funnel days 2")
        await h.settle()
        text, chart = h.emulator.transcript(OWNER_ID)[before:]
        assert (text.kind, chart.kind) == ("text", "photo")
        assert "website" in (text.text or "") and "instagram" in (text.text or "")
        h.emulator.send_text(OWNER_ID, "/funnel days 500")
        await h.settle()
        with in_locale("ru"):
            assert _last(h, OWNER_ID) == funnel_usage_text()

        # /health: the admins see the reliability circle in one message; the owner is refused.
        h.emulator.send_text(ADMIN_ID, "/health")
        h.emulator.send_text(OWNER_ID, "/health")
        await h.settle()
        with in_locale("ru"):
            assert _last(h, OWNER_ID) == health_refused_text()
            assert "p95" in _last(h, ADMIN_ID)
    finally:
        await h.stop()
