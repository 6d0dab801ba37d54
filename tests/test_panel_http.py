"""The panel over plain HTTP against the running bot (no browser): who gets a /web link, links and sessions
expiring on the bot's clock, signing out, roles on the page as in Telegram (a lead cannot approve), the
approval acted on from the page, and /ceo in Telegram."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from backbone.signals import request_approval
from tests.support.harness import ADMIN_CHAT_ID, ADMIN_ID, LEAD_IDS, OWNER_ID, Harness, start_harness

LINK = re.compile(r"https?://[^\s\"<>]+/login/[A-Za-z0-9_\-]+")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path, HTTP_PORT=0, DEFAULT_LANGUAGE="en")
    try:
        yield harness
    finally:
        await harness.stop()


async def _ask(h: Harness, user_id: int, text: str) -> str:
    h.emulator.send_text(user_id, text)
    await h.settle()
    message = h.emulator.last_message(user_id)
    assert message is not None
    return message.raw_text or message.text or ""


async def _link(h: Harness, user_id: int) -> str:
    found = LINK.search(await _ask(h, user_id, "/web"))
    assert found is not None
    return found.group(0)


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_only_admins_the_owner_and_leads_get_a_link(h: Harness) -> None:
    await h.add_manager("M1", "Max Manager", 555)  # a manager has a role, but not the panel's
    assert "admins, the owner and leads" in await _ask(h, 555, "/web")
    h.emulator.add_user(556, "Stranger")
    assert "only for the BikeWerk team" in await _ask(h, 556, "/web")
    for person in (ADMIN_ID, OWNER_ID, LEAD_IDS[0]):
        assert LINK.search(await _ask(h, person, "/web"))


async def test_a_link_expires_and_a_session_ends_on_time_or_on_sign_out(h: Harness) -> None:
    base = h.services.web_url
    assert base is not None
    late = await _link(h, ADMIN_ID)
    h.clock.advance(timedelta(minutes=10))  # WEB_LINK_MINUTES
    async with _client() as http, http.get(late) as response:
        assert response.status == 403 and "expired" in await response.text()

    link = await _link(h, ADMIN_ID)
    async with _client() as http:
        async with http.get(link) as response:
            assert response.status == 200 and response.url.path == "/"
            assert response.headers["Cache-Control"] == "no-store"
        async with http.get(base + "/log") as response:
            assert response.status == 200
        h.clock.advance(timedelta(hours=12))  # WEB_SESSION_HOURS
        async with http.get(base + "/log") as response:
            assert response.status == 401

    link = await _link(h, ADMIN_ID)
    async with _client() as http:
        async with http.get(link) as response:
            page = await response.text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        async with http.post(base + "/logout", data={"csrf": csrf.group(1)}) as response:
            assert response.status == 401  # redirected to /, which now refuses
            assert "Sign in first" in await response.text()
        async with http.get(base + "/") as response:
            assert response.status == 401


async def test_an_approval_on_the_page_needs_an_approver_and_edits_the_ping(h: Harness) -> None:
    base = h.services.web_url
    assert base is not None
    async with h.services.db.transaction() as conn:
        signal_id, _ = await request_approval(
            conn,
            action="compensation",
            reason="scratched frame",
            now=h.clock.now(),
            settings=h.services.settings,
            order_id="O8",
        )
    h.services.wake_sender()
    await h.settle()
    ping = next(m for m in h.emulator.transcript(ADMIN_CHAT_ID) if f"#{signal_id}" in (m.text or ""))

    async def act_as(person: int, action: str) -> str:
        async with _client() as http:
            async with http.get(await _link(h, person)) as response:
                assert response.status == 200
            async with http.get(f"{base}/signals/{signal_id}") as response:
                page = await response.text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf is not None
            form = {"csrf": csrf.group(1), "action": action, "comment": "from the panel"}
            async with http.post(f"{base}/signals/{signal_id}/act", data=form) as response:
                return await response.text()

    refused = await act_as(LEAD_IDS[0], "approve")
    assert "Only an admin or the owner can approve or reject" in refused
    approved = await act_as(OWNER_ID, "approve")
    assert f"Signal #{signal_id} approved" in approved
    await h.settle()
    edited = next(m for m in h.emulator.transcript(ADMIN_CHAT_ID) if m.message_id == ping.message_id)
    assert edited.edits >= 1 and not edited.buttons


async def test_ceo_gives_the_owner_one_summary_over_the_circles(h: Harness) -> None:
    text = await _ask(h, OWNER_ID, "/ceo")
    assert "AI-CEO: what needs you today" in text
    assert (
        "0 decisions wait for you" in text
        and "Sales operations (AI head of sales)" in text
        and "(sign in with /web)" in text
    )
    assert "for the owner and admins" in await _ask(h, LEAD_IDS[0], "/ceo")
