"""The command line: --help everywhere, exit code 2 with one clear message on bad configuration."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "run",
    "demo",
    "simulate",
    "migrate",
    "sync",
    "simulator",
    "check-config",
    "baseline",
    "sanctions",
]


def _main(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = _main(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_unknown_command_is_exit_2() -> None:
    result = _main("launch")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_bad_configuration_names_every_bad_key_without_traceback(tmp_path: Path) -> None:
    result = _main(
        "check-config",
        env={"TIMEZONE": "Mars/Olympus", "ADMIN_IDS": "12,abc", "BOT_TOKEN": "not-a-token"},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for key in ("TIMEZONE", "ADMIN_IDS", "BOT_TOKEN"):
        assert key in result.stderr


def test_bad_policy_file_is_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = "x"\n[budgets.inspection]\nminutes = -5\nclock = "lunar"\nseverity = "high"\n'
    )
    result = _main("check-config", env={"POLICY_FILE": str(policy)}, cwd=tmp_path)
    assert result.returncode == 2
    assert "policy.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_a_token_says_what_is_missing(tmp_path: Path) -> None:
    result = _main("run", env={"DATABASE_PATH": str(tmp_path / "x.db")}, cwd=tmp_path)
    assert result.returncode == 2
    assert "BOT_TOKEN" in result.stderr


def test_check_config_accepts_the_shipped_defaults(tmp_path: Path) -> None:
    result = _main("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_baseline_is_imported_from_csv_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "kpi.db")}
    good = tmp_path / "baseline.csv"
    good.write_text("metric,value\npending_manager_orders,12\nstuck_share,0.25\n")
    result = _main("baseline", str(good), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 values imported" in result.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("name,amount\nx,1\n")
    result = _main("baseline", str(bad), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "metric,value" in result.stderr and "Traceback" not in result.stderr

    rows = sqlite3.connect(tmp_path / "kpi.db").execute(
        "SELECT metric, value FROM kpi_baseline ORDER BY metric"
    )
    assert rows.fetchall() == [("pending_manager_orders", 12.0), ("stuck_share", 0.25)]
