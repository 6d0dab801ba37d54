"""The circles' KPIs (SPEC §14) against a small hand-computed world (tests/support/money_world.py): unit
economics with a refund, an order with two compensations and a leak with two causes; quality; empty windows
give null; `main.py kpi --json` prints the same figures, also while another process holds the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circles.kpi_json import CIRCLE_KPIS, all_kpis, flatten
from circles.quality.kpi import quality_report
from circles.unit_economics.cfo import rules_of
from circles.unit_economics.kpi import delivered, unit_economics_report
from domain.economics import Cause, MoneyOrder, causes, findings
from domain.kpi import Window
from domain.policy import Policy
from storage.db import Database
from tests.support.kpi_history import make_services
from tests.support.money_world import EXPECTED_QUALITY, EXPECTED_UNIT_ECONOMICS, build

ROOT = Path(__file__).resolve().parent.parent
RULES = rules_of(Policy.default())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "bot.db")
    yield database
    await database.close()


def _rounded(values: Mapping[str, object], keys: Mapping[str, object]) -> dict[str, object]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items() if k in keys}


async def test_unit_economics_of_the_hand_world(db: Database) -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await build(db, now)
    report = await unit_economics_report(db, Policy.default(), Window.ending(now))
    assert report.delivered == 4 and report.unpriced == 1
    assert report.net_margin_eur == pytest.approx(365)
    assert report.margin_pct == pytest.approx(365 / 4500)
    assert (report.margin_leak_count, report.margin_leak_eur) == (1, pytest.approx(170))
    assert report.realized_vs_booked == pytest.approx(4350 / 4500)  # O3's refund of 150 counts against it
    assert report.forecast_accuracy == pytest.approx(1 - 350 / 180)
    assert _rounded(report.as_json(), EXPECTED_UNIT_ECONOMICS) == EXPECTED_UNIT_ECONOMICS


async def test_a_leak_names_both_causes_and_the_order_with_two_compensations(db: Database) -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await build(db, now)
    orders = {o.order_id: o for o in await delivered(db, Window.ending(now))}
    o2 = orders["O2"]
    assert o2.compensated == 250 and o2.net == pytest.approx(-10)
    (leak,) = findings(o2, RULES)
    assert (leak.rule, leak.eur, leak.high) == ("negative_margin", 170, True)
    assert leak.causes == (Cause("compensation", 250), Cause("shipping", 50))
    assert leak.correction == "reclaim_compensation"
    # O3: a refund of 150 leaves the sale under-collected (its margin is above the floor).
    (short,) = findings(orders["O3"], RULES)
    assert (short.rule, short.eur) == ("under_collection", 150)


def test_purchase_above_booked_and_under_collection_are_causes_too() -> None:
    from domain.economics import Booking

    order = MoneyOrder(
        "X", datetime(2026, 1, 1, tzinfo=UTC), 1000, 800, 150, 30, collected=900, booking=Booking(20, 700)
    )
    assert causes(order, RULES) == [Cause("purchase", 100), Cause("under_collection", 100)]
    assert [f.rule for f in findings(order, RULES)] == ["margin_floor", "under_collection"]


async def test_quality_of_the_hand_world(db: Database) -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await build(db, now)
    report = await quality_report(db, Policy.default(), Window.ending(now))
    assert (report.compensation_count, report.compensation_eur) == (2, 250)
    assert report.dispute_rate == pytest.approx(0.25)
    assert report.severe_defect_share == pytest.approx(0.5)
    assert report.repeat_incident_rate == pytest.approx(2 / 3)
    assert dict(report.sellers) == {"Shop B": 2, "Shop C": 1}
    assert _rounded(report.as_json(), EXPECTED_QUALITY) == EXPECTED_QUALITY


async def test_an_empty_window_gives_null_never_zero(db: Database, tmp_path: Path) -> None:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await build(db, now)
    services = make_services(db, tmp_path)
    kpis = await all_kpis(services, now - timedelta(days=30))
    names = ("net_margin_eur", "margin_pct", "margin_leak_count", "margin_leak_eur", "realized_vs_booked")
    assert kpis["unit_economics"] == dict.fromkeys([*names, "forecast_accuracy"], None) | {
        "delivered_orders": 0
    }
    quality = kpis["quality"]
    assert (quality["compensation_count"], quality["disputes_opened"]) == (0, 0)  # counts of what happened
    assert (
        quality["dispute_rate"] is quality["severe_defect_share"] is quality["repeat_incident_rate"] is None
    )
    assert set(kpis) >= set(CIRCLE_KPIS) and kpis["revenue"]["lead_to_order_conversion"] is None
    rows = flatten(kpis)
    assert rows[("unit_economics.net_margin_eur", "")] is None


def _kpi_json(db_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_PATH": str(db_path), "TIMEZONE": "UTC"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "kpi", "--json", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_kpi_json_prints_the_same_figures_while_the_bot_holds_the_database(db: Database) -> None:
    now = datetime.now(UTC)
    await build(db, now)
    # The bot's own connection holds the process lock and a write transaction open while kpi --json runs.
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO kv (key, value) VALUES ('held', 'yes')")
        result = _kpi_json(db.path)
        assert result.returncode == 0, result.stderr
    # Nothing was blocked: the write committed after the reader went, and the reader saw only committed data.
    assert [tuple(r) for r in await db.fetchall("SELECT value FROM kv WHERE key = 'held'")] == [("yes",)]
    kpis = json.loads(result.stdout)
    assert list(kpis)[2:] == list(CIRCLE_KPIS)
    assert _rounded(kpis["unit_economics"], EXPECTED_UNIT_ECONOMICS) == EXPECTED_UNIT_ECONOMICS
    assert _rounded(kpis["quality"], EXPECTED_QUALITY) == EXPECTED_QUALITY
    assert kpis["sales_ops"]["open_orders"] == 0 and "scorecards" in kpis["sales_ops"]
    assert set(kpis["governance"]) >= {"sanctions_screen_coverage"}


async def test_kpi_json_over_days_and_its_errors(db: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await build(db, now)
    week = json.loads(_kpi_json(db.path, "--days", "7").stdout)
    assert week["window_days"] == 7 and week["unit_economics"]["delivered_orders"] == 5
    bad = _kpi_json(db.path, "--days", "0")
    assert bad.returncode == 2 and "days" in bad.stderr
    missing = _kpi_json(tmp_path / "nowhere.db")
    assert (
        missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    )


async def test_the_owner_digest_has_a_money_section_and_a_margin_chart(db: Database, tmp_path: Path) -> None:
    from circles.sales_ops.digests import send_leads_digest, send_owner_digest
    from storage.people import set_language
    from tests.support.kpi_history import NOW

    await build(db, NOW)
    services = make_services(db, tmp_path, OWNER_ID=200, LEADS_CHAT_ID=-1001)
    async with db.transaction() as conn:
        await set_language(conn, telegram_id=200, lang="en", now=NOW)
    (sent,) = await send_owner_digest(services, NOW)
    assert sent.chat_id == 200
    rows = await db.fetchall("SELECT ref, body, file_path FROM tg_messages WHERE chat_id = 200 ORDER BY id")
    body = rows[0]["body"]
    # Nothing was delivered yesterday (no value to compare with); the baseline (the 14 days before install)
    # has one day with a delivery: O5, 900 − 600 − 100 − 25 − 50 = 125.
    assert "<b>Money</b> (24 h)" in body and "Net margin 365 €: — vs yesterday, +240 vs baseline" in body
    assert "Leaks: 1 order, 170 €" in body
    assert "O2: 170 € — compensation 250 €, shipping above the usual 50 €" in body
    assert rows[2]["ref"].endswith(":margin") and rows[2]["file_path"].endswith(".png")
    assert await send_leads_digest(services, NOW) == [-1001]
    (leads,) = await db.fetchall("SELECT body FROM tg_messages WHERE chat_id = -1001")
    assert "За этот период SLA не нарушался." in leads["body"]  # the leads chat reads Russian


async def test_the_daily_snapshot_holds_every_circles_kpis_once(db: Database, tmp_path: Path) -> None:
    from circles.kpi_json import take_circle_snapshot
    from storage import kpi as kpi_store
    from tests.support.kpi_history import NOW

    await build(db, NOW)
    services = make_services(db, tmp_path)
    assert not await take_circle_snapshot(services, NOW - timedelta(hours=1))  # before the digest time
    assert await take_circle_snapshot(services, NOW)
    assert not await take_circle_snapshot(services, NOW + timedelta(hours=3))  # once a day
    day = NOW.date()
    stored = (await kpi_store.snapshots(db, day, day))[day]
    assert stored[("unit_economics.net_margin_eur", "")] == 365
    assert stored[("quality.dispute_rate", "")] == 0.25
    assert stored[("quality.incidents_by_seller", "Shop B")] == 2
    assert stored[("revenue.lead_to_order_conversion", "")] is None
