"""A failed button press is answered and logged once; a press delivered again is one warning; idle syncs and
job runs write no INFO line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.jobs import make_scheduler, sync_bikewerk
from tests.support.harness import ADMIN_ID, Harness, start_harness


@contextlib.contextmanager
def write_locked(h: Harness) -> Iterator[None]:
    """Another process holds the database's write lock (a sqlite3 shell left in a transaction): a use case
    that writes fails with "database is locked" once the busy timeout runs out."""
    other = sqlite3.connect(h.settings.database_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_button_whose_use_case_fails_is_answered_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.say(ADMIN_ID, "/lang")
    caplog.clear()
    with caplog.at_level(logging.INFO), write_locked(harness):
        answer = await harness.press(ADMIN_ID, ADMIN_ID, "English")
    assert "Попробуйте ещё раз" in answer["text"]  # the admin's client speaks Russian
    failures = [r for r in caplog.records if r.getMessage() == "update.failed"]
    assert len(failures) == 1
    fields = failures[0].__dict__["fields"]
    assert isinstance(fields["update_id"], int) and fields["kind"] == "callback_query"
    assert fields["user_id"] == ADMIN_ID
    assert failures[0].exc_info is not None  # the trace is in that one line
    assert not [r for r in caplog.records if r.name.startswith("aiogram") and r.levelno >= logging.ERROR]


async def test_a_press_telegram_delivers_again_is_one_warning_not_a_failed_update(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.say(ADMIN_ID, "/lang")
    query = harness.tg.press(ADMIN_ID, ADMIN_ID, "English")
    await harness.answer_of(query)
    [update_id] = [
        i for i, u in harness.tg.sent_updates.items() if u.get("callback_query", {}).get("id") == query
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        harness.tg.redeliver(update_id)  # its query was answered the first time: Telegram refuses a second
        await harness.settle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "callback.answer_too_old"
    ]


async def test_an_english_speaker_gets_the_english_text(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, language_code="en")
    try:
        await h.say(ADMIN_ID, "/lang")
        with write_locked(h):
            answer = await h.press(ADMIN_ID, ADMIN_ID, "Русский")
        assert answer["text"] == "Something went wrong on our side. Please try again in a minute."
    finally:
        await h.stop()


async def test_an_idle_sync_and_the_job_runs_write_nothing_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = await start_harness(tmp_path, simulator=True)
    try:
        await sync_bikewerk(h.app.syncer, h.services)  # the first: managers and anything new
        scheduler: AsyncIOScheduler = make_scheduler(h.settings)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            await sync_bikewerk(h.app.syncer, h.services)  # nothing changed in the CRM since
            ran = asyncio.Event()
            scheduler.add_listener(lambda _event: ran.set(), EVENT_JOB_EXECUTED)
            scheduler.start()
            scheduler.add_job(sync_bikewerk, args=(h.app.syncer, h.services), id="bikewerk.sync")
            await asyncio.wait_for(ran.wait(), 10)
            scheduler.shutdown(wait=False)
        info = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert info == [], [(r.name, r.getMessage()) for r in info]
        assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.WARNING
    finally:
        await h.stop()
