"""Every text of the admin panel, through the catalogs (Russian and English). Templates read the labels
from `labels()`, rendered inside the reader's locale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.i18n import _, ngettext
from domain.statuses import Status
from keyboards.ceo import circle_label, role_label
from keyboards.orders import status_label

__all__ = ["circle_label", "role_label"]


def labels() -> dict[str, str]:
    return {
        "title": _("BikeWerk operations"),
        "circles": _("Circles"),
        "log": _("Decision log"),
        "retro": _("Retrospective"),
        "sign_out": _("Sign out"),
        "ceo": _("AI-CEO: what needs you today"),
        "waiting": _("Decisions waiting"),
        "urgent": _("Critical and high signals"),
        "changes": _("Changed since yesterday"),
        "arbitrations": _("Conflicts arbitrated"),
        "autopilot_handed_back": _("Autopilot actions handed back to people"),
        "nothing": _("Nothing."),
        "owner": _("Owner"),
        "owner_role": _("Owner role"),
        "kpi": _("KPI"),
        "now": _("Now"),
        "goal": _("Goal"),
        "baseline": _("Baseline"),
        "yesterday": _("Yesterday"),
        "trend": _("14 days"),
        "open_signals": _("Open signals"),
        "no_kpis": _("This circle reports no KPIs yet."),
        "signal": _("Signal"),
        "severity": _("Severity"),
        "circle": _("Circle"),
        "order": _("Order"),
        "person": _("Person (Telegram id)"),
        "since": _("From"),
        "until": _("To"),
        "filter": _("Filter"),
        "any": _("any"),
        "state": _("State"),
        "deadline": _("Deadline"),
        "resolution": _("Resolution"),
        "why": _("Why"),
        "effect": _("Observed effect"),
        "decisions": _("Decisions"),
        "action": _("Action"),
        "who": _("Who"),
        "when": _("When"),
        "acknowledge": _("Acknowledge"),
        "resolve": _("Resolve"),
        "approve": _("Approve"),
        "reject": _("Reject"),
        "reassign": _("Reassign to"),
        "comment": _("Comment"),
        "parked": _("Parked"),
        "status_events": _("Status changes"),
        "assignments": _("Assignments and dispatch scores"),
        "sla_visits": _("SLA visits"),
        "checklist": _("Checklist"),
        "photos": _("Photos"),
        "crm_writes": _("CRM writes"),
        "candidates": _("Candidates"),
        "budget": _("Budget"),
        "breach_at": _("Breach at"),
        "breached": _("Breached"),
        "item": _("Item"),
        "answer": _("Answer"),
        "note": _("Note"),
        "kind": _("Kind"),
        "acked": _("Delivered to the CRM"),
        "pending": _("Waiting"),
        "week": _("Week"),
        "previous_week": _("← previous week"),
        "next_week": _("next week →"),
        "signals_and_helped": _("Signals and how often an action helped"),
        "autopilot": _("Autopilot: how often each action ran and helped"),
        "ran": _("Ran"),
        "helped": _("Helped"),
        "mode": _("Mode"),
        "limit": _("Per day"),
        "sign_in_needed": _("Sign in first: send /web to the bot in Telegram and open the link it gives."),
        "link_refused": _(
            "This sign-in link is used up or has expired. Send /web to the bot in Telegram for a new one."
        ),
        "csrf_refused": _(
            "The form was not sent from the panel (its protection token is missing); nothing changed."
        ),
        "forbidden": _("The panel is for admins, the owner and leads."),
        "not_found": _("Not found."),
        "signals_total": _("Signals"),
        "order_unknown": _("This order is not in the store."),
    }


def signals_count(n: int) -> str:
    return ngettext("{n} signal", "{n} signals", n).format(n=n)


def day_counts(raised: int, resolved: int) -> str:
    return _("In the last 24 h: {raised} raised, {resolved} resolved.").format(
        raised=signals_count(raised), resolved=resolved
    )


def effect_text(effect: Mapping[str, Any] | None) -> str:
    """A decision's observed effect in words."""
    if effect is None:
        return _("not known yet")
    helped = effect.get("helped")
    if isinstance(helped, bool) and "moved_to" not in effect:
        return _("helped") if helped else _("did not help")
    if "moved_to" in effect:
        moved = effect["moved_to"]
        minutes = effect.get("minutes")
        if moved is None:
            return _("the order did not move within {minutes} min").format(minutes=minutes)
        try:
            where = status_label(Status(moved))
        except ValueError:
            where = str(moved)
        return _("the order moved to {status} after {minutes} min").format(status=where, minutes=minutes)
    return ", ".join(f"{k}: {v}" for k, v in effect.items())


def flash_done(action: str, signal_id: int) -> str:
    texts = {
        "ack": _("Signal #{id} acknowledged; its pings in Telegram are updated."),
        "resolve": _("Signal #{id} resolved; its pings in Telegram are updated."),
        "approve": _("Signal #{id} approved; its pings in Telegram are updated."),
        "reject": _("Signal #{id} rejected; its pings in Telegram are updated."),
        "reassign": _("Signal #{id} reassigned; its pings in Telegram are updated."),
    }
    return texts.get(action, "").format(id=signal_id)


def state_label(state: str) -> str:
    labels = {"open": _("open"), "acknowledged": _("acknowledged"), "resolved": _("resolved")}
    return labels.get(state, state)
