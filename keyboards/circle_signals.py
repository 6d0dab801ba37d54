"""The pings of the circles' signals (part 1): titles and the facts under them, for the CFO's leak and
under-collection findings, quality's disputes and repeat incidents, and AI-РОМ's slipping managers.
keyboards/signals.py renders pings with these; keyboards/circles.py reuses the money wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape
from typing import Any

from babel.numbers import format_decimal, format_percent

from bot.i18n import _, i18n, ngettext


def eur(value: float | None) -> str:
    """Whole euros in the reader's locale ("1 234 €"); "—" when not known."""
    if value is None:
        return "—"
    return _("{n} €").format(n=format_decimal(round(value), format="#,##0", locale=i18n.current_locale))


def percent(value: float | None) -> str:
    return "—" if value is None else format_percent(value, format="#,##0.#%", locale=i18n.current_locale)


CIRCLE_SIGNALS = (
    "unit_economics.margin_leak",
    "unit_economics.under_collection",
    "quality.repeat_incident",
    "quality.dispute_opened",
    "sales_ops.manager_slipping",
)


def circle_title(code: str) -> str | None:
    titles = {
        "unit_economics.margin_leak": _("Margin leak"),
        "unit_economics.under_collection": _("Payment under-collected"),
        "quality.repeat_incident": _("Repeat incident"),
        "quality.dispute_opened": _("Dispute opened"),
        "sales_ops.manager_slipping": _("Manager slipping"),
    }
    return titles.get(code)


def rule_label(rule: str, floor_pct: float | None = None) -> str:
    if rule == "negative_margin":
        return _("negative margin")
    if rule == "margin_floor":
        return _("margin below the floor of {floor}").format(floor=percent(floor_pct))
    if rule == "under_collection":
        return _("payment under-collected")
    return escape(rule)


def cause_label(kind: str) -> str:
    labels = {
        "compensation": _("compensation"),
        "shipping": _("shipping above the usual"),
        "purchase": _("purchase above booked"),
        "under_collection": _("under-collected payment"),
    }
    return labels.get(kind, escape(kind))


def correction_label(code: str) -> str:
    labels = {
        "reclaim_compensation": _("claim the compensation back from the seller or cut it next time"),
        "renegotiate_shipping": _("book shipping at the usual rate or charge the difference to the client"),
        "renegotiate_purchase": _("renegotiate the purchase price with the seller"),
        "collect": _("collect the missing amount from the client"),
        "price": _("review the sale price of this model"),
    }
    return labels.get(code, escape(code))


def causes_text(found: Sequence[Mapping[str, Any]]) -> str:
    if not found:
        return _("no cause found in the data")
    return ", ".join(f"{cause_label(str(c['kind']))} {eur(float(c['eur']))}" for c in found)


def _incident_label(kind: str) -> str:
    return _("compensation") if kind == "compensation" else _("dispute")


def _day(value: Any) -> str:
    try:
        return date.fromisoformat(str(value)).strftime("%d.%m")
    except ValueError:
        return escape(str(value or ""))


def circle_facts(signal_type: str, details: Mapping[str, Any]) -> list[str]:
    """The lines a circle's ping shows under its title."""
    d = details
    if signal_type in ("unit_economics.margin_leak", "unit_economics.under_collection"):
        floor = d.get("floor_pct")
        lines = [_("Rule: {rule}").format(rule=rule_label(str(d.get("rule", "—")), floor))]
        if signal_type == "unit_economics.margin_leak":
            lines.append(
                _("Net margin {net} on a sale of {sale}; leak {eur}").format(
                    net=eur(d.get("net")), sale=eur(d.get("sale")), eur=eur(d.get("eur"))
                )
            )
        else:
            lines.append(
                _("Not collected: {eur} of {sale}").format(eur=eur(d.get("eur")), sale=eur(d.get("sale")))
            )
        lines.append(_("Causes: {causes}").format(causes=causes_text(d.get("causes") or [])))
        lines.append(
            _("Recommended: {action}").format(action=correction_label(str(d.get("correction", "—"))))
        )
        return lines
    if signal_type in ("quality.repeat_incident", "quality.dispute_opened"):
        lines = [
            _("{incident}, seller {seller}, bike {model}").format(
                incident=_incident_label(str(d.get("incident"))),
                seller=escape(str(d.get("seller") or "—")),
                model=escape(str(d.get("model") or "—")),
            )
        ]
        if d.get("eur"):
            lines.append(_("Amount: {eur}").format(eur=eur(float(d["eur"]))))
        if signal_type == "quality.repeat_incident":
            lines.append(_("The same seller or bike model had another incident within 90 days."))
        return lines
    if signal_type == "sales_ops.manager_slipping":
        who = escape(str(d.get("manager") or d.get("manager_id") or "—"))
        if d.get("rule") == "misses":
            count = int(d.get("value") or 0)
            text = ngettext("{who} missed {n} offer on {day}", "{who} missed {n} offers on {day}", count)
            return [text.format(who=who, n=count, day=_day(d.get("day")))]
        return [
            _("{who}: breach rate {rate}, the team's {team}").format(
                who=who, rate=percent(d.get("value")), team=percent(d.get("team"))
            )
        ]
    return []
