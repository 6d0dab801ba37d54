"""The circles the panel and the AI-CEO summary read: circle name -> a function giving its KPIs (value, goal,
baseline, yesterday and a daily series for a sparkline) and its owner role.

Filled today with sales_ops; each other circle adds one line to `_SOURCES` when its KPIs exist (issues 14,
15), e.g. `"unit_economics": unit_economics.panel.report`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.services import Services
from circles.sales_ops import panel as sales_ops_panel
from domain.circles import CircleReport

CircleSource = Callable[[Services, datetime], Awaitable[CircleReport]]

_SOURCES: dict[str, CircleSource] = {
    "sales_ops": sales_ops_panel.report,
}

# SPEC §12: every circle's owner role, also for circles whose KPIs are not in the registry yet.
OWNER_ROLES: dict[str, str] = {
    "sales_ops": "lead",
    "unit_economics": "owner",
    "quality": "lead",
    "revenue": "owner",
    "reliability": "admin",
    "governance": "admin",
    "strategy": "owner",
}


def circle_names() -> list[str]:
    return list(_SOURCES)


async def circle_reports(services: Services, now: datetime) -> list[CircleReport]:
    """Every registered circle's report, in registry order."""
    return [await source(services, now) for source in _SOURCES.values()]
