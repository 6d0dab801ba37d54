"""The digests: the owner's morning digest (text + chart photo, once per day, in the owner's language), the
chart file itself, the leads' operations digest, the weekly retrospective and the detail buttons — at use-case
level over a real SQLite file; and end to end, from the scheduled job to the owner's chat in the Bot API
emulator, in Russian and in English."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import i18n
from bot.services import Services
from circles.sales_ops.digests import (
    UnknownSection,
    send_details,
    send_leads_digest,
    send_owner_digest,
    send_owner_digest_now,
    send_weekly_retro,
)
from domain.statuses import Status
from scheduler.jobs import owner_digest
from storage.db import Database
from storage.people import set_language
from tests.support.kpi_history import NOW, History, make_services

PM, AC, IN, AW, TR = (
    Status.PENDING_MANAGER,
    Status.ACCEPTED,
    Status.INSPECTION,
    Status.AWAITING_CLIENT,
    Status.IN_TRANSIT,
)
OWNER, ADMIN, LEADS_CHAT = 200, 100, -1001
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ago(hours: float = 0, minutes: float = 0) -> Any:
    return NOW - timedelta(hours=hours, minutes=minutes)


def tr(msgid: str, lang: str) -> str:
    """A text as the catalog renders it in `lang` (the lead translates the English msgids into Russian)."""
    return i18n.gettext(msgid, locale=lang)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "digest.db")
    yield database
    await database.close()


@pytest.fixture
async def services(db: Database, tmp_path: Path) -> Services:
    """A morning with work to show: a stuck order without a manager, an overdue inspection, an overloaded
    manager, open and unacknowledged signals."""
    services = make_services(
        db, tmp_path, OWNER_ID=OWNER, ADMIN_IDS=str(ADMIN), LEAD_IDS="301,302", LEADS_CHAT_ID=LEADS_CHAT
    )
    history = History(db)
    await history.manager("anna", "Anna", 1001, capacity=2)
    await history.manager("boris", "Boris", 1002)
    await history.order("p1", [(PM, ago(0, 10))])
    await history.order("p2", [(PM, ago(80))], breach_after=timedelta(minutes=15))
    await history.order(
        "o1", [(PM, ago(40)), (AC, ago(39)), (IN, ago(30))], manager="anna", breach_after=timedelta(hours=3)
    )
    await history.order("o2", [(PM, ago(2)), (AC, ago(1, 30))], manager="anna")
    await history.order("o3", [(PM, ago(60)), (AC, ago(50)), (IN, ago(40)), (AW, ago(20))], manager="anna")
    await history.order("o4", [(PM, ago(90)), (AC, ago(80)), (TR, ago(10))], manager="boris")
    await history.signal(1, type="sla.breach", severity="critical", raised=ago(2), owner=1001, order_id="o1")
    await history.signal(2, type="order.unassigned", severity="high", raised=ago(1), order_id="p2")
    await history.signal(
        3, type="order.no_progress", severity="medium", raised=ago(3), owner=1002, acked=True
    )
    await history.signal(4, raised=ago(5), resolved=ago(4), owner=301, resolution="reassigned")
    return services


async def slots(db: Database, chat_id: int) -> list[Any]:
    return await db.fetchall(
        "SELECT ref, kind, body, markup, file_path, version FROM tg_messages WHERE chat_id = ? ORDER BY id",
        (chat_id,),
    )


def buttons(markup: str | None) -> list[str]:
    keyboard = json.loads(markup or "{}").get("inline_keyboard", [])
    return [button["callback_data"] for row in keyboard for button in row]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert chunk == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_owner_digest_is_text_plus_chart_once_per_day(services: Services, db: Database) -> None:
    sent = await send_owner_digest(services, NOW)
    assert [s.chat_id for s in sent] == [OWNER]
    text, chart, margin = await slots(db, OWNER)
    assert (text["ref"], text["kind"]) == ("digest:owner:2026-11-23", "text")
    assert (chart["ref"], chart["kind"]) == ("digest:owner:2026-11-23:chart", "photo")
    assert (margin["ref"], margin["kind"]) == ("digest:owner:2026-11-23:margin", "photo")
    assert png_size(Path(margin["file_path"])) == (960, 480)
    assert Path(chart["file_path"]) == sent[0].chart and sent[0].chart.exists()
    body = text["body"]
    # Russian is the default language: the texts come from the Russian catalog, numbers in Russian form
    assert tr("<b>☀️ Morning digest · {day}</b>", "ru").format(day="23.11") in body
    assert "16,7%" in body  # stuck over 72 h: p2 of 6 open orders
    # the queue, the signals with owners and deadlines, the oldest stalled orders with owner and next step
    assert ": <b>2</b>" in body  # two orders wait for a manager
    assert "#1" in body and "Anna" in body and "#2" in body and "#3" not in body  # medium is not shown
    assert "<b>p2</b>" in body and "<b>o1</b>" in body
    assert "o3" not in body.split("o1")[-1]  # at most three blockers, the longest waiting first
    assert len(body) < 2500  # short enough to read on a phone
    assert buttons(text["markup"]) == ["dg:k:", "dg:c:", "dg:s:", "dg:b:"]

    # a second run on the same day (a restart, a repeated job) sends nothing and edits nothing
    assert await send_owner_digest(services, NOW + timedelta(hours=2)) == []
    assert [row["version"] for row in await slots(db, OWNER)] == [1, 1, 1]
    # the next morning brings a new one
    assert len(await send_owner_digest(services, NOW + timedelta(days=1))) == 1


async def test_the_owner_digest_speaks_the_owners_language(services: Services, db: Database) -> None:
    async with db.transaction() as conn:
        await set_language(conn, telegram_id=OWNER, lang="en", now=NOW)
    await send_owner_digest(services, NOW)
    text, chart, margin = await slots(db, OWNER)
    assert text["body"].startswith("<b>☀️ Morning digest · 23.11</b>")
    assert "<b>Money</b> (24 h)" in text["body"] and margin["body"] == "Net margin per day, 14 days (€)"
    assert "16.7%" in text["body"]
    assert "Waiting for a manager: <b>2</b>" in text["body"]
    assert chart["body"] == "Queue and SLA breaches per day, 14 days to 23.11"
    assert chart["file_path"].endswith("-en.png")


async def test_the_chart_is_a_phone_sized_png(services: Services) -> None:
    (sent,) = await send_owner_digest(services, NOW)
    assert sent.chart.parent == services.settings.artifacts_dir / "charts"
    assert png_size(sent.chart) == (1200, 900)
    assert 10_000 < sent.chart.stat().st_size < 400_000


async def test_charts_older_than_a_month_are_deleted_and_the_new_one_kept(services: Services) -> None:
    charts = services.settings.artifacts_dir / "charts"
    charts.mkdir(parents=True)
    stale, recent = charts / "digest-owner-2026-09-01-ru.png", charts / "digest-owner-2026-11-01-ru.png"
    for path, days_ago in ((stale, 45), (recent, 20)):
        path.write_bytes(b"png")
        written = time.time() - days_ago * 86400
        os.utime(path, (written, written))

    (sent,) = await send_owner_digest(services, NOW)

    margin = f"margin-{sent.chart.name}"
    assert sorted(p.name for p in charts.glob("*.png")) == sorted([recent.name, sent.chart.name, margin])


async def test_digest_on_demand_goes_to_the_asking_chat_each_time(services: Services, db: Database) -> None:
    await send_owner_digest_now(services, ADMIN, NOW)
    await send_owner_digest_now(services, ADMIN, NOW)  # a double tap in the same minute: one digest
    await send_owner_digest_now(services, ADMIN, NOW + timedelta(minutes=5))
    refs = [row["ref"] for row in await slots(db, ADMIN)]
    assert refs == [
        "digest:now:2026-11-23T0900",
        "digest:now:2026-11-23T0900:chart",
        "digest:now:2026-11-23T0900:margin",
        "digest:now:2026-11-23T0905",
        "digest:now:2026-11-23T0905:chart",
        "digest:now:2026-11-23T0905:margin",
    ]


async def test_the_leads_digest_shows_queues_blockers_overload_and_unacknowledged(
    services: Services, db: Database
) -> None:
    assert await send_leads_digest(services, NOW) == [LEADS_CHAT]
    assert await send_leads_digest(services, NOW + timedelta(hours=1)) == []  # once per day
    (row,) = await slots(db, LEADS_CHAT)
    assert row["ref"] == "digest:leads:2026-11-23"
    body = row["body"]
    # waiting for a manager: 2 orders, p2 past its deadline and stuck
    assert (
        tr("{status}: <b>{n}</b> ({overdue} / {stuck})", "ru").format(
            status=tr("Waiting for a manager", "ru"), n=2, overdue=1, stuck=1
        )
        in body
    )
    # Anna holds three open orders with a capacity of two
    assert (
        "Anna" in body
        and "Boris" not in body.split(tr("<b>Overloaded managers: {n}</b>", "ru").format(n=1))[1]
    )
    assert tr("<b>Unacknowledged signals: {n}</b>", "ru").format(n=2) in body
    assert buttons(row["markup"]) == ["dg:b:", "dg:u:", "dg:m:"]


async def test_the_weekly_retrospective_links_signals_actions_and_effects(
    services: Services, db: Database
) -> None:
    history = History(db)
    last_week = NOW - timedelta(days=5)
    moved, stayed = {"moved_to": "accepted", "minutes": 12}, {"moved_to": None, "minutes": 60}
    await history.signal(11, type="sla.breach", raised=last_week, order_id="o1")
    await history.decision(11, action="remind", at=last_week, effect=moved)
    await history.signal(12, type="sla.breach", raised=last_week, order_id="o2")
    await history.decision(12, action="remind", at=last_week, effect=stayed)
    await history.signal(13, type="order.unassigned", raised=last_week, order_id="p2")
    await history.signal(14, type="sla.breach", raised=NOW - timedelta(days=12))  # the week before: not in it
    async with db.transaction() as conn:
        await set_language(conn, telegram_id=OWNER, lang="en", now=NOW)

    assert await send_weekly_retro(services, NOW) == [OWNER]
    assert await send_weekly_retro(services, NOW + timedelta(days=1)) == []  # once per week
    (row,) = await slots(db, OWNER)
    assert row["ref"] == "digest:retro:2026-11-16"
    body = row["body"]
    assert "Weekly retrospective · 16.11–22.11" in body
    assert "Signals: 3 · action helped: 50% (1 of 2)" in body
    assert "<b>SLA breach</b>: 2 · action helped 50% (1 of 2) · no action 0" in body
    assert "#11 · order o1: remind → effect: the order moved to accepted after 12 min" in body
    assert "#13 · order p2: no action taken" in body
    assert "#14" not in body
    assert buttons(row["markup"]) == ["dg:r:20261116"]

    await send_details(services, OWNER, "r", NOW, week="20261116")
    details = (await slots(db, OWNER))[-1]["body"]
    assert "#11" in details and "#12" in details and "#13" in details


async def test_detail_buttons_write_their_section_and_refuse_unknown_ones(
    services: Services, db: Database
) -> None:
    for section in ("k", "c", "s", "b", "u", "m"):
        await send_details(services, ADMIN, section, NOW)
    bodies = [row["body"] for row in await slots(db, ADMIN)]
    assert len(bodies) == 6
    assert (
        "p90" in bodies[0] and "Anna" in bodies[0]
    )  # the KPI table: per-status times, throughput per manager
    assert "#1" in bodies[2] and "#2" in bodies[2] and "#3" not in bodies[2]  # critical and high only
    assert "#1" in bodies[4] and "#3" not in bodies[4]  # #3 was acknowledged
    with pytest.raises(UnknownSection):
        await send_details(services, ADMIN, "x", NOW)
    with pytest.raises(UnknownSection):
        await send_details(services, ADMIN, "r", NOW, week="2026-13-99")


# --- end to end: the real bot against the Bot API emulator ------------------------------------------------


async def _stage_morning(db: Database) -> None:
    history = History(db)
    await history.manager("anna", "Anna", 1001, capacity=2)
    await history.order("p1", [(PM, ago(0, 10))])
    await history.order("p2", [(PM, ago(80))], breach_after=timedelta(minutes=15))
    await history.order("o1", [(PM, ago(40)), (AC, ago(39)), (IN, ago(30))], manager="anna")
    await history.signal(1, type="sla.breach", severity="critical", raised=ago(2), owner=1001, order_id="o1")


async def test_the_scheduled_digest_reaches_the_owner_as_text_and_photo_in_both_languages(
    harness: Any,
) -> None:
    await _stage_morning(harness.services.db)

    await owner_digest(harness.services)  # the scheduler's job function
    await harness.settle()
    text, photo, margin = harness.emulator.transcript(OWNER)
    assert (text.kind, photo.kind, margin.kind) == ("text", "photo", "photo")
    # Russian by default: the catalog's texts, Russian number forms (1 of 3 open orders stuck)
    assert tr("<b>☀️ Morning digest · {day}</b>", "ru").format(day="23.11").removeprefix("<b>").split("<")[
        0
    ] in (text.text or "")
    assert "33,3%" in (text.text or "")
    assert [data for _, data in text.buttons] == ["dg:k:", "dg:c:", "dg:s:", "dg:b:"]
    assert photo.photo_bytes is not None and photo.photo_bytes[:8] == PNG_SIGNATURE
    assert photo.caption == tr("Queue and SLA breaches per day, 14 days to {day}", "ru").format(day="23.11")

    # The owner switches to English; the next morning's digest is in English.
    harness.emulator.send_text(OWNER, "/lang en")
    await harness.settle()
    harness.clock.advance(timedelta(days=1))
    await owner_digest(harness.services)
    await harness.settle()
    text_en, photo_en, _ = [m for m in harness.emulator.transcript(OWNER) if m.kind in ("text", "photo")][-3:]
    assert (text_en.text or "").startswith("☀️ Morning digest · 24.11")
    assert "33.3%" in (text_en.text or "")
    assert photo_en.caption == "Queue and SLA breaches per day, 14 days to 24.11"
    assert photo_en.photo_bytes is not None and photo_en.photo_bytes[:8] == PNG_SIGNATURE

    # The details are behind the buttons.
    harness.emulator.press(OWNER, OWNER, "KPI table")
    await harness.settle()
    table = harness.emulator.last_message(OWNER)
    assert (
        table is not None
        and "KPIs, 24 h to 24.11 09:00" in (table.text or "")
        and "p90" in (table.text or "")
    )
    assert harness.emulator.unanswered_callbacks() == []


async def test_kpi_and_digest_commands_check_the_callers_rights(harness: Any) -> None:
    await _stage_morning(harness.services.db)
    lead = 301
    harness.emulator.send_text(lead, "/kpi")
    harness.emulator.send_text(lead, "/digest")
    await harness.settle()
    refusals = [m.text for m in harness.emulator.transcript(lead)]
    assert refusals == [
        tr("Only admins can use /kpi.", "ru"),
        tr("Only the owner and admins can use /digest.", "ru"),
    ]

    harness.emulator.send_text(ADMIN, "/kpi")
    await harness.settle()
    table = harness.emulator.last_message(ADMIN)
    assert table is not None and "p90" in (table.text or "")

    harness.emulator.send_text(OWNER, "/digest")
    await harness.settle()
    assert [m.kind for m in harness.emulator.transcript(OWNER)] == ["text", "photo", "photo"]

    # A forged press: a lead asking for the owner's KPI table, and data that does not parse.
    message_id = harness.emulator.transcript(OWNER)[0].message_id
    harness.emulator.send_text(lead, "/start")
    await harness.settle()
    own = harness.emulator.last_message(lead)
    assert own is not None
    harness.emulator.press_button(lead, lead, own.message_id, "dg:k:")
    harness.emulator.press_button(OWNER, OWNER, message_id, "dg:zz:")
    harness.emulator.press_button(OWNER, OWNER, message_id, "dg:r:2026-99")
    await harness.settle()
    answers = [call.get("text") for call in harness.emulator.calls_of("answerCallbackQuery")]
    assert answers == [
        tr("These details are not for you.", "ru"),
        tr("This button is outdated; ask for a new digest.", "ru"),
        tr("This button is outdated; ask for a new digest.", "ru"),
    ]
    assert harness.emulator.last_message(lead) == own  # nothing was sent for the forged presses
