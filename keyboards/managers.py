"""The /managers table: each manager's load, open orders against capacity, shift and misses."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Protocol

from bot.i18n import _
from domain.dispatch import Candidate
from storage.assignments import DispatchManager


class ManagerRow(Protocol):
    """A line of /managers (circles.sales_ops.dispatcher.ManagerLine)."""

    @property
    def manager(self) -> DispatchManager: ...
    @property
    def candidate(self) -> Candidate: ...
    @property
    def on_shift(self) -> bool: ...


def managers_table(rows: Sequence[ManagerRow]) -> str:
    if not rows:
        return _("No managers yet: they come from the CRM sync.")
    lines = ["<b>" + _("Managers: load · open/capacity · shift · misses") + "</b>"]
    for row in rows:
        m, c = row.manager, row.candidate
        if not m.active:
            shift = _("inactive")
        elif m.on_leave:
            shift = _("on leave")
        else:
            shift = _("on shift") if row.on_shift else _("off shift")
        load = f"{c.load:.0%}" if c.capacity else "—"
        name = f"{escape(m.name)} ({escape(m.id)})"
        lines.append(f"{name} · {load} · {c.open_orders}/{m.capacity} · {shift} · {m.misses}")
    return "\n".join(lines)
