"""The systemd unit in deploy/: verified by `systemd-analyze` where it exists; its keys checked always."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "bikewerk-bot.service"
INSTALL_DIR = "/opt/bikewerk-bot"


def unit_keys() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_restarts_on_failure_as_its_own_user_with_the_environment_file() -> None:
    unit = unit_keys()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] and service["User"] != "root"
    assert service["EnvironmentFile"].startswith("/")
    assert service["WorkingDirectory"] == INSTALL_DIR
    assert service["ExecStart"] == f"{INSTALL_DIR}/.venv/bin/python main.py run"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        # No systemd here: the key check above is what runs.
        test_the_unit_restarts_on_failure_as_its_own_user_with_the_environment_file()
        return
    # The unit as installed in a folder of this machine, with a real interpreter at the venv's place.
    install = tmp_path / "bikewerk-bot"
    (install / ".venv" / "bin").mkdir(parents=True)
    (install / "data").mkdir()
    (install / ".venv" / "bin" / "python").symlink_to(sys.executable)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALL_DIR, str(install)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert UNIT.name not in result.stderr, result.stderr  # no warning about our unit either
