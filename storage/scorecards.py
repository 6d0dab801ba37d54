"""The SQL of the AI-РОМ scorecards: offers, breaches with what their reason is classified from, SLA visits
per manager, and the checklist work, each over a window (domain/scorecards.py computes from these rows)."""

from __future__ import annotations

from typing import Any

from domain.kpi import Window
from domain.scorecards import Breach
from domain.statuses import OPEN_STATUSES, Status
from storage.db import parse_ts, parse_ts_opt, ts
from storage.money import Source, _rows

_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
_STATUSES = {s.value: s for s in Status}

OfferRow = tuple[str, str, str, Any, Any, str | None]


async def offers(source: Source, window: Window) -> list[tuple[str, str, str, Any, Any, str | None]]:
    """(manager, order, state, offered_at, answered_at, decline reason) of the offers made in `window`."""
    rows = await _rows(
        source,
        "SELECT manager_id, order_id, state, offered_at, answered_at, decline_reason FROM ai_assignments"
        " WHERE offered_at >= ? AND offered_at < ?",
        (ts(window.start), ts(window.end)),
    )
    return [(r[0], r[1], r[2], parse_ts(r[3]), parse_ts_opt(r[4]), r[5]) for r in rows]


async def breaches(source: Source, window: Window) -> list[Breach]:
    """Budget breaches detected in `window`, with the order's manager, whether an offer was made before the
    deadline, and the manager's open orders and capacity now (the load the classification reads)."""
    rows = await _rows(
        source,
        """
        SELECT v.order_id, v.status, v.breach_at, o.assigned_manager_id,
               EXISTS (SELECT 1 FROM ai_assignments a WHERE a.order_id = v.order_id
                       AND a.offered_at >= v.entered_at AND a.offered_at <= v.breach_at)
        FROM ai_sla_violations v LEFT JOIN orders o ON o.id = v.order_id
        WHERE v.kind = 'budget' AND v.detected_at >= ? AND v.detected_at < ?
        """,
        (ts(window.start), ts(window.end)),
    )
    loads = await _rows(
        source,
        f"""
        SELECT m.id, COALESCE(m.capacity_override, m.capacity),
               (SELECT COUNT(*) FROM orders o WHERE o.assigned_manager_id = m.id
                  AND o.status IN ({", ".join("?" * len(_OPEN))}))
        FROM managers m
        """,
        _OPEN,
    )
    load = {r[0]: (int(r[2]), r[1]) for r in loads}
    return [
        Breach(r[0], _STATUSES[r[1]], parse_ts(r[2]), r[3], bool(r[4]), *load.get(r[3], (None, None)))
        for r in rows
        if r[1] in _STATUSES
    ]


async def visits_per_manager(source: Source, window: Window) -> dict[str, int]:
    """SLA visits that finished or breached in `window`, per manager of the order."""
    start, end = ts(window.start), ts(window.end)
    rows = await _rows(
        source,
        """
        SELECT o.assigned_manager_id, COUNT(*) FROM (
            SELECT order_id FROM sla_timers WHERE closed_at >= ?1 AND closed_at < ?2
            UNION ALL
            SELECT order_id FROM sla_timers
            WHERE breach_at >= ?1 AND breach_at < ?2 AND (closed_at IS NULL OR closed_at >= ?2)
        ) t JOIN orders o ON o.id = t.order_id
        WHERE o.assigned_manager_id IS NOT NULL GROUP BY 1
        """,
        (start, end),
    )
    return {r[0]: int(r[1]) for r in rows}


async def checklist_fails(source: Source, window: Window) -> dict[str, int]:
    """Per manager: fails without a note or without a photo of the item, on checklists submitted in
    `window`."""
    rows = await _rows(
        source,
        """
        SELECT o.assigned_manager_id, COUNT(*)
        FROM checklist_sessions s
        JOIN checklist_answers a ON a.order_id = s.order_id AND a.answer = 'fail'
        JOIN orders o ON o.id = s.order_id
        WHERE s.submitted_at >= ? AND s.submitted_at < ? AND o.assigned_manager_id IS NOT NULL
          AND (a.note IS NULL OR trim(a.note) = '' OR NOT EXISTS (
                SELECT 1 FROM artifacts f WHERE f.order_id = a.order_id AND f.item = a.item))
        GROUP BY 1
        """,
        (ts(window.start), ts(window.end)),
    )
    return {r[0]: int(r[1]) for r in rows}


async def manager_of_telegram(source: Source, telegram_id: int) -> str | None:
    rows = await _rows(source, "SELECT id FROM managers WHERE telegram_id = ?", (telegram_id,))
    return str(rows[0][0]) if rows else None


async def find_manager(source: Source, text: str) -> str | None:
    """A manager by id or by (a unique part of) the name, case-insensitive."""
    rows = await _rows(source, "SELECT id, name FROM managers")
    needle = text.strip().casefold()
    exact = [r[0] for r in rows if r[0].casefold() == needle or r[1].casefold() == needle]
    if exact:
        return str(exact[0])
    partial = [r[0] for r in rows if needle and needle in r[1].casefold()]
    return str(partial[0]) if len(partial) == 1 else None
