"""Texts of arbitration that acts: what a winning signal's chats hear it holds back, and what a parked
signal's chats hear when it goes on. (The parked line on the ping itself is in keyboards/signals.py.)"""

from __future__ import annotations

from html import escape

from bot.i18n import _
from domain.signals import Signal
from keyboards.signals import priority_label, type_title


def parked_notice(winner: Signal, loser: Signal) -> str:
    """To the chats of the winning signal: what it holds back."""
    return _(
        "⏸ #{loser} ({loser_title}) on order {order} is parked until #{winner} ({winner_title}) is settled: "
        "{first} comes first."
    ).format(
        loser=loser.id,
        loser_title=escape(type_title(loser.type)),
        order=escape(loser.order_id or "—"),
        winner=winner.id,
        winner_title=escape(type_title(winner.type)),
        first=priority_label(int(winner.kind.priority)),
    )


def resumed_notice(signal: Signal, settled: Signal) -> str:
    """To the chats of a parked signal when what parked it is settled."""
    return _("▶️ #{id} ({title}) goes on: #{settled} ({settled_title}) is settled.").format(
        id=signal.id,
        title=escape(type_title(signal.type)),
        settled=settled.id,
        settled_title=escape(type_title(settled.type)),
    )
