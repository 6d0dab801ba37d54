"""The admin panel in a real headless Chromium (Debian's `chromium`, driven by Playwright; scripts/setup.sh
installs it): the running bot against the Bot API emulator, its panel on HTTP_PORT. Sign in from the link /web
sends; a second use of the link and a request without a session are refused; the circles panel and the
decision log show a signal pinged in Telegram; acknowledging it on the page edits the Telegram ping; a forged
form without the CSRF token changes nothing. Screenshots go to demo-output/."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from circles.sales_ops.sla import sweep
from domain.statuses import Status
from storage.signals import get_signal
from tests.support.harness import ADMIN_ID, DEFAULT_NOW, LEADS_CHAT_ID, Harness, start_harness
from tests.support.sla_world import World

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "demo-output"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LINK = re.compile(r"https?://[^\s\"<>]+/login/[A-Za-z0-9_\-]+")

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason="chromium is missing (scripts/setup.sh installs it as root)",
)


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path, HTTP_PORT=0)
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _breach(h: Harness, order_id: str) -> int:
    """An order waits for a manager past its 15 minutes: the SLA sweep pings the leads chat in Telegram."""
    world = World(h.services, h.clock)
    await world.add_order(order_id, Status.PENDING_MANAGER, DEFAULT_NOW)
    at = DEFAULT_NOW.replace(minute=16)
    h.clock.set(at)
    await sweep(h.services, at)
    h.services.wake_sender()
    await h.settle()
    ping = next(m for m in h.emulator.transcript(LEADS_CHAT_ID) if order_id in (m.text or ""))
    found = re.search(r"#(\d+)", ping.text or "")
    assert found is not None
    return int(found.group(1))


async def _sign_in_link(h: Harness) -> str:
    h.emulator.send_text(ADMIN_ID, "/web")
    await h.settle()
    message = h.emulator.last_message(ADMIN_ID)
    assert message is not None
    found = LINK.search(message.raw_text or message.text or "")
    assert found is not None, message.text
    return found.group(0)


def _ping(h: Harness, signal_id: int) -> Any:
    return next(m for m in h.emulator.transcript(LEADS_CHAT_ID) if f"#{signal_id}" in (m.text or ""))


async def test_sign_in_see_act_and_refusals_in_a_real_browser(panel: Harness, browser: Any) -> None:
    h = panel
    SHOTS.mkdir(exist_ok=True)
    signal_id = await _breach(h, "B-1")
    other_id = await _breach(h, "B-2")
    base = h.services.web_url
    assert base is not None

    # Nothing is visible without a session.
    stranger = await browser.new_page()
    response = await stranger.goto(base + "/")
    assert response.status == 401
    assert "B-1" not in await stranger.content() and await stranger.locator("#refused").count() == 1
    response = await stranger.goto(base + "/log")
    assert response.status == 401 and "B-1" not in await stranger.content()

    # Sign in from the link /web sent in Telegram.
    link = await _sign_in_link(h)
    assert link.startswith(base)
    context = await browser.new_context(viewport={"width": 420, "height": 900})  # a phone
    page = await context.new_page()
    response = await page.goto(link)
    assert response.status == 200 and page.url == base + "/"
    cookie = next(c for c in await context.cookies() if c["name"] == "bw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] in ("Lax", "Strict") and cookie["expires"] > 0

    # The circles panel shows the signal pinged in Telegram, with its KPIs and sparklines.
    row = page.locator(f"#circle-sales_ops #signal-{signal_id}")
    await row.wait_for()
    assert "B-1" in await row.inner_text()
    assert await page.locator("#circle-sales_ops svg.spark").count() >= 5
    assert await page.locator("#ceo").count() == 1
    await page.screenshot(path=str(SHOTS / "panel-circles.png"), full_page=True)

    # The same link a second time, in another browser: refused, and no session comes of it.
    again = await browser.new_context()
    second = await again.new_page()
    response = await second.goto(link)
    assert response.status == 403
    assert not [c for c in await again.cookies() if c["name"] == "bw_session"]
    response = await second.goto(base + "/")
    assert response.status == 401
    await again.close()

    # The decision log shows it, and filters by severity and order.
    await page.goto(base + "/log?order=B-1")
    await page.locator(f"#log-{signal_id}").wait_for()
    assert await page.locator(f"#log-{other_id}").count() == 0
    await page.goto(base + "/log?severity=high")
    assert await page.locator(f"#log-{other_id}").count() == 1
    await page.screenshot(path=str(SHOTS / "panel-log.png"), full_page=True)

    # Acknowledge on the page: the same use case as the button, so the ping in Telegram is edited.
    before = _ping(h, signal_id)
    assert any(data == f"sg:{signal_id}:ak:" for _, data in before.buttons)
    await page.goto(f"{base}/signals/{signal_id}")
    await page.click("#ack")
    await page.locator("#flash.ok").wait_for()
    acknowledged = await get_signal(h.services.db, signal_id)
    assert acknowledged is not None and acknowledged.state == "acknowledged"
    assert (await page.locator("#state").inner_text()).strip() == "в работе"  # the admin reads Russian
    await h.settle()
    after = _ping(h, signal_id)
    assert after.message_id == before.message_id and after.edits >= 1
    assert not any(data == f"sg:{signal_id}:ak:" for _, data in after.buttons)
    assert "Alina" in (after.text or "")  # acknowledged by the admin who signed in
    await page.screenshot(path=str(SHOTS / "panel-signal.png"), full_page=True)

    # A forged form without the CSRF token, with the session cookie: refused, nothing changes.
    untouched = _ping(h, other_id)
    status = await page.evaluate(
        """async (url) => {
            const body = new URLSearchParams({action: "resolve", comment: "forged"});
            const r = await fetch(url, {method: "POST", body, redirect: "manual"});
            return r.status;
        }""",
        f"{base}/signals/{other_id}/act",
    )
    assert status == 403
    await page.goto(f"{base}/signals/{other_id}")
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """() => { const f = document.getElementById("resolve-form");
                       f.querySelector("input[name=csrf]").remove(); f.submit(); }"""
        )
    assert (await navigation.value).status == 403
    assert page.url.endswith("/act") and await page.locator("#refused").count() == 1
    signal = await get_signal(h.services.db, other_id)
    assert signal is not None and signal.state == "open" and signal.resolution is None
    await h.settle()
    assert _ping(h, other_id).edits == untouched.edits

    # The order's history and the retrospective render.
    response = await page.goto(f"{base}/orders/B-1")
    assert response.status == 200 and await page.locator(f"#signal-{signal_id}").count() == 1
    response = await page.goto(f"{base}/retro")
    assert response.status == 200 and await page.locator("#autopilot").count() == 1
    await page.screenshot(path=str(SHOTS / "panel-retro.png"), full_page=True)
    await context.close()
