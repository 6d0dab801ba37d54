"""`simulate` fitted to a CRM history and checked against days it has not seen (demo/calibration.py,
demo/backtest.py), on histories made by testkit/history.py: a people model of its own (a shared queue,
gamma-distributed looks, own working hours, forgotten steps), which the calibration does not know.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import main
from demo.backtest import BOUND, HistoryData, backtest, fitted_params, read_history
from demo.calibration import Fitted, Quantiles, fit
from demo.simulation import simulate
from domain import kpi
from domain.policy import Policy, calendar_for
from domain.statuses import Status
from storage.db import Database
from storage.history import RecordedOffer, RecordedSignal
from storage.kpi import mark_installed
from testkit.history import TEAM, generate_history, write_history

POLICY = Policy.default()
CALENDAR = calendar_for(POLICY, "Europe/Berlin")
END = date(2026, 12, 4)


def _history(folder: Path, seed: int, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"history-{seed}.sqlite"
    values: dict[str, object] = {"seed": seed, "days": 60, "orders_per_day": 40, "end": END}
    values.update(changes)
    asyncio.run(write_history(path, generate_history(**values)))  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> dict[int, HistoryData]:
    folder = tmp_path_factory.mktemp("histories")
    return {seed: asyncio.run(read_history(str(_history(folder, seed)))) for seed in (1, 2)}


def _cut(history: HistoryData, days: int = 14) -> datetime:
    last = max(at for t in history.timelines for _, at, _ in t.steps).astimezone(CALENDAR.tz).date()
    return datetime.combine(last - timedelta(days=days - 1), datetime.min.time(), CALENDAR.tz).astimezone(UTC)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_backtest_reproduces_the_last_14_days_within_25_percent(
    histories: dict[int, HistoryData], seed: int
) -> None:
    result = backtest(histories[seed], POLICY, CALENDAR, holdout_days=14, seeds=(1, 2, 3))
    assert result.policy == "as_today"  # the history has no install time: nothing of the bot was in force
    assert result.holdout == (date(2026, 11, 20), 14)
    for key in ("pending_manager", "critical_breach_rate", "time_to_accept_median"):
        error = result.errors[key]
        assert error is not None and abs(error) <= BOUND, (key, error, result.actual[key])
    assert result.failures() == []


def test_a_miscalibrated_model_is_caught(histories: dict[int, HistoryData]) -> None:
    history = histories[1]
    fitted = fit(history.timelines, history.managers, history.signals, CALENDAR, _cut(history))
    slow_pickup = backtest(history, POLICY, CALENDAR, seeds=(1, 2), fitted=fitted.scaled(pickup=3))
    assert "time_to_accept_median" in slow_pickup.failures()
    assert "pending_manager" in slow_pickup.failures()
    error = slow_pickup.errors["time_to_accept_median"]
    assert error is not None and error > BOUND
    slow_work = backtest(history, POLICY, CALENDAR, seeds=(1, 2), fitted=fitted.scaled(stages=3))
    assert "critical_breach_rate" in slow_work.failures()


def test_the_fit_tells_the_managers_apart(histories: dict[int, HistoryData]) -> None:
    history = histories[1]
    fitted = fit(history.timelines, history.managers, history.signals, CALENDAR, _cut(history))
    by_id = {m.manager_id: m for m in fitted.managers}
    # Anna looks at the queue every 14 minutes on average, Lukas every 70 and six hours a day; Anna's steps
    # take 0.8 of the usual time, Jonas's 1.3.
    assert by_id["m1"].share > 2 * by_id["m4"].share
    assert by_id["m1"].stages[Status.INSPECTION].median < 0.8 * by_id["m6"].stages[Status.INSPECTION].median
    assert 35 < fitted.orders_per_day < 45
    assert (
        0.05 < fitted.cancel_share[Status.AWAITING_CLIENT] < 0.13
    )  # the history's clients say no 9 % of times
    lines = "\n".join(fitted.lines())
    assert "Anna Petrova (m1) picks up in" in lines and "Max Weber (m2)" in lines
    assert "escalations on record: none" in lines


def test_a_manager_with_little_data_is_pooled_with_the_team() -> None:
    team = Quantiles.of([float(v) for v in range(100, 200)])
    own = Quantiles.of([10.0, 12.0, 14.0, 16.0, 18.0])
    assert team is not None and own is not None
    pooled = own.pooled(team)
    # Five observations against a pool weight of twenty: a fifth of the way from the team to the manager.
    assert pooled.median == pytest.approx((5 * own.median + 20 * team.median) / 25)
    lots = Quantiles.of([10.0 + k % 9 for k in range(300)])
    assert lots is not None and lots.pooled(team) == lots


# --- what-if predictions that hold for reasons in the data --------------------------------------------------


def _what_if(
    history: HistoryData, fitted: Fitted, seed: int = 1
) -> dict[str, dict[kpi.MetricKey, float | None]]:
    arrivals = sorted(t.created_at for t in history.timelines)
    params = fitted_params(fitted, arrivals, date(2026, 11, 20), 14, seed, 14)
    result = simulate(params, POLICY, CALENDAR)
    return {name: outcome.metrics for name, outcome in result.outcomes.items()}


def test_the_bot_gains_most_on_stuck_orders_where_the_history_shows_forgotten_steps(tmp_path: Path) -> None:
    """Orders get stuck for 72 h when a step is forgotten; the bot's reminders and breach signals ask the
    owner before then, which shortens only the long tail of a stage's times. So the predicted gain on stuck
    orders comes from the tail the history shows: a team that never forgot a step leaves the bot less to win
    than one that forgot three times as often as the default team."""
    gains = {}
    for name, forget in (("reliable", 0.0), ("forgetful", 3.0)):
        team = tuple(replace(p, forget=min(0.6, p.forget * forget)) for p in TEAM)
        history = asyncio.run(read_history(str(_history(tmp_path / name, 1, team=team))))
        fitted = fit(history.timelines, history.managers, history.signals, CALENDAR, _cut(history))
        metrics = _what_if(history, fitted)
        today, bot = metrics["as_today"][(kpi.STUCK, "")], metrics["bot"][(kpi.STUCK, "")]
        assert today is not None and bot is not None
        gains[name] = today - bot
    assert gains["forgetful"] > gains["reliable"] + 0.03 > 0.03


def test_as_today_escalation_completeness_is_what_the_history_recorded(
    histories: dict[int, HistoryData],
) -> None:
    history = histories[1]
    cut = _cut(history)
    none = fit(history.timelines, history.managers, history.signals, CALENDAR, cut)
    assert none.completeness == 0.0 and none.escalations == 0
    # A history where leads closed 60 of 100 escalations with a recorded resolution.
    raised = cut - timedelta(days=20)
    signals = [
        RecordedSignal(
            k,
            raised,
            raised + timedelta(hours=5),
            301,
            raised + timedelta(hours=1),
            "fixed" if k < 60 else None,
        )
        for k in range(100)
    ]
    recorded = fit(history.timelines, history.managers, signals, CALENDAR, cut)
    assert recorded.completeness == pytest.approx(0.6)
    predicted = _what_if(history, recorded)["as_today"][(kpi.COMPLETENESS, "")]
    assert predicted is not None and 0.45 < predicted < 0.75
    assert _what_if(history, none)["as_today"][(kpi.COMPLETENESS, "")] == 0.0


# --- the command line ---------------------------------------------------------------------------------------


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(tmp_path)
    for key in ("POLICY_FILE", "TIMEZONE", "DATABASE_PATH"):
        monkeypatch.delenv(key, raising=False)
    return main.main(["simulate", *args])


def test_cli_backtest_prints_the_comparison_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _history(tmp_path, 3, days=30, orders_per_day=20)
    out = tmp_path / "out"
    assert (
        _cli(
            tmp_path,
            monkeypatch,
            "--backtest",
            str(database),
            "--holdout-days",
            "7",
            "--seeds",
            "2",
            "--out",
            str(out),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Backtest: the last 7 days from 2026-11-27 under 'as today', 2 seeds" in printed
    assert "picks up in" in printed and (out / "backtest.html").is_file()
    assert (
        _cli(
            tmp_path,
            monkeypatch,
            "--backtest",
            str(database),
            "--holdout-days",
            "7",
            "--seeds",
            "2",
            "--json",
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"fitted", "predicted", "actual", "errors"}
    for key in ("pending_manager", "critical_breach_rate", "time_to_accept_median", "stuck_share"):
        assert key in data["errors"] and key in data["actual"]
    actual, predicted = data["actual"]["pending_manager"], data["predicted"]["pending_manager"]
    assert data["errors"]["pending_manager"] == pytest.approx((predicted - actual) / actual)
    assert data["fitted"]["managers"]["m1"]["name"] == "Anna Petrova"


def test_cli_backtest_refuses_a_history_too_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _history(tmp_path, 4, days=10, orders_per_day=10)
    assert _cli(tmp_path, monkeypatch, "--backtest", str(database), "--holdout-days", "14") == 2
    assert "needs at least 7 days before" in capsys.readouterr().err
    assert _cli(tmp_path, monkeypatch, "--backtest", str(tmp_path / "nothing.db")) == 2
    assert "no such database file" in capsys.readouterr().err


def test_cli_replay_fits_and_prints_the_people(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _history(tmp_path, 5, days=30, orders_per_day=20)
    assert (
        _cli(
            tmp_path,
            monkeypatch,
            "--replay",
            str(database),
            "--days",
            "7",
            "--seeds",
            "3",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Fitted to the history (people and time)" in printed
    assert "Anna Petrova (m1) picks up in" in printed and "fitted to the history (pick-up" in printed
    assert "Across 3 seeds: median (10th–90th percentile)" in printed and "ranges overlap" in printed
    assert "Anna Petrova" in (tmp_path / "simulate.html").read_text(encoding="utf-8")


def test_the_bots_cards_are_answered_as_the_history_shows(histories: dict[int, HistoryData]) -> None:
    """Where the bot was live, its cards tell how each manager answers them, and the bot's prediction uses
    that instead of a habit: a team that let half its cards expire makes many more misses than one that
    let none."""
    history = histories[1]
    cut = _cut(history)
    day = cut - timedelta(days=10)

    def cards(manager_id: str, expired: int) -> list[RecordedOffer]:
        offers = []
        for k in range(200):
            at = day + timedelta(minutes=7 * k)
            state = "expired" if k < expired else ("declined" if k % 10 == 0 else "accepted")
            answered = None if state == "expired" else at + timedelta(minutes=3)
            offers.append(RecordedOffer(manager_id, state, at, answered))
        return offers

    def misses(expired: int) -> int:
        offers = [c for m in ("m1", "m2", "m3", "m4", "m5", "m6") for c in cards(m, expired)]
        fitted = fit(history.timelines, history.managers, history.signals, CALENDAR, cut, offers)
        m1 = fitted.manager("m1").cards
        assert m1 is not None and m1.count == 200
        assert m1.miss_share == pytest.approx(expired / 200, abs=0.01)
        arrivals = sorted(t.created_at for t in history.timelines)
        result = simulate(fitted_params(fitted, arrivals, date(2026, 11, 20), 14, 1, 14), POLICY, CALENDAR)
        return result.outcomes["bot"].counts.get("misses", 0)

    assert misses(100) > 5 * max(1, misses(0))


def test_the_hold_out_runs_under_the_policy_in_force_then(tmp_path: Path) -> None:
    database = _history(tmp_path, 6, days=30, orders_per_day=15)

    async def install(at: datetime) -> None:
        db = await Database.open(database)
        try:
            async with db.transaction() as conn:
                await mark_installed(conn, at)
        finally:
            await db.close()

    before = asyncio.run(read_history(str(database)))
    assert backtest(before, POLICY, CALENDAR, holdout_days=7, seeds=(1,)).policy == "as_today"
    # The bot went live ten days before the end: the 7-day hold-out is the bot's.
    asyncio.run(install(datetime(2026, 11, 24, 8, tzinfo=UTC)))
    after = asyncio.run(read_history(str(database)))
    assert after.installed_at == datetime(2026, 11, 24, 8, tzinfo=UTC)
    result = backtest(after, POLICY, CALENDAR, holdout_days=7, seeds=(1,))
    assert result.policy == "bot" and result.predicted["pending_manager"].median is not None
