"""One short section per circle of issue 15 in the morning and the leads' digests (only what changed or needs
someone): governance (orders held by a sanctions hit, process drift in the last day, screening coverage when
it is not complete), reliability (conditions firing now, incidents of the last day), revenue (channels and
stages out of their normal band). Nothing to say: no section."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.services import Services
from storage import governance as governance_store
from storage import reliability as reliability_store


@dataclass(frozen=True)
class CircleNews:
    held_orders: list[tuple[str, str, float]] = field(default_factory=list)  # (order, list entry, score)
    drift_last_day: int = 0
    coverage_last_day: float | None = None
    firing: list[str] = field(default_factory=list)  # reliability signal types live now
    incidents_last_day: int = 0
    revenue_alerts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, details)

    @property
    def empty(self) -> bool:
        return not (
            self.held_orders
            or self.drift_last_day
            or (self.coverage_last_day is not None and self.coverage_last_day < 1)
            or self.firing
            or self.incidents_last_day
            or self.revenue_alerts
        )


async def circle_news(services: Services, now: datetime) -> CircleNews:
    conn = services.db.reader
    day_ago = now - timedelta(days=1)
    listed = await governance_store.list_in_force(conn)
    created, screened = await governance_store.screening_coverage(
        conn, day_ago, now, listed.version if listed else None
    )
    incidents, _ = await reliability_store.incidents(conn, "platform", day_ago, now)
    return CircleNews(
        held_orders=[(h.order_id, h.entry_name, h.score) for h in await governance_store.live_holds(conn)],
        drift_last_day=await governance_store.drift_count(conn, day_ago, now),
        coverage_last_day=None if created == 0 else screened / created,
        firing=[kind for kind, _ in await reliability_store.live_signals_like(conn, "reliability.")],
        incidents_last_day=incidents,
        revenue_alerts=await reliability_store.live_signals_like(conn, "revenue."),
    )
