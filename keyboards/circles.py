"""Texts of the circles, part 1 (their pings are in keyboards/circle_signals.py): `/margin`, `/scorecard` and
`/me`, the money section of the owner's digest and the scorecard outliers of the leads' digest.

HTML (the bot's parse mode); data is escaped; render inside the reader's locale. Money is whole euros with the
locale's separators; a value that is not known shows as "—".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from bot.i18n import _, ngettext
from domain.economics import CORRECTION_OF, Finding, MoneyOrder, UnitEconomics, causes, leak_eur
from domain.economics import EconomicsRules as Rules
from domain.scorecards import Scorecard
from domain.statuses import Status
from keyboards.circle_signals import causes_text, correction_label, eur, rule_label
from keyboards.digest import change, number, percent
from keyboards.orders import status_label

# --- /margin ------------------------------------------------------------------------------------------------


def margin_usage() -> str:
    return _("Use /margin, /margin ORDER or /margin days N (N from 1 to 90).")


def margin_refused() -> str:
    return _("Margins are for the owner and admins.")


def no_order(order_id: str) -> str:
    return _("There is no order {order}.").format(order=escape(order_id))


def margin_order_text(order: MoneyOrder, rules: Rules, status: Status | None) -> str:
    """Why an order's margin is what it is: every part, the rule it breaks, the causes and what to do."""
    lines = [_("<b>Margin of order {order}</b>").format(order=escape(order.order_id))]
    if status is not None:
        lines.append(_("Status: {status}").format(status=status_label(status)))
    if not order.priced:
        lines.append(_("Prices are not complete in the CRM yet: no margin can be computed."))
        return "\n".join(lines)
    lines += [
        _("Sale: {eur}").format(eur=eur(order.sale)),
        _("Purchase: {eur}").format(eur=eur(order.purchase))
        + (
            " " + _("(booked {eur})").format(eur=eur(order.booking.purchase))
            if order.booking is not None and order.booking.purchase != order.purchase
            else ""
        ),
        _("Shipping: {eur} (usual {usual})").format(
            eur=eur(order.shipping), usual=eur(rules.usual_shipping_eur)
        ),
        _("Fees: {eur}").format(eur=eur(order.fees)),
    ]
    for amount, reason in order.compensations:
        lines.append(
            _("Compensation: {eur} ({reason})").format(eur=eur(amount), reason=escape(reason or "—"))
        )
    net = order.net
    sale = order.sale or 0.0
    lines.append(
        _("<b>Net margin: {eur} ({pct})</b>").format(
            eur=eur(net), pct=percent(net / sale if net is not None and sale else None)
        )
    )
    if order.booking is not None:
        lines.append(_("Forecast at acceptance: {eur}").format(eur=eur(order.booking.forecast)))
    lines.append(_("Collected: {eur} of {sale}").format(eur=eur(order.collected), sale=eur(order.sale)))
    leak = leak_eur(order, rules)
    found = causes(order, rules)
    if leak:
        rule = "negative_margin" if net is not None and net < 0 else "margin_floor"
        lines.append(
            _("Rule broken: {rule}; leak {eur}").format(
                rule=rule_label(rule, rules.margin_floor_pct), eur=eur(leak)
            )
        )
    else:
        lines.append(_("Above the floor of {floor}: no leak.").format(floor=percent(rules.margin_floor_pct)))
    if found:
        lines.append(
            _("Causes: {causes}").format(causes=causes_text([{"kind": c.kind, "eur": c.eur} for c in found]))
        )
        lines.append(_("Recommended: {action}").format(action=correction_label(CORRECTION_OF[found[0].kind])))
    return "\n".join(lines)


def leak_line(finding: Finding) -> str:
    return _("{order}: {eur} — {causes}").format(
        order=escape(finding.order_id),
        eur=eur(finding.eur),
        causes=causes_text([{"kind": c.kind, "eur": c.eur} for c in finding.causes]),
    )


def economics_lines(report: UnitEconomics) -> list[str]:
    count = report.margin_leak_count or 0
    return [
        _("Net margin: {eur} ({pct})").format(eur=eur(report.net_margin_eur), pct=percent(report.margin_pct)),
        ngettext("Leaks: {n} order, {eur}", "Leaks: {n} orders, {eur}", count).format(
            n=count if report.margin_leak_count is not None else "—", eur=eur(report.margin_leak_eur)
        ),
        _("Collected vs booked: {pct}").format(pct=percent(report.realized_vs_booked)),
        _("Forecast accuracy: {pct}").format(pct=percent(report.forecast_accuracy)),
    ]


def margin_days_text(days: float, report: UnitEconomics, leaks: Sequence[Finding]) -> str:
    shown = int(days)
    lines = [
        ngettext(
            "<b>Margins over the last {n} day</b>", "<b>Margins over the last {n} days</b>", shown
        ).format(n=shown),
        ngettext("{n} order delivered", "{n} orders delivered", report.delivered).format(n=report.delivered),
        *economics_lines(report),
    ]
    if leaks:
        lines.append(_("Largest leaks:"))
        lines += [leak_line(f) for f in leaks]
    return "\n".join(lines)


# --- the owner's digest: money ------------------------------------------------------------------------------


def money_section(
    today: UnitEconomics, yesterday: UnitEconomics, baseline: float | None, leaks: Sequence[Finding]
) -> list[str]:
    lines = [
        _("<b>Money</b> (24 h)"),
        _("Net margin {eur}: {vs_yesterday} vs yesterday, {vs_baseline} vs baseline").format(
            eur=eur(today.net_margin_eur),
            vs_yesterday=change(today.net_margin_eur, yesterday.net_margin_eur, "count"),
            vs_baseline=change(today.net_margin_eur, baseline, "count"),
        ),
    ]
    count = today.margin_leak_count or 0
    lines.append(
        ngettext("Leaks: {n} order, {eur}", "Leaks: {n} orders, {eur}", count).format(
            n=count if today.margin_leak_count is not None else "—", eur=eur(today.margin_leak_eur)
        )
    )
    lines += [leak_line(f) for f in leaks]
    return lines


def margin_chart_title() -> str:
    return _("Net margin per day, 14 days (€)")


# --- /scorecard and /me -------------------------------------------------------------------------------------


def reason_label(reason: str) -> str:
    labels = {
        "no_one_on_shift": _("no one on shift"),
        "manager_overloaded": _("manager overloaded"),
        "manager_slow": _("manager slow"),
        "waiting_on_client": _("waiting on the client"),
        "waiting_on_seller": _("waiting on the seller"),
    }
    return labels.get(reason, escape(reason))


def scorecard_refused() -> str:
    return _("Scorecards are for leads and admins; a manager sees their own with /me.")


def no_manager(text: str) -> str:
    return _("There is no manager {name}.").format(name=escape(text))


def not_a_manager() -> str:
    return _("/me shows a manager's own scorecard; you are not a manager here.")


def _minutes(value: float | None) -> str:
    return "—" if value is None else _("{n} min").format(n=number(value))


def scorecard_text(card: Scorecard, days: int) -> str:
    lines = [
        ngettext(
            "<b>Scorecard of {name}</b>, last {n} day",
            "<b>Scorecard of {name}</b>, last {n} days",
            days,
        ).format(name=escape(card.name), n=days),
        ngettext("{n} offer", "{n} offers", card.offers).format(n=card.offers)
        + " · "
        + _("accepted in {median} (median), {p90} (p90)").format(
            median=_minutes(card.accept_median_min), p90=_minutes(card.accept_p90_min)
        ),
        _("Missed: {missed}, declined: {declined}").format(missed=card.missed, declined=card.declined),
    ]
    if card.decline_reasons:
        reasons = ", ".join(f"{escape(r)} × {n}" for r, n in card.decline_reasons.items())
        lines.append(_("Decline reasons: {reasons}").format(reasons=reasons))
    stages = ", ".join(f"{status_label(Status(s))} × {n}" for s, n in card.breaches_by_stage.items())
    lines.append(_("SLA breaches: {stages}").format(stages=stages or "0"))
    lines.append(_("Breach rate: {rate}").format(rate=percent(card.breach_rate)))
    lines.append(
        _(
            "Checklists: {fails} fails without a note or photo, {back} sent back, "
            "inspection {median} (median)"
        ).format(
            fails=card.fails_undocumented,
            back=card.resubmissions,
            median=_minutes(card.inspection_median_min),
        )
    )
    lines.append(_("Throughput: {n} moves a day").format(n=number(card.throughput_per_day)))
    lines.append(
        ngettext(
            "{n} offer outside working hours", "{n} offers outside working hours", card.outside_hours
        ).format(n=card.outside_hours)
    )
    if card.reasons:
        lines.append(_("Why SLAs failed: {reasons}").format(reasons=_reasons(card.reasons)))
    return "\n".join(lines)


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason_label(r)} × {n}" for r, n in counts.items())


def scorecards_text(cards: Sequence[Scorecard], shares: Mapping[str, Mapping[str, float]], days: int) -> str:
    lines = [
        ngettext("<b>Scorecards</b>, last {n} day", "<b>Scorecards</b>, last {n} days", days).format(n=days)
    ]
    for card in cards:
        lines.append(
            _("{name}: accept {median}, missed {missed}, declined {declined}, breach rate {rate}").format(
                name=escape(card.name),
                median=_minutes(card.accept_median_min),
                missed=card.missed,
                declined=card.declined,
                rate=percent(card.breach_rate),
            )
        )
    lines += failure_reason_lines(shares)
    lines.append(_("/scorecard MANAGER shows one manager in full."))
    return "\n".join(lines)


def failure_reason_lines(shares: Mapping[str, Mapping[str, float]]) -> list[str]:
    if not shares:
        return [_("No SLA breach in this period.")]
    lines = [_("Why SLAs failed, share per week:")]
    for week, reasons in shares.items():
        parts = ", ".join(f"{reason_label(r)} {percent(v)}" for r, v in reasons.items())
        lines.append(f"{escape(datetime.fromisoformat(week).strftime('%d.%m'))}: {parts}")
    return lines


def outlier_lines(cards: Sequence[Scorecard]) -> list[str]:
    """The leads' digest: managers standing out this week."""
    if not cards:
        return []
    lines = [_("<b>Scorecards: who stands out</b> (7 days)")]
    for card in cards:
        lines.append(
            _("{name}: missed {missed}, breach rate {rate}").format(
                name=escape(card.name), missed=card.missed, rate=percent(card.breach_rate)
            )
        )
    return lines
