"""The AI-CEO summary as a Telegram message (HTML), and the answers of /web and /ceo."""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from bot.i18n import _, ngettext
from circles.strategy.ceo import CeoSummary
from keyboards.digest import value_text
from keyboards.signals import local_time, severity_label, type_title

MAX_LINES = 8  # per block; the panel shows the rest


def _owner(summary: CeoSummary, person: int | None) -> str:
    if person is None:
        return "—"
    return escape(summary.names.get(person, str(person)))


def ceo_text(summary: CeoSummary, tz: ZoneInfo, panel_url: str | None) -> str:
    lines = [_("<b>🧭 AI-CEO: what needs you today</b>")]
    waiting = len(summary.waiting)
    lines.append(
        ngettext("{n} decision waits for you", "{n} decisions wait for you", waiting).format(n=waiting)
    )
    for signal in summary.waiting[:MAX_LINES]:
        lines.append(
            _("• #{id} {title} · by {deadline}").format(
                id=signal.id,
                title=escape(type_title(signal.type)),
                deadline=local_time(signal.deadline_at, tz),
            )
        )
    if summary.urgent:
        lines.append("")
        lines.append(_("<b>Critical and high signals</b>"))
        for circle, signals in summary.urgent.items():
            lines.append(
                ngettext("{circle}: {n} signal", "{circle}: {n} signals", len(signals)).format(
                    circle=escape(circle_label(circle)), n=len(signals)
                )
            )
            for signal in signals[:MAX_LINES]:
                lines.append(
                    _("• {severity} #{id} {title} · {owner} · by {deadline}").format(
                        severity=severity_label(signal.severity),
                        id=signal.id,
                        title=escape(type_title(signal.type)),
                        owner=_owner(summary, signal.owner_person),
                        deadline=local_time(signal.deadline_at, tz),
                    )
                )
    lines.append("")
    lines.append(_("<b>Circles: KPIs now (goal · baseline)</b>"))
    for report in summary.circles:
        lines.append(f"<b>{escape(circle_label(report.circle))}</b>")
        for kpi in report.kpis:
            mark = {True: "✅", False: "❌", None: "·"}[kpi.met]
            lines.append(
                _("{mark} {label}: {value} (goal {goal} · baseline {baseline})").format(
                    mark=mark,
                    label=escape(kpi.label),
                    value=value_text(kpi.value, kpi.kind),
                    goal=escape(kpi.goal_text or "—"),
                    baseline=value_text(kpi.baseline, kpi.kind),
                )
            )
    lines.append("")
    lines.append(_("<b>Since yesterday</b>"))
    lines.append(
        _("Signals raised: {raised}, resolved: {resolved}.").format(
            raised=summary.raised, resolved=summary.resolved
        )
    )
    for circle, kpi in summary.changes[:MAX_LINES]:
        lines.append(
            _("• {circle} · {label}: {before} → {after}").format(
                circle=escape(circle_label(circle)),
                label=escape(kpi.label),
                before=value_text(kpi.yesterday, kpi.kind),
                after=value_text(kpi.value, kpi.kind),
            )
        )
    arbitrated = [d for d in summary.arbitrations if d.action == "park"]
    lines.append("")
    lines.append(
        ngettext("<b>{n} conflict arbitrated</b>", "<b>{n} conflicts arbitrated</b>", len(arbitrated)).format(
            n=len(arbitrated)
        )
    )
    for decision in arbitrated[:MAX_LINES]:
        lines.append(
            _("• #{id} on order {order} waits for #{winner}").format(
                id=decision.signal_id,
                order=escape(decision.order_id or "—"),
                winner=decision.details.get("parked_by", "—"),
            )
        )
    for decision in summary.autopilot:
        lines.append(_("🤖 {reason}").format(reason=escape(decision.reason)))
    if panel_url:
        lines.append("")
        lines.append(_("The panel: {url} (sign in with /web)").format(url=escape(panel_url)))
    return "\n".join(lines)


def ceo_refused_text() -> str:
    return _("The AI-CEO summary is for the owner and admins.")


def web_refused_text() -> str:
    return _("The panel is for admins, the owner and leads.")


def web_not_configured_text() -> str:
    return _("The panel is not running: set HTTP_PORT (and WEB_BASE_URL for its public address).")


def web_link_text(url: str, minutes: int) -> str:
    valid = ngettext(
        "It works once, within {n} minute.", "It works once, within {n} minutes.", minutes
    ).format(n=minutes)
    return _('🔐 <a href="{url}">Sign in to the panel</a>. {valid} Do not forward it.\n{url}').format(
        url=escape(url), valid=valid
    )


def circle_label(circle: str) -> str:
    """A circle's name as people call it (SPEC §12); signal circles of older names map onto them."""
    labels = {
        "sales_ops": _("Sales operations (AI head of sales)"),
        "unit_economics": _("Unit economics (AI-CFO)"),
        "finance": _("Unit economics (AI-CFO)"),
        "quality": _("Trust and quality"),
        "revenue": _("Revenue (AI-CRO)"),
        "growth": _("Revenue (AI-CRO)"),
        "reliability": _("Reliability (AI-CTO/SRE)"),
        "platform": _("Reliability (AI-CTO/SRE)"),
        "governance": _("Governance (AI-GRC)"),
        "compliance": _("Governance (AI-GRC)"),
        "strategy": _("Strategy (AI-CEO)"),
    }
    return labels.get(circle, circle)


def role_label(role: str) -> str:
    labels = {"owner": _("the owner"), "lead": _("leads"), "admin": _("admins")}
    return labels.get(role, role)
