"""The digests' texts and detail buttons: the owner's morning digest (short, for a phone), the chart's labels,
the KPI table of /kpi, the success-criteria block, the leads' operations digest, the weekly retrospective, and
the detail messages behind the buttons.

Texts are HTML (the bot's default parse mode); every value that comes from data is escaped. Render inside the
chat's locale (`with in_locale(lang):`) or inside a handler, where the middleware set the caller's locale.
Numbers are formatted for that locale with Babel; a value that is not known shows as "—", never as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from babel.numbers import format_decimal, format_percent

from bot.i18n import _, i18n
from circles.sales_ops.charts import ChartLabels
from circles.sales_ops.kpi import KpiOverview
from domain.kpi import (
    COMPLETENESS,
    COVERAGE,
    CRITICAL_BREACH_RATE,
    OPEN_IN_ORDER,
    PENDING,
    STUCK,
    THROUGHPUT,
    TTN_MEDIAN,
    Change,
    Criterion,
    Queue,
    Ratio,
    RetroGroup,
    RetroSignal,
    Window,
)
from domain.statuses import Status
from keyboards.orders import next_step_label, status_label, when
from keyboards.outcomes import action_label
from keyboards.signals import effect_text, type_title
from storage.kpi import Blocker, SignalLine

SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "⚪"}
MAX_MANAGERS = 10  # throughput lines in the KPI table; the rest are summed up in one line


class DigestCallback(CallbackData, prefix="dg"):
    """A detail button under a digest: `s` is a section code of SECTIONS; `d` the retrospective's week (its
    first day, YYYYMMDD)."""

    s: str
    d: str | None = None


# Section code -> who may open it (roles of bot.roles.Role).
SECTIONS: dict[str, frozenset[str]] = {
    "k": frozenset({"owner", "admin"}),  # the KPI table
    "c": frozenset({"owner", "admin"}),  # success criteria in full
    "s": frozenset({"owner", "admin", "lead"}),  # open critical and high signals
    "b": frozenset({"owner", "admin", "lead"}),  # blockers
    "u": frozenset({"owner", "admin", "lead"}),  # unacknowledged signals
    "m": frozenset({"owner", "admin", "lead"}),  # manager loads
    "r": frozenset({"owner", "admin"}),  # every signal of a week
}


Kind = Literal["count", "share", "time"]  # how a value is written and its change measured


# --- formatting -------------------------------------------------------------------------------------------


def _locale() -> str:
    return i18n.current_locale


def number(value: float | None) -> str:
    return "—" if value is None else format_decimal(round(value, 1), format="#,##0.#", locale=_locale())


def percent(value: float | None) -> str:
    return "—" if value is None else format_percent(value, format="#,##0.#%", locale=_locale())


def ratio(value: Ratio | None) -> str:
    """A share with the counts it is made of: "12.5% (3 of 24)"."""
    if value is None or value.value is None:
        return "—"
    return _("{share} ({part} of {whole})").format(
        share=percent(value.value), part=value.part, whole=value.whole
    )


def duration(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    if minutes < 90:
        return _("{n} min").format(n=number(round(minutes)))
    if minutes < 48 * 60:
        return _("{n} h").format(n=number(minutes / 60))
    return _("{n} d").format(n=number(minutes / 1440))


def _signed(text: str, value: float) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + text


def change(value: float | None, reference: float | None, kind: Kind) -> str:
    """The change from `reference` to `value`: counts as a difference, shares in percentage points, times in
    percent; "—" when either is unknown."""
    delta = Change(value, reference)
    if delta.delta is None:
        return "—"
    if kind == "share":
        return _signed(_("{n} pp").format(n=number(abs(delta.delta) * 100)), delta.delta)
    if kind == "time":
        relative = delta.relative
        return "—" if relative is None else _signed(percent(abs(relative)), relative)
    return _signed(number(abs(delta.delta)), delta.delta)


def _value(value: float | None, kind: Kind) -> str:
    return percent(value) if kind == "share" else duration(value) if kind == "time" else number(value)


# Public names for the panel's circle registry (circles/sales_ops/panel.py): the same lines and formats.
def headline_kpis(hours: int) -> list[tuple[str, tuple[str, str], Kind]]:
    return _headline_kpis(hours)


def value_text(value: float | None, kind: Kind) -> str:
    return _value(value, kind)


# --- the owner's morning digest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerDigestView:
    overview: KpiOverview
    signals: Sequence[SignalLine]  # open critical and high signals, the most urgent first
    signals_total: int
    blockers: Sequence[Blocker]
    blockers_total: int
    tz: ZoneInfo


def _headline_kpis(hours: int) -> list[tuple[str, tuple[str, str], Kind]]:
    """(label, metric key, kind) of the digest's KPI lines; `hours` is the policy's stuck limit."""
    return [
        (_("Waiting for a manager"), (PENDING, ""), "count"),
        (_("Time to accept, median"), (TTN_MEDIAN, Status.PENDING_MANAGER.value), "time"),
        (_("Stuck over {hours} h").format(hours=hours), (STUCK, ""), "share"),
        (_("Breaches on critical stages"), (CRITICAL_BREACH_RATE, ""), "share"),
        (_("Owner coverage"), (COVERAGE, ""), "share"),
        (_("Escalations complete"), (COMPLETENESS, ""), "share"),
        (_("Moves forward a day"), (THROUGHPUT, ""), "count"),
    ]


def kpi_lines(overview: KpiOverview) -> list[str]:
    lines = []
    for label, key, kind in _headline_kpis(overview.report.stuck_hours):
        value = overview.today.get(key)
        yesterday = change(value, overview.yesterday.get(key), kind)
        baseline = change(value, overview.baseline.values.get(key), kind)
        line = _("• {label}: <b>{value}</b>").format(label=label, value=_value(value, kind))
        if (yesterday, baseline) != ("—", "—"):
            line += " " + _("({yesterday} / {baseline})").format(yesterday=yesterday, baseline=baseline)
        lines.append(line)
    return lines


def criterion_title(criterion: Criterion, hours: int) -> str:
    titles = {
        "pending_manager": _("Queue for a manager −30 %"),
        "stuck_share": _("Stuck over {hours} h −40 %").format(hours=hours),
        "critical_breach_rate": _("Breaches on critical stages < 10 %"),
        "owner_coverage": _("Owner coverage 100 %"),
        "escalation_completeness": _("Escalation completeness 100 %"),
    }
    return titles.get(criterion.rule.key, criterion.rule.key)


def _criterion_mark(criterion: Criterion) -> str:
    return {True: "✅", False: "❌", None: "⬜"}[criterion.met]


def criterion_line(criterion: Criterion, hours: int) -> str:
    kind: Kind = "count" if criterion.rule.metric == PENDING else "share"
    values = {
        "mark": _criterion_mark(criterion),
        "title": escape(criterion_title(criterion, hours)),  # "< 10 %" must not read as an HTML tag
        "today": _value(criterion.today, kind),
        "baseline": _value(criterion.baseline, kind),
        "comparison": escape({"reduce": "≤", "below": "<", "at_least": "≥"}[criterion.rule.kind]),
        "target": _value(criterion.target, kind),
    }
    if criterion.target is None:  # a cut from a baseline we do not have yet
        return _("{mark} {title}: now {today}, no baseline yet").format(**values)
    if criterion.rule.kind != "reduce":
        return _("{mark} {title}: now {today} (baseline {baseline})").format(**values)
    return _("{mark} {title}: now {today}, baseline {baseline}, target {comparison} {target}").format(
        **values
    )


def baseline_note(overview: KpiOverview) -> str:
    notes = {
        "import": _("baseline imported"),
        "install": _("baseline: the first 14 days"),
        "history": _("baseline: CRM history before install"),
    }
    source = overview.baseline.source
    return notes.get(source, source) if source is not None else _("no baseline yet")


def criteria_block(overview: KpiOverview) -> list[str]:
    met = sum(1 for c in overview.criteria if c.met)
    head = _("<b>Release criteria: {met} of {total} met</b> ({note})").format(
        met=met, total=len(overview.criteria), note=baseline_note(overview)
    )
    hours = overview.report.stuck_hours
    return [head, *(criterion_line(c, hours) for c in overview.criteria)]


def _owner(name: str | None, person: int | None) -> str:
    if name:
        return escape(name)
    return str(person) if person is not None else _("nobody")


def signal_line(signal: SignalLine, now: datetime, tz: ZoneInfo) -> str:
    order = _(" · order {order}").format(order=escape(signal.order_id)) if signal.order_id else ""
    late = _(" · overdue") if signal.deadline_at <= now else ""
    return _("{mark} #{id} {type}{order} · {owner} · by {deadline}{late}").format(
        mark=SEVERITY_MARK.get(signal.severity, "•"),
        id=signal.id,
        type=type_title(signal.type),
        order=order,
        owner=_owner(signal.owner_name, signal.owner_person),
        deadline=when(signal.deadline_at, tz),
        late=late,
    )


def blocker_line(blocker: Blocker, now: datetime, tz: ZoneInfo) -> str:
    overdue = (
        _(" · overdue since {when}").format(when=when(blocker.due_at, tz))
        if blocker.due_at is not None and blocker.due_at <= now
        else ""
    )
    return _("• <b>{order}</b> · {status} for {age} · {owner} → {step}{overdue}").format(
        order=escape(blocker.order_id),
        status=status_label(blocker.status),
        age=duration((now - blocker.status_since) / timedelta(minutes=1)),
        owner=escape(blocker.manager_name or blocker.manager_id or _("nobody")),
        step=next_step_label(blocker.status),
        overdue=overdue,
    )


def owner_digest_text(view: OwnerDigestView) -> str:
    overview = view.overview
    now = overview.report.at
    lines = [
        _("<b>☀️ Morning digest · {day}</b>").format(day=now.astimezone(view.tz).strftime("%d.%m")),
        "",
        _("<b>KPIs, 24 h</b> (vs yesterday / vs baseline)"),
        *kpi_lines(overview),
        "",
        *criteria_block(overview),
        "",
        _("<b>Critical and high signals: {n} open</b>").format(n=view.signals_total),
        *(signal_line(s, now, view.tz) for s in view.signals),
        "",
        _("<b>Top blockers: {n}</b>").format(n=view.blockers_total),
        *(blocker_line(b, now, view.tz) for b in view.blockers),
    ]
    return "\n".join(lines)


def _keyboard(buttons: Sequence[tuple[str, str]], *, week: str | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for text, section in buttons:
        builder.button(text=text, callback_data=DigestCallback(s=section, d=week))
    builder.adjust(2)
    return builder.as_markup()


def owner_digest_keyboard() -> InlineKeyboardMarkup:
    return _keyboard(
        [(_("📊 KPI table"), "k"), (_("🎯 Criteria"), "c"), (_("🚨 Signals"), "s"), (_("🧱 Blockers"), "b")]
    )


def chart_labels() -> ChartLabels:
    return ChartLabels(
        title=_("Queue and SLA breaches, 14 days"),
        queue=_("Orders waiting for a manager"),
        breaches=_("SLA breaches per day"),
    )


def chart_caption(day: date) -> str:
    return _("Queue and SLA breaches per day, 14 days to {day}").format(day=day.strftime("%d.%m"))


# --- the KPI table (/kpi and the digest's button) ---------------------------------------------------------


def kpi_table_text(overview: KpiOverview, tz: ZoneInfo) -> str:
    report = overview.report
    lines = [
        _("<b>KPIs, 24 h to {at}</b>").format(at=when(report.at, tz)),
        _("Waiting for a manager: <b>{n}</b> of {open} open orders").format(
            n=report.pending_manager, open=report.open_orders
        ),
        _("Stuck over {hours} h: {value}").format(hours=report.stuck_hours, value=ratio(report.stuck)),
        _("Owner coverage: {value}").format(value=ratio(report.coverage)),
        _("Escalations complete: {value}").format(value=ratio(report.completeness)),
        _("Breaches on critical stages: {value}").format(value=ratio(report.critical_breach_rate)),
        _("SLA breaches in 24 h: {n}").format(n=report.breaches),
        "",
        _("<b>Per status</b>: time to next status (median / p90) · breach rate"),
    ]
    for status in OPEN_IN_ORDER:
        stats = report.time_to_next[status]
        lines.append(
            _("{status}: {median} / {p90} · {rate}").format(
                status=status_label(status),
                median=duration(stats.median_minutes),
                p90=duration(stats.p90_minutes),
                rate=ratio(report.breach_rates[status]),
            )
        )
    lines += ["", _("<b>Moves forward a day</b>: {n}").format(n=number(report.throughput_total))]
    ranked = sorted(report.throughput.items(), key=lambda item: (-item[1], item[0]))
    for manager, per_day in ranked[:MAX_MANAGERS]:
        name = overview.manager_names.get(manager, manager)
        lines.append(_("{manager}: {n}").format(manager=escape(name), n=number(per_day)))
    if len(ranked) > MAX_MANAGERS:
        lines.append(_("… and {n} more managers").format(n=len(ranked) - MAX_MANAGERS))
    lines += ["", *criteria_block(overview)]
    return "\n".join(lines)


def criteria_text(overview: KpiOverview) -> str:
    lines = criteria_block(overview)
    lines += [
        "",
        _("Queue and stuck share are measured against the baseline; the other three against fixed targets."),
    ]
    return "\n".join(lines)


def signals_text(title: str, signals: Sequence[SignalLine], total: int, now: datetime, tz: ZoneInfo) -> str:
    lines = [_("<b>{title}: {n}</b>").format(title=title, n=total)]
    lines += [signal_line(s, now, tz) for s in signals] or [_("None.")]
    if total > len(signals):
        lines.append(_("… and {n} more: /signals").format(n=total - len(signals)))
    return "\n".join(lines)


def open_signals_title() -> str:
    return _("Open critical and high signals")


def unacknowledged_title() -> str:
    return _("Unacknowledged signals")


def blockers_text(blockers: Sequence[Blocker], total: int, now: datetime, tz: ZoneInfo) -> str:
    lines = [_("<b>Blockers: {n}</b> (past the SLA deadline or stuck, oldest first)").format(n=total)]
    lines += [blocker_line(b, now, tz) for b in blockers] or [_("None.")]
    if total > len(blockers):
        lines.append(_("… and {n} more").format(n=total - len(blockers)))
    return "\n".join(lines)


# --- the leads' operations digest -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadLine:
    name: str
    open_orders: int
    capacity: int
    load: float  # weighted load / capacity


@dataclass(frozen=True)
class LeadsDigestView:
    at: datetime
    queues: dict[Status, Queue]
    blockers: Sequence[Blocker]
    blockers_total: int
    overloaded: Sequence[LoadLine]
    unacknowledged: Sequence[SignalLine]
    unacknowledged_total: int
    tz: ZoneInfo


def load_line(line: LoadLine) -> str:
    return _("• {name}: {n} open of {capacity} (load {load})").format(
        name=escape(line.name), n=line.open_orders, capacity=line.capacity, load=percent(line.load)
    )


def leads_digest_text(view: LeadsDigestView) -> str:
    lines = [
        _("<b>📋 Operations · {day}</b>").format(day=view.at.astimezone(view.tz).strftime("%d.%m")),
        "",
        _("<b>Queues</b> (overdue / stuck)"),
    ]
    for status in OPEN_IN_ORDER:
        queue = view.queues.get(status, Queue(status))
        lines.append(
            _("{status}: <b>{n}</b> ({overdue} / {stuck})").format(
                status=status_label(status), n=queue.orders, overdue=queue.overdue, stuck=queue.stuck
            )
        )
    lines += ["", _("<b>Blockers: {n}</b>").format(n=view.blockers_total)]
    lines += [blocker_line(b, view.at, view.tz) for b in view.blockers]
    lines += ["", _("<b>Overloaded managers: {n}</b>").format(n=len(view.overloaded))]
    lines += [load_line(line) for line in view.overloaded]
    lines += ["", _("<b>Unacknowledged signals: {n}</b>").format(n=view.unacknowledged_total)]
    lines += [signal_line(s, view.at, view.tz) for s in view.unacknowledged]
    return "\n".join(lines)


def leads_digest_keyboard() -> InlineKeyboardMarkup:
    return _keyboard(
        [(_("🧱 All blockers"), "b"), (_("🔕 Unacknowledged"), "u"), (_("👥 Manager loads"), "m")]
    )


def managers_text(loads: Sequence[LoadLine]) -> str:
    lines = [_("<b>Manager loads</b> (open orders, weighted load)")]
    lines += [load_line(line) for line in loads] or [_("None.")]
    return "\n".join(lines)


# --- the weekly retrospective -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetroView:
    window: Window
    groups: Sequence[RetroGroup]
    helped: Ratio
    tz: ZoneInfo

    @property
    def week(self) -> str:
        return self.window.start.astimezone(self.tz).strftime("%Y%m%d")


RETRO_EXAMPLES = 3
_VERDICT = {True: "👍", False: "👎", None: "·"}  # did the signal's action help


def _effect(effect: Any) -> str:
    return effect_text(effect) if isinstance(effect, dict) else _("→ effect not observed yet")


def retro_signal_line(signal: RetroSignal) -> str:
    order = _(" · order {order}").format(order=escape(signal.order_id)) if signal.order_id else ""
    head = _("#{id}{order}").format(id=signal.signal_id, order=order)
    if not signal.actions:
        return head + _(": no action taken")
    verdict = _VERDICT[signal.helped]
    steps = "; ".join(
        _("{action} {effect}").format(action=escape(action_label(a.action)), effect=_effect(a.effect))
        for a in signal.actions
    )
    return _("{verdict} {head}: {steps}").format(verdict=verdict, head=head, steps=steps)


def _period(view: RetroView) -> str:
    last = view.window.end - timedelta(microseconds=1)
    return "{}–{}".format(
        view.window.start.astimezone(view.tz).strftime("%d.%m"), last.astimezone(view.tz).strftime("%d.%m")
    )


def _group_head(group: RetroGroup) -> str:
    return _("<b>{type}</b>: {n} · action helped {helped} · no action {none}").format(
        type=type_title(group.type),
        n=len(group.signals),
        helped=ratio(group.helped),
        none=group.without_action,
    )


def retro_text(view: RetroView) -> str:
    total = sum(len(g.signals) for g in view.groups)
    lines = [
        _("<b>🔁 Weekly retrospective · {period}</b>").format(period=_period(view)),
        _("Signals: {n} · action helped: {helped}").format(n=total, helped=ratio(view.helped)),
    ]
    if not view.groups:
        lines.append(_("No signals this week."))
    for group in view.groups:
        actions = ", ".join(f"{escape(action)} ×{n}" for action, n in group.actions.items())
        lines += ["", _group_head(group)]
        if actions:
            lines.append(_("Actions: {actions}").format(actions=actions))
        lines += [retro_signal_line(s) for s in group.signals[:RETRO_EXAMPLES]]
        if len(group.signals) > RETRO_EXAMPLES:
            lines.append(_("… and {n} more").format(n=len(group.signals) - RETRO_EXAMPLES))
    return "\n".join(lines)


def retro_keyboard(view: RetroView) -> InlineKeyboardMarkup | None:
    if not view.groups:
        return None
    return _keyboard([(_("📜 Every signal"), "r")], week=view.week)


def retro_details_text(view: RetroView) -> str:
    lines = [_("<b>Every signal · {period}</b>").format(period=_period(view))]
    for group in view.groups:
        lines += ["", _group_head(group), *(retro_signal_line(s) for s in group.signals)]
    return "\n".join(lines)


# --- refusals ---------------------------------------------------------------------------------------------


def kpi_refused_text() -> str:
    return _("Only admins can use /kpi.")


def digest_refused_text() -> str:
    return _("Only the owner and admins can use /digest.")


def detail_refused_text() -> str:
    return _("These details are not for you.")


def outdated_button_text() -> str:
    return _("This button is outdated; ask for a new digest.")
