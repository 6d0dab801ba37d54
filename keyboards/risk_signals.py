"""The facts lines of the governance, reliability and revenue circles' signal pings (circles, part 2), in the
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
        _("Rule broken: {rule}").format(rule=escape(drift_rule_label(str(details.get("rule", "—"))))),
        _("In the CRM: {before} → {after} by {actor}").format(
            before=_status(details.get("from", "-")),
            after=_status(details.get("to", "-")),
            actor=_value(details.get("actor", "-")),
        ),
    ]


def _percent(value: Any) -> str:
    try:
        return f"{float(value) * 100:.1f} %"
    except (TypeError, ValueError):
        return "—"


def stage_label(stage: str) -> str:
    labels = {
        "lead_to_checkout": _("lead → checkout"),
        "checkout_to_booking": _("checkout → booking"),
        "booking_to_order": _("booking → order"),
    }
    return labels.get(stage, stage)


def _band_lines(details: Mapping[str, Any]) -> list[str]:
    low, _sep, high = str(details.get("band", "")).partition("–")
    return [
        _("Normal band {low} – {high} (mean {mean}, learned from {days} days)").format(
            low=_percent(low),
            high=_percent(high),
            mean=_percent(details.get("mean")),
            days=details.get("learned_from_days", "—"),
        ),
        _("Outside by {by} percentage points, since {since}").format(
            by=f"{float(details.get('by', 0)) * 100:+.1f}", since=_value(details.get("since", "—"))
        ),
    ]


def _conversion(details: Mapping[str, Any]) -> list[str]:
    return [
        _("Channel {channel}: lead → order conversion {value} on {day} ({count} leads)").format(
            channel=_value(details.get("channel", "")),
            value=_percent(details.get("value")),
            day=_value(details.get("day", "")),
            count=details.get("base", "—"),
        ),
        *_band_lines(details),
    ]


def _drop_off(details: Mapping[str, Any]) -> list[str]:
    return [
        _("Stage {stage}: drop-off {value} on {day} ({count} reached the stage)").format(
            stage=escape(stage_label(str(details.get("stage", "")))),
            value=_percent(details.get("value")),
            day=_value(details.get("day", "")),
            count=details.get("base", "—"),
        ),
        *_band_lines(details),
    ]


def _bound(details: Mapping[str, Any], key: str) -> str:
    return _("{value} (bound {bound})").format(
        value=_value(details.get(key, "—")), bound=_value(details.get("bound", details.get("bound_ms", "—")))
    )


def _reliability(details: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if "failed_runs" in details:
        lines.append(_("Failed sync runs in a row: {runs}").format(runs=_bound(details, "failed_runs")))
        lines.append(_("Last error: {error}").format(error=_value(details.get("error", "—"))))
    if "p95_ms" in details:
        lines.append(_("CRM API p95 over the last hour: {ms} ms").format(ms=_bound(details, "p95_ms")))
    if "minutes_since_good_sync" in details:
        lines.append(
            _("Minutes since the last good sync: {minutes}").format(
                minutes=_bound(details, "minutes_since_good_sync")
            )
        )
    if "messages_due" in details:
        lines.append(_("Messages waiting to be sent: {count}").format(count=_bound(details, "messages_due")))
    if "records_last_hour" in details:
        lines.append(
            _("Records kept aside in the last hour: {count}").format(
                count=_bound(details, "records_last_hour")
            )
        )
        for sample in details.get("sample", [])[:3]:
            lines.append(
                "· {source} {record}: {reason}".format(
                    source=_value(sample.get("source", "")),
                    record=_value(sample.get("record", "")),
                    reason=_value(sample.get("reason", "")),
                )
            )
    return lines


_FACTS: dict[str, Facts] = {
    "compliance.sanctions_hit": _sanctions,
    "governance.process_drift": _drift,
    "revenue.channel_conversion": _conversion,
    "revenue.stage_drop_off": _drop_off,
    "reliability.crm_unreachable": _reliability,
    "reliability.crm_slow": _reliability,
    "reliability.sync_lagging": _reliability,
    "reliability.sender_backlog": _reliability,
    "reliability.contract_violations": _reliability,
}


def risk_facts(signal_type: str, details: Mapping[str, Any]) -> list[str] | None:
    """The lines for a signal of these circles; None for a type they do not render."""
    facts = _FACTS.get(signal_type)
    return None if facts is None else facts(details)
