"""The real bot against the Bot API emulator over HTTP: roles and greetings, strangers, languages, buttons
that must not be trusted, linking a manager, blocked and migrated chats, restarts, webhook mode and
`main.py run`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp

from bot.i18n import _, in_locale
from domain.models import Manager
from keyboards.common import stranger_text
from storage import crm
from storage import messages as outbox
from storage.people import chat_language, current_chat_id, is_chat_blocked, manager_by_id
from storage.signals import live_signal_by_dedup
from tests.support.harness import (
    ADMIN_ID,
    CRISIS_CHAT_ID,
    LEAD_IDS,
    LEADS_CHAT_ID,
    OWNER_ID,
    Harness,
    start_harness,
)

ROOT = Path(__file__).resolve().parent.parent
MANAGER_TG = 501
STRANGER = 999
MANAGER_INTRO = (
    "As a manager you get new orders here as cards with Accept and Decline, move them forward and "
    "fill in the inspection checklist with the buttons."
)


def ru(text: str) -> str:
    with in_locale("ru"):
        return _(text)


def en(text: str) -> str:
    with in_locale("en"):
        return _(text)


async def say(harness: Harness, user_id: int, text: str, chat_id: int | None = None) -> str:
    """The user writes; returns the bot's latest message text in that chat once everything settled."""
    harness.emulator.send_text(user_id, text, chat_id=chat_id)
    await harness.settle()
    last = harness.emulator.last_message(chat_id or user_id)
    return last.text or "" if last is not None else ""


def menu(harness: Harness, chat_id: int | None = None, language_code: str = "") -> list[str]:
    scope = {"type": "chat", "chat_id": chat_id} if chat_id is not None else {"type": "default"}
    return [c["command"] for c in harness.emulator.my_commands(scope, language_code)]


async def test_each_role_gets_its_own_greeting_and_menu(harness: Harness) -> None:
    await harness.add_manager("M1", "Mira Manager", MANAGER_TG)
    expected = {
        ADMIN_ID: (
            "As an admin you work the signal and decision log and look after the managers.",
            "/decide",
        ),
        OWNER_ID: (
            "As the owner you get the morning digest with the KPIs and the weekly retrospective.",
            "/digest",
        ),
        LEAD_IDS[0]: (
            "As a head of sales you get escalations in the leads chat, with Acknowledge, Resolve and "
            "Reassign buttons.",
            "/signals",
        ),
        MANAGER_TG: (
            MANAGER_INTRO,
            "/shift",
        ),
    }
    for user_id, (intro, command) in expected.items():
        text = await say(harness, user_id, "/start")
        assert ru(intro) in text, f"{user_id}: {text}"
        assert command in text
        assert ru("Your commands:") in text
    # A manager's greeting does not offer an admin's commands.
    assert "/decide" not in (harness.emulator.last_message(MANAGER_TG).text or "")  # type: ignore[union-attr]

    assert "decide" in menu(harness, ADMIN_ID)
    assert "digest" in menu(harness, OWNER_ID) and "decide" not in menu(harness, OWNER_ID)
    assert "signals" in menu(harness, LEAD_IDS[1])
    assert "signals" in menu(harness, LEADS_CHAT_ID) and "signals" in menu(harness, CRISIS_CHAT_ID)
    assert menu(harness) == ["start", "link"] == menu(harness, language_code="en")


async def test_a_stranger_is_refused_politely_in_their_language(harness: Harness) -> None:
    harness.emulator.add_user(STRANGER, "Eve", language_code="en")

    assert await say(harness, STRANGER, "/start") == en(
        "Sorry, this bot is only for the BikeWerk team. If you are a manager, ask an admin for a link code "
        "and send /link CODE."
    )
    assert await say(harness, STRANGER, "/lang ru") == stranger_text_in("en")
    assert await chat_language(harness.services.db, STRANGER, "xx") == "xx", "nothing was stored for them"

    refusal = harness.emulator.last_message(STRANGER)
    assert refusal is not None
    query = harness.emulator.press_button(STRANGER, STRANGER, refusal.message_id, "lang:ru")
    await harness.settle()
    assert harness.emulator.callback_answers[query]["text"] == stranger_text_in("en")
    assert harness.emulator.callback_answers[query]["show_alert"] is True

    # In a group the bot stays quiet towards strangers.
    harness.emulator.send_text(STRANGER, "/start", chat_id=LEADS_CHAT_ID)
    await harness.settle()
    assert harness.emulator.transcript(LEADS_CHAT_ID) == []


def stranger_text_in(lang: str) -> str:
    with in_locale(lang):
        return stranger_text()


async def test_the_bot_leaves_a_group_it_was_not_configured_for(harness: Harness) -> None:
    harness.emulator.add_group(-4444, "Someone's chat", added_by=ADMIN_ID)
    await harness.settle()
    assert [call["chat_id"] for call in harness.emulator.calls_of("leaveChat")] == [-4444]


async def test_lang_switches_the_language_of_later_messages(harness: Harness) -> None:
    assert ru("Your commands:") != en("Your commands:"), "the Russian catalog translates this text"
    assert (await say(harness, OWNER_ID, "/help")).startswith(ru("Your commands:"))

    await say(harness, OWNER_ID, "/lang")
    assert [text for text, _data in harness.emulator.buttons(OWNER_ID)] == ["✓ Русский", "English"]
    query = harness.emulator.press(OWNER_ID, OWNER_ID, "English")
    await harness.settle()

    assert harness.emulator.callback_answers[query]["text"] == "Language: English."
    assert harness.emulator.last_message(OWNER_ID).text == "Language: English."  # type: ignore[union-attr]
    assert (await say(harness, OWNER_ID, "/help")).startswith("Your commands:")
    assert await chat_language(harness.services.db, OWNER_ID, "ru") == "en", (
        "agents write to them in English too"
    )

    assert await say(harness, OWNER_ID, "/lang ru") == "Язык: Русский."
    assert (await say(harness, OWNER_ID, "/help")).startswith(ru("Your commands:"))
    assert await say(harness, OWNER_ID, "/lang de") == ru("Unknown language {code}: use {choices}.").format(
        code="de", choices="ru, en"
    )


async def test_forged_and_stale_buttons_change_nothing_and_are_answered(harness: Harness) -> None:
    await say(harness, OWNER_ID, "/lang")
    keyboard = harness.emulator.last_message(OWNER_ID)
    assert keyboard is not None

    forged = harness.emulator.press_button(OWNER_ID, OWNER_ID, keyboard.message_id, "lang:de")
    garbage = harness.emulator.press_button(OWNER_ID, OWNER_ID, keyboard.message_id, "zz:1:2")
    await harness.settle()

    assert harness.emulator.callback_answers[forged]["text"] == ru("Unknown language.")
    assert harness.emulator.callback_answers[garbage]["text"] == ru("This button is no longer valid.")
    assert harness.emulator.unanswered_callbacks() == []
    assert await chat_language(harness.services.db, OWNER_ID, "none") == "none", "no language was stored"
    assert harness.emulator.last_message(OWNER_ID).edits == 0  # type: ignore[union-attr]


async def test_a_manager_links_their_telegram_with_a_one_time_code(harness: Harness) -> None:
    async with harness.services.db.transaction() as conn:
        await crm.upsert_managers(conn, [Manager(id="M7", name="Mark Seven")], harness.clock.now())
    for user_id in (777, 778, 779):
        harness.emulator.add_user(user_id, f"New{user_id}", language_code="ru")

    def code_of(text: str) -> str:
        match = re.search(r"/link ([A-Z0-9]{8})", text)
        assert match is not None, text
        return match.group(1)

    assert await say(harness, 777, "/start") == stranger_text_in("ru")
    not_valid = ru("This code is not valid. Check it, or ask an admin for a new one.")
    assert await say(harness, LEAD_IDS[0], "/link M7") == not_valid, "only an admin creates codes"
    code = code_of(await say(harness, ADMIN_ID, "/link M7"))

    assert await say(harness, 777, f"/link {code.lower()}") == ru(
        "Done: this account is now manager {name} ({id}). /help shows your commands."
    ).format(name="Mark Seven", id="M7")
    assert ru(MANAGER_INTRO) in await say(harness, 777, "/start")
    assert "my" in menu(harness, 777)
    assert await say(harness, 778, f"/link {code}") == ru(
        "This code was already used. Ask an admin for a new one."
    )

    second = code_of(await say(harness, ADMIN_ID, "/link M7"))
    harness.clock.advance(timedelta(hours=24, minutes=1))
    assert await say(harness, 779, f"/link {second}") == ru(
        "This code has expired. Ask an admin for a new one."
    )
    assert await say(harness, 779, "/link WRONG123") == not_valid
    assert await say(harness, 779, "/start") == stranger_text_in("ru")


async def test_a_person_blocking_the_bot_is_recorded_and_signalled(harness: Harness) -> None:
    await harness.add_manager("M1", "Mira Manager", MANAGER_TG)
    harness.emulator.block_bot(MANAGER_TG)
    await harness.settle()

    assert await is_chat_blocked(harness.services.db, MANAGER_TG)
    signal_ = await live_signal_by_dedup(harness.services.db, f"telegram.chat_blocked:{MANAGER_TG}")
    assert signal_ is not None

    # Writing to the bot again unblocks it (Telegram sends my_chat_member "member").
    await say(harness, MANAGER_TG, "/help")
    assert not await is_chat_blocked(harness.services.db, MANAGER_TG)


async def test_a_configured_group_that_migrates_is_followed(harness: Harness) -> None:
    new_id = harness.emulator.migrate_group(LEADS_CHAT_ID)
    await harness.settle()
    assert await current_chat_id(harness.services.db, LEADS_CHAT_ID) == new_id

    text = await say(harness, LEAD_IDS[0], "/help", chat_id=new_id)
    assert text.startswith(ru("Your commands:"))
    assert harness.emulator.calls_of("leaveChat") == []

    async with harness.services.db.transaction() as conn:
        await outbox.put_message(
            conn, chat_id=LEADS_CHAT_ID, ref="ping:1", body="Escalation", now=harness.clock.now()
        )
    harness.services.wake_sender()
    await harness.settle()
    assert harness.emulator.last_message(new_id).text == "Escalation"  # type: ignore[union-attr]
    assert [p for p in harness.emulator.calls_of("sendMessage") if p["chat_id"] == LEADS_CHAT_ID] == []


async def test_a_restart_in_the_middle_of_sending_loses_and_duplicates_nothing(harness: Harness) -> None:
    chats = (ADMIN_ID, OWNER_ID)
    bodies = [f"Notification {n}" for n in range(6)]
    async with harness.services.db.transaction() as conn:
        for n, body in enumerate(bodies):
            for chat_id in chats:
                await outbox.put_message(
                    conn, chat_id=chat_id, ref=f"n:{n}", body=body, now=harness.clock.now()
                )
    harness.services.wake_sender()

    # Stop the process while the 7th message is on the wire (a burst of 3 per chat went out, then 1/s).
    await harness.emulator.wait_for(lambda: len(harness.emulator.calls_of("sendMessage")) >= 7, timeout=10)
    await harness.restart()
    await harness.settle(timeout=20)

    for chat_id in chats:
        assert [m.text for m in harness.emulator.transcript(chat_id)] == bodies
        for n in range(len(bodies)):
            row = await outbox.get_message(harness.services.db, chat_id, f"n:{n}")
            assert row is not None and row["sent_version"] == row["version"] and row["message_id"] is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_update_stays_with_telegram_until_it_is_handled(harness: Harness) -> None:
    """Long polling confirms updates with the next getUpdates; if that went out while a handler still ran, a
    crash would lose the update. While the admin's message cannot be handled (the store is busy), the bot
    asks for no more updates, so Telegram still holds it; once handled it is confirmed and answered."""
    polls = len(harness.tg.calls_of("getUpdates"))
    async with harness.services.db.transaction():  # another writer holds the store
        harness.tg.send_text(ADMIN_ID, "/start")
        await harness.until(lambda: harness.app.tracker.in_flight == 1)
        taken_by = len(harness.tg.calls_of("getUpdates"))
        await asyncio.sleep(0.3)  # what must not happen (the next poll) would take milliseconds
        assert len(harness.tg.calls_of("getUpdates")) == taken_by > polls
        assert [u["message"]["text"] for u in harness.tg.pending_updates] == ["/start"]
    await harness.settle()
    assert harness.tg.pending_updates == []
    greeting = harness.tg.last_message(ADMIN_ID)
    assert greeting is not None and "Alina" in (greeting.text or "")  # greeted by name


async def test_webhook_mode_takes_updates_only_with_the_secret(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    harness = await start_harness(
        tmp_path,
        WEBHOOK_URL=url,
        WEBHOOK_SECRET="s3cret-Token_1",
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=port,
    )
    try:
        assert harness.emulator.webhook_url == url
        assert ru("Your commands:") in await say(harness, ADMIN_ID, "/help")

        forged = {
            "update_id": 999001,
            "message": {
                "message_id": 50,
                "date": 0,
                "chat": {"id": ADMIN_ID, "type": "private"},
                "from": {"id": ADMIN_ID, "is_bot": False, "first_name": "Alina"},
                "text": "/start",
            },
        }
        async with aiohttp.ClientSession() as client:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with client.post(url, json=forged, headers=headers) as response:
                    assert response.status == 401
        await harness.settle()
        assert len(harness.emulator.transcript(ADMIN_ID)) == 1, "forged updates were not handled"
    finally:
        await harness.stop()


async def test_main_run_serves_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    from testkit.emulator import BotAPIEmulator

    emulator = BotAPIEmulator()
    api = await emulator.start()
    emulator.add_user(ADMIN_ID, "Alina")
    env = {
        **os.environ,
        "BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": api,
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "ADMIN_IDS": str(ADMIN_ID),
        "BIKEWERK_API_URL": "http://127.0.0.1:9",
    }
    for key in ("WEBHOOK_URL", "WEBHOOK_SECRET", "POLICY_FILE", "OWNER_ID", "LEAD_IDS", "LEADS_CHAT_ID"):
        env.pop(key, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await emulator.wait_for(lambda: bool(emulator.calls_of("getUpdates")), timeout=30)
        emulator.send_text(ADMIN_ID, "/help")
        await emulator.wait_for(lambda: emulator.last_message(ADMIN_ID) is not None, timeout=10)
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emulator.stop()
    assert process.returncode == 0, err.decode()
    assert emulator.token.split(":")[1] not in err.decode(), "the token never reaches the log"
    assert '"event": "bot.stopped"' in err.decode()


async def test_main_run_without_a_token_is_a_configuration_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "run",
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().strip().splitlines()[-1].startswith("error: BOT_TOKEN: required")
    assert "Traceback" not in err.decode()


async def test_the_sync_job_is_registered_and_runs_the_sync(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path, simulator=True)
    try:
        harness.app.scheduler.start(paused=True)  # the job gets its defaults, and does not fire by itself
        job = harness.app.scheduler.get_job("bikewerk.sync")
        assert job is not None
        assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (300, True, 1)
        assert job.trigger.interval == timedelta(seconds=harness.settings.sync_interval_seconds)
        assert harness.simulator is not None
        harness.simulator.upsert_manager({"id": "M9", "name": "Nina Nine", "telegram_id": 909})

        await job.func(*job.args)

        manager = await manager_by_id(harness.services.db, "M9")
        assert manager is not None and manager["telegram_id"] == 909
    finally:
        await harness.stop()
