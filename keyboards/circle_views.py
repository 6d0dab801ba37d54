"""Texts of `/health` (reliability, admins) and `/funnel` (revenue, the owner and admins), in the reader's
language; numbers are formatted here, the use cases hand over plain values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import _, ngettext
from circles.digest_sections import CircleNews
from circles.reliability.health import HealthReport
from circles.revenue.charts import FunnelChartLabels
from keyboards.risk_signals import stage_label
from keyboards.signals import local_time, type_title


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f} %"


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}".replace(",", " ") if isinstance(value, int | float) else escape(str(value))
    return f"{text} {unit}".strip()


# --- /health ------------------------------------------------------------------------------------------------


def health_text(report: HealthReport, tz: ZoneInfo) -> str:
    firing = [f for f in report.findings if f.firing]
    head = _("🩺 <b>Health</b> at {time}").format(time=local_time(report.at, tz))
    lines = [head]
    if firing:
        lines.append(_("Needs attention:"))
        lines += [f"❗ {escape(type_title(f.type))}" for f in firing]
    else:
        lines.append(_("✅ CRM, sync, sender and the CRM API are healthy."))
    last = report.last_good_sync
    lines.append(_("Last good sync: {time}").format(time=local_time(last, tz) if last is not None else "—"))
    lines.append(_("CRM writes waiting: {count}").format(count=report.outbox_backlog))
    k = report.kpis
    lines.append("")
    lines.append(_("<b>Last 24 h</b>"))
    lines.append(
        _("CRM API p95: {ms} over {count} requests, errors {errors}").format(
            ms=_num(k.get("api_p95_ms"), "ms"),
            count=_num(k.get("api_requests")),
            errors=_pct(k.get("api_error_rate")),
        )
    )
    incidents = int(k.get("incident_count") or 0)
    lines.append(
        ngettext("{count} incident, MTTR {mttr}", "{count} incidents, MTTR {mttr}", incidents).format(
            count=incidents, mttr=_num(k.get("mttr_min"), _("min"))
        )
    )
    lines.append(_("Contract violations: {count}").format(count=_num(k.get("data_contract_violations"))))
    lines.append(_("Critical-path health: {share}").format(share=_pct(k.get("critical_path_health"))))
    return "\n".join(lines)


def health_refused_text() -> str:
    return _("Only admins can see /health.")


# --- /funnel ------------------------------------------------------------------------------------------------


def funnel_text(kpis: Mapping[str, Any], days: int) -> str:
    lines = [
        ngettext(
            "📈 <b>Funnel</b>, the last {days} day", "📈 <b>Funnel</b>, the last {days} days", days
        ).format(days=days),
        _("Leads: {count}; lead → order {conversion}; checkout → booking {booking}").format(
            count=kpis.get("lead_count", 0),
            conversion=_pct(kpis.get("lead_to_order_conversion")),
            booking=_pct(kpis.get("checkout_to_booking_conversion")),
        ),
    ]
    drops = kpis.get("funnel_drop_off") or {}
    lines.append(_("Drop-off per stage:"))
    lines += [f"· {escape(stage_label(stage))}: {_pct(value)}" for stage, value in drops.items()]
    lines.append("")
    lines.append(_("<b>Channels</b> (leads · conversion · quality · cost per order · margin)"))
    leads = kpis.get("leads_by_channel") or {}
    conversion = kpis.get("lead_to_order_conversion_by_channel") or {}
    quality = kpis.get("channel_quality_score") or {}
    cost = kpis.get("cost_per_order_eur") or {}
    margin = kpis.get("gross_margin_by_channel_eur") or {}
    for channel in sorted(leads, key=lambda c: -int(leads[c])):
        figures = (
            _pct(conversion.get(channel)),
            _num(quality.get(channel)),
            _num(cost.get(channel), "€"),
            _num(margin.get(channel), "€"),
        )
        lines.append(f"· <b>{escape(channel)}</b>: {leads[channel]} · " + " · ".join(figures))
    if not leads:
        lines.append(_("No leads in this window."))
    lines.append(_("Quality 100 = the average channel's conversion."))
    return "\n".join(lines)


def funnel_chart_labels() -> FunnelChartLabels:
    return FunnelChartLabels(title=_("Lead → order conversion per channel"), axis=_("conversion, %"))


def funnel_chart_caption(start: date, end: date) -> str:
    return _("Daily conversion per channel, {start} – {end}").format(
        start=start.strftime("%d.%m"), end=end.strftime("%d.%m")
    )


def funnel_usage_text() -> str:
    return _("Usage: /funnel [days N], N from 1 to 90 (default 7).")


def funnel_refused_text() -> str:
    return _("Only the owner and admins can see /funnel.")


# --- the digests' circle sections --------------------------------------------------------------------------


def circle_news_text(news: CircleNews) -> str:
    """The sections to append to a digest ("" when no circle has anything to say)."""
    if news.empty:
        return ""
    lines: list[str] = [""]
    if news.held_orders or news.drift_last_day or (news.coverage_last_day or 1) < 1:
        lines.append(_("<b>Governance</b>"))
        for order, entry, score in news.held_orders[:5]:
            lines.append(
                _("⛔ Order {order} held: sanctions list match {entry} ({score})").format(
                    order=escape(order), entry=escape(entry), score=f"{score:g}"
                )
            )
        if news.drift_last_day:
            lines.append(
                ngettext(
                    "{count} process deviation in the CRM in the last day",
                    "{count} process deviations in the CRM in the last day",
                    news.drift_last_day,
                ).format(count=news.drift_last_day)
            )
        if news.coverage_last_day is not None and news.coverage_last_day < 1:
            lines.append(
                _("Sanctions screening coverage: {share}").format(share=_pct(news.coverage_last_day))
            )
    if news.firing or news.incidents_last_day:
        lines.append(_("<b>Reliability</b>"))
        lines += [f"❗ {escape(type_title(kind))}" for kind in news.firing]
        if news.incidents_last_day:
            lines.append(
                ngettext(
                    "{count} incident in the last day",
                    "{count} incidents in the last day",
                    news.incidents_last_day,
                ).format(count=news.incidents_last_day)
            )
    if news.revenue_alerts:
        lines.append(_("<b>Revenue</b>"))
        for kind, details in news.revenue_alerts[:5]:
            subject = details.get("channel") or stage_label(str(details.get("stage", "")))
            lines.append(
                _("📉 {what}: {value} (normal {band}) since {since}").format(
                    what=escape(f"{type_title(kind)} · {subject}"),
                    value=_pct(details.get("value")),
                    band=escape(str(details.get("band", "—"))),
                    since=escape(str(details.get("since", "—"))),
                )
            )
    return "\n".join(lines)
