"""What a circle reports to the panel and the AI-CEO summary: its KPIs with goal, baseline, yesterday and a
daily series, and its owner role (pure data; circles/registry.py collects them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["count", "share", "time"]


@dataclass(frozen=True)
class CircleKpi:
    key: str  # "metric" or "metric:scope"
    label: str  # in the reader's language
    kind: Kind
    value: float | None
    goal: float | None = None
    goal_text: str | None = None  # how the goal reads ("≤ 14", "< 10 %")
    met: bool | None = None
    baseline: float | None = None
    yesterday: float | None = None
    series: tuple[float | None, ...] = ()  # one value per day, oldest first, today last


@dataclass(frozen=True)
class CircleReport:
    circle: str
    owner_role: str  # admin | owner | lead (SPEC §12)
    kpis: tuple[CircleKpi, ...] = field(default_factory=tuple)
