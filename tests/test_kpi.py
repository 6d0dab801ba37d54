"""KPIs on hand-built histories whose right answers are worked out here: the pure formulas (domain/kpi.py),
then the same numbers through the store (circles/sales_ops/kpi.py over a real SQLite file), snapshots and
baselines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from circles.sales_ops.kpi import (
    BaselineError,
    backfill_snapshots,
    compute_kpis,
    ensure_baseline,
    import_baseline,
    kpi_overview,
    take_daily_snapshot,
)
from domain.kpi import (
    BREACH_RATE,
    COMPLETENESS,
    COVERAGE,
    CRITICAL_BREACH_RATE,
    PENDING,
    STUCK,
    THROUGHPUT,
    TTN_MEDIAN,
    Change,
    DurationStats,
    Escalation,
    MetricKey,
    OpenOrder,
    Queue,
    Ratio,
    RetroAction,
    RetroSignal,
    Visit,
    Window,
    action_helped,
    average_days,
    breach_rates,
    breaches_in,
    critical_breach_rate,
    escalation_completeness,
    median,
    owner_coverage,
    pending_manager_orders,
    percentile,
    queues,
    retro_helped,
    retrospective,
    stuck_share,
    success_criteria,
    throughput_per_manager,
    throughput_total,
    time_to_next_status,
)
from domain.statuses import STATUS_ORDER
from storage import kpi as kpi_store
from storage.db import Database
from tests.support.kpi_history import NOW, History, make_services

PM, AC, IN, AW, RS, TR, DL, CX = STATUS_ORDER
DAY = Window.ending(NOW)


def ago(hours: float = 0, minutes: float = 0) -> datetime:
    return NOW - timedelta(hours=hours, minutes=minutes)


# --- statistics -------------------------------------------------------------------------------------------


def test_median_and_nearest_rank_p90_on_hand_computed_samples() -> None:
    ten = [100, 10, 90, 20, 80, 30, 70, 40, 60, 50]
    assert median(ten) == 55  # (50 + 60) / 2
    assert percentile(ten, 0.9) == 90  # rank ceil(0.9 * 10) = 9 of the sorted values
    assert median([5, 1, 3]) == 3
    assert percentile([5, 1, 3], 0.9) == 5  # rank ceil(2.7) = 3
    assert percentile([7], 0.9) == 7
    assert median([]) is None and percentile([], 0.9) is None


# --- time to next status --------------------------------------------------------------------------------


def test_time_to_next_status_counts_forward_visits_that_ended_in_the_window() -> None:
    visits = [
        # inspection visits that ended in the window: 60, 120, 180, 240 min
        Visit("o1", IN, ago(5), ago(4), AW),
        Visit("o2", IN, ago(6), ago(4), AW),
        Visit("o3", IN, ago(7), ago(4), AW),
        Visit("o4", IN, ago(8), ago(4), AW),
        # the same order re-entering inspection: a second visit of 30 min counts on its own
        Visit("o1", IN, ago(3), ago(2, 30), AW),
        # ended by a cancellation: not a step forward, left out
        Visit("o5", IN, ago(20), ago(1), CX),
        # ended before the window: left out
        Visit("o6", IN, ago(40), ago(30), AW),
        # still in the status: left out
        Visit("o7", IN, ago(2)),
        # pending_manager: 12 min
        Visit("o8", PM, ago(1, 12), ago(1), AC),
    ]
    stats = time_to_next_status(visits, DAY)
    # inspection durations sorted: 30, 60, 120, 180, 240 -> median 120, p90 rank ceil(4.5) = 5 -> 240
    assert stats[IN] == DurationStats(5, 120.0, 240.0)
    assert stats[PM] == DurationStats(1, 12.0, 12.0)
    # an empty window for a status is "no data", not zero minutes
    assert stats[RS] == DurationStats(0, None, None)
    assert set(stats) == {PM, AC, IN, AW, RS, TR}


# --- SLA breach rate -------------------------------------------------------------------------------------


def test_breach_rate_is_breached_visits_over_visits_finished_or_breached_in_the_window() -> None:
    visits = [
        Visit("a", IN, ago(30), ago(2), AW, breach_at=ago(3)),  # finished here, breached here -> 1/1
        Visit(
            "b", IN, ago(50), ago(2), AW, breach_at=ago(26)
        ),  # finished here, breached yesterday -> breached
        Visit("c", IN, ago(10), ago(5), AW, breach_at=ago(1)),  # finished here on time
        Visit("d", IN, ago(10), None, None, breach_at=ago(4)),  # still open, budget ran out here -> breached
        Visit("e", IN, ago(5), None, None, breach_at=NOW + timedelta(hours=3)),  # open, not due: not counted
        Visit("f", IN, ago(10), ago(3), CX, breach_at=ago(1)),  # cancelled in time: a finished, on-time visit
        Visit("g", IN, ago(10), ago(2), AW, breach_at=ago(2)),  # left exactly at the deadline: on time
        Visit("h", IN, ago(80), ago(30), AW, breach_at=ago(40)),  # finished and breached before the window
        Visit("i", PM, ago(1), ago(0, 50), AC, breach_at=ago(0, 45)),  # pending, on time
    ]
    rates = breach_rates(visits, DAY)
    # inspection: counted a b c d f g (6), breached a b d (3)
    assert rates[IN] == Ratio(3, 6)
    assert rates[IN].value == 0.5
    assert rates[PM] == Ratio(0, 1)
    assert rates[RS].value is None  # nothing finished: "—", not 0 %
    # the chart's breaches of the day: budgets that ran out inside the window (a, d)
    assert breaches_in(visits, DAY) == 2


def test_critical_breach_rate_pools_the_visits_of_the_high_budget_statuses() -> None:
    rates = {
        PM: Ratio(1, 10),
        IN: Ratio(3, 5),
        RS: Ratio(0, 5),
        AC: Ratio(9, 9),
        AW: Ratio(0, 0),
        TR: Ratio(0, 0),
    }
    pooled = critical_breach_rate(rates)
    assert pooled == Ratio(4, 20)  # accepted's 9/9 is not a critical stage
    assert pooled.value == 0.2


# --- open orders: queue, stuck share, coverage -----------------------------------------------------------


def test_pending_queue_stuck_share_and_owner_coverage_over_open_orders() -> None:
    orders = [
        OpenOrder("1", PM, ago(0, 5), True, True),
        OpenOrder("2", PM, ago(73), False, True),  # stuck and without an owner
        OpenOrder("3", IN, ago(72), True, True),  # exactly 72 h: stuck
        OpenOrder("4", TR, ago(71, 59), True, False),  # no next step
        OpenOrder("5", AW, ago(200), True, True),
    ]
    assert pending_manager_orders(orders) == 2
    assert stuck_share(orders, NOW) == Ratio(3, 5)
    assert stuck_share(orders, NOW, stuck_hours=100) == Ratio(1, 5)
    assert owner_coverage(orders) == Ratio(3, 5)
    # rebuilt from history nobody knows who owned what: no coverage rather than a made-up one
    assert owner_coverage([OpenOrder("1", PM, ago(1))]) is None
    assert stuck_share([], NOW).value is None
    coverage = owner_coverage([])
    assert coverage is not None and coverage.value is None


def test_queues_and_grouped_rows_count_every_order() -> None:
    orders = [
        OpenOrder("1", PM, ago(1), True, True, overdue=True),
        OpenOrder("", PM, ago(80), False, True, overdue=False, count=3),  # three alike orders, stuck
        OpenOrder("", IN, ago(5), True, False, overdue=False, count=2),
    ]
    assert pending_manager_orders(orders) == 4
    assert stuck_share(orders, NOW) == Ratio(3, 6)
    assert owner_coverage(orders) == Ratio(1, 6)
    by_status = queues(orders, NOW)
    assert by_status[PM] == Queue(PM, orders=4, overdue=1, stuck=3, stalled=4)
    assert by_status[IN] == Queue(IN, orders=2)
    assert by_status[RS] == Queue(RS)  # empty queues are listed too
    assert list(by_status) == [PM, AC, IN, AW, RS, TR]


# --- throughput --------------------------------------------------------------------------------------------


def test_throughput_counts_forward_moves_per_manager_per_day() -> None:
    window = Window.ending(NOW, timedelta(days=2))
    visits = [
        Visit("o1", PM, ago(40), ago(39), AC, manager_id="anna"),
        Visit("o1", AC, ago(39), ago(30), IN, manager_id="anna"),
        # o2 goes inspection -> awaiting_client, back, and forward again: one move to awaiting_client
        Visit("o2", IN, ago(20), ago(10), AW, manager_id="anna"),
        Visit("o2", AW, ago(10), ago(9), IN, manager_id="anna"),  # backwards: not a move forward
        Visit("o2", IN, ago(9), ago(8), AW, manager_id="anna"),
        Visit("o3", IN, ago(5), ago(4), CX, manager_id="anna"),  # cancelled: not throughput
        Visit("o4", RS, ago(20), ago(2), TR, manager_id="boris"),
        Visit("o5", PM, ago(70), ago(60), AC, manager_id="boris"),  # before the window
        Visit("o6", PM, ago(3), ago(2), AC),  # nobody to credit
    ]
    assert throughput_per_manager(visits, window) == {"anna": 1.5, "boris": 0.5}  # 3 and 1 moves in 2 days
    assert throughput_total(visits, window) == 2.5  # 5 moves in 2 days, o6 included


# --- escalation completeness ------------------------------------------------------------------------------


def test_escalation_completeness_needs_owner_deadline_and_resolution() -> None:
    escalations = [
        Escalation(1, ago(1), 301, ago(3), "called the seller"),
        Escalation(2, ago(2), 301, ago(3), "   "),  # blank resolution
        Escalation(3, ago(3), None, ago(4), "done"),  # nobody owned it
        Escalation(4, ago(4), 302, None, "done"),  # no deadline
        Escalation(5, ago(30), None, None, None),  # resolved before the window
    ]
    assert escalation_completeness(escalations, DAY) == Ratio(1, 4)
    assert escalation_completeness([], DAY).value is None


# --- comparisons and criteria -----------------------------------------------------------------------------


def test_change_vs_a_reference() -> None:
    assert Change(12, 20).delta == -8
    assert Change(12, 20).relative == -0.4
    assert Change(3, 0).relative is None  # no relative change from zero
    assert Change(None, 5).delta is None
    assert Change(5, None).relative is None


def test_baseline_averages_each_metric_over_the_days_that_have_it() -> None:
    days: list[dict[MetricKey, float | None]] = [
        {(PENDING, ""): 10.0, (STUCK, ""): None},
        {(PENDING, ""): 20.0, (STUCK, ""): 0.2},
        {(PENDING, ""): 30.0, (STUCK, ""): None},
    ]
    assert average_days(days) == {(PENDING, ""): 20.0, (STUCK, ""): 0.2}
    assert average_days([{(COVERAGE, ""): None}]) == {(COVERAGE, ""): None}


def test_success_criteria_with_baseline_today_target_and_met() -> None:
    baseline = {(PENDING, ""): 20.0, (STUCK, ""): 0.10, (CRITICAL_BREACH_RATE, ""): 0.25}
    today = {
        (PENDING, ""): 14.0,  # -30 % exactly: met
        (STUCK, ""): 0.07,  # -30 %, the target is -40 % = 0.06: not met
        (CRITICAL_BREACH_RATE, ""): 0.10,  # must be below 10 %: not met
        (COVERAGE, ""): 1.0,
        (COMPLETENESS, ""): None,  # nothing resolved today: unknown
    }
    by_key = {c.rule.key: c for c in success_criteria(today, baseline)}
    assert by_key["pending_manager"].target == 14.0 and by_key["pending_manager"].met is True
    assert by_key["stuck_share"].target == 0.06 and by_key["stuck_share"].met is False
    assert by_key["critical_breach_rate"].target == 0.10 and by_key["critical_breach_rate"].met is False
    assert by_key["critical_breach_rate"].baseline == 0.25
    assert by_key["owner_coverage"].met is True
    assert by_key["escalation_completeness"].met is None
    assert by_key["pending_manager"].change.relative == pytest.approx(-0.3)
    # without a baseline a relative target is unknown, an absolute one is not
    no_baseline = {c.rule.key: c for c in success_criteria(today, {})}
    assert no_baseline["pending_manager"].target is None and no_baseline["pending_manager"].met is None
    assert no_baseline["owner_coverage"].met is True


# --- the weekly retrospective ------------------------------------------------------------------------------


def test_retrospective_groups_signals_by_type_with_the_share_whose_action_helped() -> None:
    moved = {"moved_to": "accepted", "minutes": 12}
    stayed = {"moved_to": None, "minutes": 60}
    signals = [
        RetroSignal(
            1, "sla.breach", "high", "resolved", "o1", ago(50), (RetroAction("remind", "auto", moved),)
        ),
        RetroSignal(
            2, "sla.breach", "high", "resolved", "o2", ago(40), (RetroAction("remind", "auto", stayed),)
        ),
        RetroSignal(
            3,
            "sla.breach",
            "high",
            "open",
            "o3",
            ago(30),
            (RetroAction("remind", "auto", stayed), RetroAction("reassign", "human", moved)),
        ),
        RetroSignal(4, "sla.breach", "high", "open", "o4", ago(20)),  # no action yet
        RetroSignal(
            5, "order.unassigned", "high", "open", "o5", ago(10), (RetroAction("assign", "auto", None),)
        ),
    ]
    groups = retrospective(signals)
    assert [g.type for g in groups] == ["sla.breach", "order.unassigned"]
    breach = groups[0]
    assert breach.actions == {"remind": 3, "reassign": 1}
    assert breach.helped == Ratio(2, 3)  # 1 and 3 helped, 2 did not, 4 had no action
    assert breach.without_action == 1
    assert groups[1].helped == Ratio(0, 0)  # effect not observed yet
    assert retro_helped(groups) == Ratio(2, 3)
    assert action_helped({"moved_to": "cancelled", "minutes": 5}) is False
    assert action_helped({"helped": True}) is True
    assert action_helped({"note": "x"}) is None


def test_a_window_knows_its_length_and_bounds() -> None:
    window = Window(ago(48), NOW)
    assert window.days == 2
    assert ago(48) in window and NOW not in window
    with pytest.raises(ValueError):
        Window(NOW, ago(1))


# === the same KPIs through the store ========================================================================


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "kpi.db")
    yield database
    await database.close()


async def test_kpis_from_a_hand_built_history_in_sqlite(db: Database, tmp_path: Path) -> None:
    services = make_services(db, tmp_path)
    history = History(db)
    await history.manager("anna", "Anna", 1001)
    await history.manager("boris", "Boris", 1002)
    # Waiting for a manager now: one fresh, one for 80 h (stuck, and no owner).
    await history.order("p1", [(PM, ago(0, 10))])
    await history.order("p2", [(PM, ago(80))])
    # Anna accepted after 10 min and inspected for 4 h; every visit has a 3 h budget.
    await history.order(
        "o1",
        [(PM, ago(10)), (AC, ago(9, 50)), (IN, ago(9)), (AW, ago(5))],
        manager="anna",
        breach_after=timedelta(hours=3),
    )
    # Boris accepted after 30 min, then the client cancelled during the inspection.
    await history.order("o2", [(PM, ago(6)), (AC, ago(5, 30)), (IN, ago(5)), (CX, ago(1))], manager="boris")
    # Delivered two days ago: outside the window, not open.
    await history.order("o3", [(PM, ago(100)), (AC, ago(99)), (DL, ago(48))], manager="anna")
    # Resolved escalations of the day: one complete, one without a resolution.
    await history.signal(1, raised=ago(5), resolved=ago(2), owner=301, resolution="reassigned")
    await history.signal(2, raised=ago(5), resolved=ago(1), owner=301, resolution=None)
    await history.signal(3, raised=ago(1), resolved=None, owner=None, resolution=None)

    report = await compute_kpis(services, NOW)

    assert report.pending_manager == 2
    assert report.open_orders == 3  # p1, p2, o1 (awaiting_client); o2 cancelled and o3 delivered are not open
    assert report.stuck == Ratio(1, 3)  # p2
    # p1 and p2 have no owner; o1 has Anna and its awaiting_client visit
    assert report.coverage == Ratio(1, 3)
    # pending_manager -> accepted: 10 min (o1) and 30 min (o2) -> median 20, p90 30
    assert report.time_to_next[PM] == DurationStats(2, 20.0, 30.0)
    assert report.time_to_next[AC] == DurationStats(2, 40.0, 50.0)  # 50 min (o1) and 30 min (o2)
    # the inspection ended by a cancellation is not a time to the next status
    assert report.time_to_next[IN] == DurationStats(1, 240.0, 240.0)
    # inspection visits finished today: o1 (breached at 6 h ago) and o2 (cancelled, in time) -> 1/2
    assert report.breach_rates[IN] == Ratio(1, 2)
    assert report.breach_rates[PM] == Ratio(0, 2)
    # critical stages pooled: pending 0/2, inspection 1/2, ready_for_shipment 0/0
    assert report.critical_breach_rate == Ratio(1, 4)
    # o1 is still waiting for the client, 2 h past that visit's deadline: breached while open
    assert report.breach_rates[AW] == Ratio(1, 1)
    assert report.breaches == 2
    # Anna moved o1 three times forward, Boris moved o2 twice (the cancel is not throughput)
    assert report.throughput == {"anna": 3.0, "boris": 2.0}
    assert report.completeness == Ratio(1, 2)
    metrics = report.metrics()
    assert metrics[(TTN_MEDIAN, "pending_manager")] == 20.0
    assert metrics[(BREACH_RATE, "ready_for_shipment")] is None
    assert metrics[(THROUGHPUT, "anna")] == 3.0


async def test_an_empty_store_gives_no_rates_rather_than_zero(db: Database, tmp_path: Path) -> None:
    report = await compute_kpis(make_services(db, tmp_path), NOW)
    assert report.pending_manager == 0
    metrics = report.metrics()
    for key in (
        (STUCK, ""),
        (COVERAGE, ""),
        (CRITICAL_BREACH_RATE, ""),
        (COMPLETENESS, ""),
        (TTN_MEDIAN, "inspection"),
    ):
        assert metrics[key] is None


async def test_the_daily_snapshot_is_taken_once_per_day(db: Database, tmp_path: Path) -> None:
    services = make_services(db, tmp_path)
    history = History(db)
    await history.order("p1", [(PM, ago(1))])
    assert await take_daily_snapshot(services, NOW) is not None
    await history.order("p2", [(PM, ago(0, 30))])
    # a second run the same day (a restart, a repeated job) keeps the first snapshot
    assert await take_daily_snapshot(services, NOW + timedelta(hours=3)) is None
    day = date(2026, 11, 23)
    stored = await kpi_store.snapshots(db, day, day)
    assert stored[day][(PENDING, "")] == 1
    # the next day compares with it
    tomorrow = NOW + timedelta(days=1)
    overview = await kpi_overview(services, tomorrow)
    assert overview.yesterday[(PENDING, "")] == 1
    assert overview.today[(PENDING, "")] == 2


async def test_missed_days_are_rebuilt_from_history(db: Database, tmp_path: Path) -> None:
    services = make_services(db, tmp_path)
    history = History(db)
    # Installed three days ago; one order has waited for a manager since four days ago, another was accepted
    # two days ago after waiting 2 h.
    async with db.transaction() as conn:
        await kpi_store.mark_installed(conn, ago(72))
    await history.manager("anna", "Anna", 1001)
    await history.order("p1", [(PM, ago(96))])
    await history.order("o1", [(PM, ago(51)), (AC, ago(49))], manager="anna")
    days = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
    assert await backfill_snapshots(services, days, NOW) == 3
    stored = await kpi_store.snapshots(db, days[0], days[-1])
    # at 09:00 local on the 21st (ago 48 h) o1 had been accepted an hour before: one order waiting
    assert stored[date(2026, 11, 21)][(PENDING, "")] == 1
    # on the 20th (ago 72 h) only p1 existed
    assert stored[date(2026, 11, 20)][(PENDING, "")] == 1
    assert stored[date(2026, 11, 21)][(TTN_MEDIAN, "pending_manager")] == 120.0
    # at the 22nd's snapshot (ago 24 h) p1 has had no change for 72 h, o1 (accepted) for 25 h: 1 of 2 stuck
    assert stored[date(2026, 11, 22)][(STUCK, "")] == 0.5
    # nobody knows from history who owned what
    assert stored[date(2026, 11, 22)][(COVERAGE, "")] is None
    assert await backfill_snapshots(services, days, NOW) == 0  # nothing missing any more


async def test_the_baseline_is_the_first_14_days_after_install(db: Database, tmp_path: Path) -> None:
    services = make_services(db, tmp_path)
    install = NOW - timedelta(days=20)
    async with db.transaction() as conn:
        await kpi_store.mark_installed(conn, install)
        for n in range(1, 16):
            day = date(2026, 11, 3) + timedelta(days=n)
            await kpi_store.write_snapshot(conn, day, {(PENDING, ""): float(n), (COVERAGE, ""): None})
    baseline = await ensure_baseline(services, NOW)
    assert baseline.source == "install"
    # the 14 days after the install day (Nov 3): 1..14 -> mean 7.5; day 15 is not part of it
    assert baseline.values[(PENDING, "")] == 7.5
    assert baseline.values[(COVERAGE, "")] is None


async def test_before_14_days_have_passed_the_baseline_comes_from_crm_history(
    db: Database, tmp_path: Path
) -> None:
    services = make_services(db, tmp_path)
    history = History(db)
    # The CRM history goes back 30 days: one order waited 2 h for a manager every day (no SLA timers then).
    await history.manager("anna", "Anna", 1001)
    for n in range(1, 31):
        entered = NOW - timedelta(days=n, hours=3)
        await history.order(
            f"h{n}", [(PM, entered), (AC, entered + timedelta(hours=2))], manager="anna", timers=False
        )
    baseline = await ensure_baseline(services, NOW)  # installs now
    assert baseline.source == "history"
    # every day's window holds one 120-minute wait; at 09:00 nobody waits any more
    assert baseline.values[(TTN_MEDIAN, "pending_manager")] == 120.0
    assert baseline.values[(PENDING, "")] == 0.0
    # each wait ran 06:00-08:00 local, before the working day: inside the 15 working-minute budget
    assert baseline.values[(BREACH_RATE, "pending_manager")] == 0.0


async def test_an_imported_baseline_replaces_and_a_bad_file_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    csv_file = tmp_path / "baseline.csv"
    csv_file.write_text("metric,scope,value\npending_manager_orders,,20\nbreach_rate,inspection,0.3\n")
    assert await import_baseline(db, csv_file, NOW) == 2
    stored = await kpi_store.baseline(db)
    assert stored.source == "import"
    assert stored.values == {(PENDING, ""): 20.0, (BREACH_RATE, "inspection"): 0.3}

    json_file = tmp_path / "baseline.json"
    json_file.write_text(json.dumps({"stuck_share": 0.12, "throughput": {"anna": 4}, "owner_coverage": None}))
    assert await import_baseline(db, json_file, NOW) == 3
    assert (await kpi_store.baseline(db)).values[(THROUGHPUT, "anna")] == 4.0

    bad = {
        "a.json": '{"pending_manager_orders": "lots"}',
        "b.json": '{"no_such_metric": 1}',
        "c.json": '{"stuck_share": 40}',
        "d.csv": "name,number\nx,1\n",
        "e.csv": "metric,scope,value\nbreach_rate,nowhere,0.1\n",
        "f.json": "[1, 2]",
        "g.txt": "pending_manager_orders=1",
    }
    for name, text in bad.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(BaselineError) as error:
            await import_baseline(db, path, NOW)
        assert "\n" not in str(error.value) and name in str(error.value)
    assert (await kpi_store.baseline(db)).values[(THROUGHPUT, "anna")] == 4.0
    # an imported baseline is never replaced by the automatic ones
    assert (await ensure_baseline(make_services(db, tmp_path), NOW + timedelta(days=30))).source == "import"
