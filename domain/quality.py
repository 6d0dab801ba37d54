"""Trust and quality (AI-Head of Quality, SPEC §12 and §14) as pure functions: compensations, disputes, severe
defects and repeat incidents per seller and bike model.

- A repeat incident is a compensation or a dispute whose seller or bike model had another one, on another
  order, in the `repeat_days` (90) before it. Two incidents of one order are one problem, not a repeat.
- Counts of things that happened (compensations in W) are 0 when none did; shares over a population (disputes
  per delivered order, severe defects per checklist, repeats per incident) are None when the population is
  empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from domain.economics import Incident
from domain.kpi import Window

REPEAT_DAYS = 90


def repeats(
    incidents: Sequence[Incident], history: Sequence[Incident], days: int = REPEAT_DAYS
) -> list[Incident]:
    """The incidents of `incidents` whose seller or model had another incident (another order) in the `days`
    before; `history` holds every incident that may be that earlier one (the window and the days before)."""
    span = timedelta(days=days)
    by_seller: dict[str, list[Incident]] = {}
    by_model: dict[str, list[Incident]] = {}
    for past in history:
        if past.seller:
            by_seller.setdefault(past.seller, []).append(past)
        if past.model:
            by_model.setdefault(past.model, []).append(past)

    def earlier(candidates: list[Incident], incident: Incident) -> bool:
        return any(
            other.order_id != incident.order_id
            and incident.at - span <= other.at <= incident.at
            and (other.at, other.kind, other.id) != (incident.at, incident.kind, incident.id)
            for other in candidates
        )

    return [
        incident
        for incident in incidents
        if earlier(by_seller.get(incident.seller, []), incident)
        or earlier(by_model.get(incident.model, []), incident)
    ]


@dataclass(frozen=True, slots=True)
class QualityKpis:
    compensation_count: int
    compensation_eur: float
    disputes_opened: int
    dispute_rate: float | None
    severe_defect_share: float | None
    repeat_incident_rate: float | None
    sellers: list[tuple[str, int]]  # incidents per seller in W, most first (top 5)
    models: list[tuple[str, int]]  # incidents per bike model in W, most first (top 5)

    def as_json(self) -> dict[str, object]:
        return {
            "compensation_count": self.compensation_count,
            "compensation_eur": round(self.compensation_eur, 2),
            "disputes_opened": self.disputes_opened,
            "dispute_rate": None if self.dispute_rate is None else round(self.dispute_rate, 4),
            "severe_defect_share": None
            if self.severe_defect_share is None
            else round(self.severe_defect_share, 4),
            "repeat_incident_rate": None
            if self.repeat_incident_rate is None
            else round(self.repeat_incident_rate, 4),
            "incidents_by_seller": dict(self.sellers),
            "incidents_by_model": dict(self.models),
        }


def quality_kpis(
    window: Window,
    history: Sequence[Incident],
    *,
    delivered: int,
    checklists: int,
    severe: int,
    days: int = REPEAT_DAYS,
) -> QualityKpis:
    """SPEC §14 over `window`; `history` = incidents from `days` before the window to its end."""
    inside = [i for i in history if i.at in window]
    compensations = [i for i in inside if i.kind == "compensation"]
    disputes = [i for i in inside if i.kind == "dispute"]
    repeated = repeats(inside, history, days)
    return QualityKpis(
        compensation_count=len(compensations),
        compensation_eur=sum(i.amount or 0.0 for i in compensations),
        disputes_opened=len(disputes),
        dispute_rate=len(disputes) / delivered if delivered else None,
        severe_defect_share=severe / checklists if checklists else None,
        repeat_incident_rate=len(repeated) / len(inside) if inside else None,
        sellers=Counter(i.seller for i in inside if i.seller).most_common(5),
        models=Counter(i.model for i in inside if i.model).most_common(5),
    )
