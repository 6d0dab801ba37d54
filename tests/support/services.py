"""The one services builder of the test suite: the `Services` a bot process shares (settings, a real SQLite
file under tmp_path, a ManualClock, the policy and its working calendar), as the use-case tests need them.

    services = await build_services(tmp_path, now=MONDAY_9, ADMIN_IDS="100", DEFAULT_LANGUAGE="en")

Settings keys are the environment names; a developer's .env never leaks in. Each test world
(order_world, sla_world, kpi_history) is a preset of these arguments; the end-to-end harness
(tests/support/harness.py) runs the real BotApp, which builds its services itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bot.config import load_settings
from bot.services import Services
from domain.policy import Policy, calendar_for
from storage.db import Database
from testkit.clocks import ManualClock


async def build_services(
    tmp_path: Path,
    *,
    now: datetime,
    policy: Policy | None = None,
    exclusive: bool = True,
    wake_sender: Callable[[], None] | None = None,
    **env: object,
) -> Services:
    """Services over a new database `tmp_path/bot.db` (`exclusive`: take the process lock, as the bot)."""
    db = await Database.open(tmp_path / "bot.db", exclusive=exclusive)
    return services_on(db, tmp_path, now=now, policy=policy, wake_sender=wake_sender, **env)


def services_on(
    db: Database,
    tmp_path: Path,
    *,
    now: datetime,
    policy: Policy | None = None,
    wake_sender: Callable[[], None] | None = None,
    **env: object,
) -> Services:
    """Services over an open database. `policy`: the shipped one unless given; time zone Europe/Berlin unless
    `TIMEZONE` says otherwise."""
    values: dict[str, object] = {
        "_env_file": None,  # a developer's .env must not leak into tests
        "DATABASE_PATH": str(db.path),
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "TIMEZONE": "Europe/Berlin",
        **env,
    }
    settings = load_settings(**values)
    policy = policy or Policy.default()
    services = Services(
        settings=settings,
        db=db,
        clock=ManualClock(now),
        policy=policy,
        calendar=calendar_for(policy, settings.timezone),
    )
    if wake_sender is not None:
        services.wake_sender = wake_sender
    return services
