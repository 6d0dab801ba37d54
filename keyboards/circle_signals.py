"""The facts lines of the governance, reliability and revenue circles' signal pings (issue 15), in the
reader's language; keyboards/signals.py renders the rest of the ping around them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

from bot.i18n import _
from domain.statuses import Status
from keyboards.orders import status_label

_MAX_CHARS = 120

Facts = Callable[[Mapping[str, Any]], list[str]]


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return escape(text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…")


def _status(value: Any) -> str:
    try:
        return status_label(Status(str(value)))
    except ValueError:
        return _value(value)


def drift_rule_label(rule: str) -> str:
    labels = {
        "forbidden_transition": _("a transition the process does not allow"),
        "status_back": _("a status set back"),
        "checklist_incomplete": _("awaiting the client without a complete checklist"),
        "cancel_unapproved": _("cancelled without an admin's approval"),
    }
    return labels.get(rule, rule)


def _sanctions(details: Mapping[str, Any]) -> list[str]:
    party = _("seller") if details.get("party") == "seller" else _("client")
    lines = [
        _("The {party} {name} matches the list entry {entry} ({entry_id})").format(
            party=party,
            name=_value(details.get("name", "")),
            entry=_value(details.get("entry_name", "")),
            entry_id=_value(details.get("entry_id", "")),
        ),
        _("Matched name: {matched}; score {score} (list {version})").format(
            matched=_value(details.get("matched_name", "")),
            score=_value(details.get("score", "")),
            version=_value(details.get("list_version", "")),
        ),
    ]
    if details.get("sanctions"):
        lines.append(_("Listed for: {sanctions}").format(sanctions=_value(details["sanctions"])))
    lines.append(_("The order is held from dispatch until you decide."))
    return lines


def _drift(details: Mapping[str, Any]) -> list[str]:
    return [
        _("Rule broken: {rule}").format(rule=escape(drift_rule_label(str(details.get("rule"))))),
        _("In the CRM: {before} → {after} by {actor}").format(
            before=_status(details.get("from", "-")),
            after=_status(details.get("to", "-")),
            actor=_value(details.get("actor", "-")),
        ),
    ]


_FACTS: dict[str, Facts] = {
    "compliance.sanctions_hit": _sanctions,
    "governance.process_drift": _drift,
}


def circle_facts(signal_type: str, details: Mapping[str, Any]) -> list[str] | None:
    """The lines for a signal of these circles; None for a type they do not render."""
    facts = _FACTS.get(signal_type)
    return None if facts is None else facts(details)
