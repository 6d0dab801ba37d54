"""The services one bot process shares with handlers (as `services`), scheduler jobs, agents and the demo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from domain.calendar import WorkingCalendar
from domain.policy import Policy
from storage.db import Database


def _no_wake() -> None:
    """Without a running sender nothing waits to be woken; the rows stay queued in the store."""


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    policy: Policy
    calendar: WorkingCalendar
    # Called after a use case committed outgoing messages: the sender delivers them now, not on its next poll.
    wake_sender: Callable[[], None] = field(default=_no_wake)
    # Where the admin panel answers (WEB_BASE_URL, else its server's own address); None: no panel running.
    web_url: str | None = None
