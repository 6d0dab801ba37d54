"""The quality KPIs of SPEC §14 over a window."""

from __future__ import annotations

from datetime import timedelta

from domain.kpi import Window
from domain.policy import Policy
from domain.quality import QualityKpis, quality_kpis
from storage import money
from storage.db import Database


async def quality_report(db: Database, policy: Policy, window: Window) -> QualityKpis:
    days = policy.quality.repeat_days
    history = await money.incidents(db, Window(window.start - timedelta(days=days), window.end))
    checklists = await money.checklists_submitted(db, window)
    return quality_kpis(
        window,
        history,
        delivered=await money.delivered_count(db, window),
        checklists=checklists.submitted,
        severe=checklists.severe,
        days=days,
    )


async def quality_json(db: Database, policy: Policy, window: Window) -> dict[str, object]:
    return (await quality_report(db, policy, window)).as_json()
