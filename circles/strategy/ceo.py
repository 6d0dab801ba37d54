"""The AI-CEO summary (SPEC §12, Strategy circle): one view over all circles for the owner, daily and on
`/ceo`, and on top of the panel: what needs the owner today (decisions waiting, critical and high signals by
circle with owners and deadlines), each circle's KPIs against goal and baseline, what changed since
yesterday, and which conflicts were arbitrated and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.services import Services
from circles.registry import OWNER_ROLES, circle_reports
from domain.circles import CircleKpi, CircleReport
from domain.signals import Signal
from storage import panel as store
from storage.signals import Decision, person_names

URGENT = ("critical", "high")
LIVE_LIMIT = 500
ARBITRATION_ACTIONS = ("arbitrate", "park", "resume")
AUTOPILOT_ACTIONS = ("autopilot_switch",)


@dataclass(frozen=True)
class CeoSummary:
    at: datetime
    waiting: list[Signal]  # decisions waiting for the owner or an admin
    urgent: dict[str, list[Signal]]  # circle -> its critical and high live signals, most urgent first
    circles: list[CircleReport]
    changes: list[tuple[str, CircleKpi]]  # KPIs that moved since yesterday
    raised: int  # signals raised in the last 24 h
    resolved: int  # signals resolved in the last 24 h
    arbitrations: list[Decision]  # conflicts arbitrated in the last 24 h (arbitrate, park, resume)
    autopilot: list[Decision]  # actions the autopilot handed back to humans in the last 24 h
    names: dict[int, str] = field(default_factory=dict)

    @property
    def owner_roles(self) -> dict[str, str]:
        return OWNER_ROLES


def _changed(kpi: CircleKpi) -> bool:
    return kpi.value is not None and kpi.yesterday is not None and abs(kpi.value - kpi.yesterday) > 1e-9


async def ceo_summary(services: Services, now: datetime) -> CeoSummary:
    db = services.db
    since = now - timedelta(days=1)
    live = await store.live_signals(db, limit=LIVE_LIMIT)
    waiting = [s for s in live if s.needs_decision]
    urgent: dict[str, list[Signal]] = {}
    for signal in live:
        if signal.severity in URGENT and not signal.needs_decision:
            urgent.setdefault(signal.circle, []).append(signal)
    circles = await circle_reports(services, now)
    changes = [(c.circle, k) for c in circles for k in c.kpis if _changed(k)]
    raised, resolved = await store.signal_counts_since(db, since)
    people = [s.owner_person for s in live if s.owner_person is not None]
    return CeoSummary(
        at=now,
        waiting=waiting,
        urgent=urgent,
        circles=circles,
        changes=changes,
        raised=raised,
        resolved=resolved,
        arbitrations=await store.decisions_since(db, ARBITRATION_ACTIONS, since),
        autopilot=await store.decisions_since(db, AUTOPILOT_ACTIONS, since),
        names=await person_names(db, people),
    )
