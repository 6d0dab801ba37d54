"""Sanctions screening: names across Latin and Cyrillic spellings, aliases and company names match the small
made-up list in tests/data; near-misses do not; a malformed list is refused with its line and the old list
stays in force; an import re-screens open orders, holds a hit from dispatch and raises the critical signal;
coverage counts the orders screened against the list in force."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from backbone.commands import act
from backbone.sweep import sweep_signals
from bot.i18n import in_locale
from circles.digest_sections import circle_news
from circles.governance.kpi import governance_kpis
from circles.governance.sanctions import ListRefused, import_list
from circles.sales_ops.dispatcher import dispatch_pending
from domain.sanctions import ListError, NameIndex, parse_list, skeleton
from domain.signals import Actor, DecideAction, SignalCommand
from domain.statuses import Status
from keyboards.circle_views import circle_news_text
from tests.support.order_world import ADMIN, add_manager, add_order, clock_of, make_services, rows

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
SMALL = DATA / "sanctions_small.csv"
MALFORMED = DATA / "sanctions_malformed.csv"


@pytest.fixture(scope="module")
def index() -> NameIndex:
    listed = parse_list(SMALL.read_bytes())
    return NameIndex.build((e.id, e.name, e.names) for e in listed.entries)


@pytest.mark.parametrize(
    "spelling", ["Vladimir Ivanov", "Wladimir Iwanow", "Владимир Иванов", "IVANOV, Vladimir"]
)
def test_transliterations_of_one_person_are_one_skeleton_and_hit(index: NameIndex, spelling: str) -> None:
    assert skeleton(spelling) == "ivanov vladimir"
    match = index.best(spelling, 90)
    assert match is not None and match.entry_id == "test-person-ivanov" and match.score >= 90


def test_an_alias_hits_with_the_alias_named(index: NameIndex) -> None:
    match = index.best("Arkadij Schmurkin", 90)
    assert match is not None
    assert (match.entry_id, match.entry_name) == ("test-person-zhmurkin", "Arkadiy Zhmurkin")
    german = index.best("Nordwind Handel", 90)
    assert german is not None and german.matched_name == "Nordwind Handel GmbH"


def test_a_company_name_hits_whatever_its_legal_form(index: NameIndex) -> None:
    for seller in ("Veloimport Ural GmbH", "ООО Велоимпорт Урал", "VELO-IMPORT URAL LLC"):
        match = index.best(seller, 90)
        assert match is not None and match.entry_id == "test-company-veloimport", seller


@pytest.mark.parametrize(
    "name", ["Vladislav Ivanov", "Anna Ivanova", "Ivanov", "Northwind Cycles GmbH", "Vladimir Ivanenko"]
)
def test_near_misses_do_not_hit(index: NameIndex, name: str) -> None:
    assert index.best(name, 90) is None


def test_a_malformed_list_names_the_line_and_the_reason() -> None:
    with pytest.raises(ListError) as caught:
        parse_list(MALFORMED.read_bytes())
    assert caught.value.line == 3
    assert "13 fields, the header has 16" in caught.value.reason
    with pytest.raises(ListError, match="line 1: missing column"):
        parse_list(b"id,name\nx,Someone\n")


async def test_import_rescreens_open_orders_and_holds_a_hit_from_dispatch(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        now = services.clock.now()
        await add_manager(services, "anna", 1001)
        await add_order(services, "BW-1", client_name="Lena Fischer", seller="Wladimir Iwanow")
        await add_order(services, "BW-2", client_name="Vladislav Ivanov", seller="Radhaus Leipzig")
        await add_order(services, "BW-3", status=Status.DELIVERED, seller="Велоимпорт Урал")

        report = await import_list(services.db, SMALL, now, threshold=90, settings=services.settings)
        assert (report.changed, report.screened, report.hits) == (True, 2, 1)

        holds = await rows(services, "SELECT * FROM compliance_holds")
        assert len(holds) == 1
        hold = holds[0]
        assert (hold["order_id"], hold["party"], hold["entry_id"]) == ("BW-1", "seller", "test-person-ivanov")
        assert hold["score"] == 100 and hold["list_version"] == report.version
        signal = (await rows(services, "SELECT * FROM ai_signals WHERE id = ?", hold["signal_id"]))[0]
        assert (signal["type"], signal["severity"], signal["needs_decision"]) == (
            "compliance.sanctions_hit",
            "critical",
            1,
        )
        pending = await rows(services, "SELECT * FROM ai_decisions WHERE signal_id = ?", signal["id"])
        assert [(d["action"], d["state"]) for d in pending] == [("sanctions_review", "pending_approval")]

        dispatched = await dispatch_pending(services)
        assert list(dispatched.offered) == ["BW-2"]

        # The digests' governance section names the held order until someone decides.
        news = await circle_news(services, now)
        assert news.held_orders == [("BW-1", "Владимир Петрович Иванов", 100.0)]
        with in_locale("en"):
            section = circle_news_text(news)
        assert "Governance" in section and "BW-1" in section

        # The same file again changes nothing; the hit is not raised twice.
        again = await import_list(services.db, SMALL, now, threshold=90, settings=services.settings)
        assert not again.changed
        assert len(await rows(services, "SELECT * FROM compliance_holds")) == 1
        assert ADMIN in json.loads(signal["ping_chats"])  # admins decide, wherever a critical signal goes
    finally:
        await services.db.close()


async def test_a_malformed_list_is_refused_and_the_old_list_stays(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        now = services.clock.now()
        first = await import_list(services.db, SMALL, now, threshold=90, settings=None)
        with pytest.raises(ListRefused, match=r"line 3: 13 fields.*the list in force stays"):
            await import_list(services.db, MALFORMED, now, threshold=90, settings=None)
        in_force = await rows(services, "SELECT version, entries FROM sanctions_lists WHERE in_force = 1")
        assert in_force == [{"version": first.version, "entries": 4}]
    finally:
        await services.db.close()


async def test_coverage_is_the_share_of_new_orders_screened_against_the_list_in_force(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        clock = clock_of(services)
        start = clock.now() - timedelta(hours=1)
        assert (await governance_kpis(services.db.conn, (start, clock.now())))[
            "sanctions_screen_coverage"
        ] is None
        await add_order(services, "BW-1", client_name="Lena Fischer")
        await add_order(services, "BW-2", status=Status.CANCELLED)
        kpis = await governance_kpis(services.db.conn, (start, clock.now()))
        assert kpis["sanctions_screen_coverage"] == 0.0
        await import_list(services.db, SMALL, clock.now(), threshold=90, settings=None)
        await add_order(services, "BW-3")  # stored without the sync: never screened
        kpis = await governance_kpis(services.db.conn, (start, clock.now()))
        assert kpis["sanctions_screen_coverage"] == pytest.approx(
            1 / 3, abs=1e-4
        )  # the cancelled one was not open
        assert kpis["sanctions_list_version"] is not None
    finally:
        await services.db.close()


async def test_a_confirmed_hit_cancels_the_order_and_a_cleared_one_stays_cleared(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        now = services.clock.now()
        await add_order(services, "BW-1", seller="Northwind Trading Ltd")
        await add_order(services, "BW-2", client_name="Arkadij Schmurkin")
        await import_list(services.db, SMALL, now, threshold=90, settings=services.settings)
        holds = {
            h["order_id"]: h["signal_id"] for h in await rows(services, "SELECT * FROM compliance_holds")
        }
        admin = Actor(ADMIN, staff=True, approver=True)

        rejected = await act(
            services, SignalCommand(holds["BW-1"], DecideAction.REJECT, "confirmed"), admin, now
        )
        approved = await act(
            services, SignalCommand(holds["BW-2"], DecideAction.APPROVE, "namesake"), admin, now
        )
        assert rejected.refusal is None and approved.refusal is None
        orders = {o["id"]: o["status"] for o in await rows(services, "SELECT id, status FROM orders")}
        assert orders == {"BW-1": "cancelled", "BW-2": "pending_manager"}
        outcomes = await rows(services, "SELECT order_id, outcome FROM compliance_holds ORDER BY order_id")
        assert [(o["order_id"], o["outcome"]) for o in outcomes] == [
            ("BW-1", "cancelled"),
            ("BW-2", "false_positive"),
        ]

        # A new version of the list with the same entry does not hold the cleared order again.
        changed = tmp_path / "list_v2.csv"
        changed.write_bytes(SMALL.read_bytes() + b"test-extra,Person,Gleb Extraov,,,,,,,,,,Test List,,,\n")
        report = await import_list(services.db, changed, now, threshold=90, settings=services.settings)
        assert report.changed and report.screened == 1 and report.hits == 0  # BW-2 is the one open order
    finally:
        await services.db.close()


async def test_a_sanctions_hit_settled_by_a_decision_asks_for_no_postmortem(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        await add_order(services, "BW-1", seller="Northwind Trading Ltd")
        await import_list(services.db, SMALL, services.clock.now(), threshold=90, settings=services.settings)
        clock_of(services).advance(timedelta(hours=25))
        report = await sweep_signals(services, services.clock.now())
        assert report.postmortems_missing == 0
        assert await rows(services, "SELECT * FROM ai_signals WHERE type = 'postmortem.missing'") == []
    finally:
        await services.db.close()


def test_the_import_command_refuses_a_malformed_list_with_exit_2_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "sanctions", "import", str(path)],
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_PATH": str(tmp_path / "bot.db")},
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run(SMALL)
    assert first.returncode == 0 and "4 entries" in first.stdout, first.stderr
    refused = run(MALFORMED)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "line 3: 13 fields, the header has 16; the list in force stays" in refused.stderr
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT entries FROM sanctions_lists WHERE in_force = 1").fetchall() == [(4,)]
