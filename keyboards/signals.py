"""Signal pings and the texts around them: the ping card with its buttons (re-rendered on every state change),
reminders, "still on it?" questions, resolution notices, postmortem questions, and the callback data of the
buttons, the /signals list and the /log pages.

Texts are HTML (the bot's default parse mode); every value that comes from data is escaped. Render inside the
chat's locale (`with in_locale(lang):`) or inside a handler, where the middleware set the caller's locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import _, ngettext
from domain.dispatch import Candidate
from domain.signals import (
    MAX_COMMENT,
    MAX_POSTMORTEM_ANSWER,
    DecideAction,
    Level,
    Signal,
    SignalCommand,
    SignalFilter,
)
from domain.statuses import Status
from keyboards.circle_signals import CIRCLE_SIGNALS, circle_facts, circle_title
from keyboards.orders import status_label
from keyboards.risk_signals import risk_facts
from keyboards.signal_input import BUTTON_CODE_OF, CALLBACK_PREFIX, ParseError
from storage.assignments import DispatchManager
from storage.signals import Decision, Postmortem

_MAX_DETAIL_LINES = 6
_MAX_DETAIL_CHARS = 120
_MAX_HISTORY = 15  # decisions shown under /signal ID
_SEVERITY_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "⚪"}


class SignalCallback(CallbackData, prefix=CALLBACK_PREFIX):
    """A ping button: signal id, action code (keyboards.signal_input.BUTTON_CODES) and, for reassign, a
    manager id."""

    id: int
    a: str
    m: str | None = None


class CheckinCallback(CallbackData, prefix="ci"):
    """ "Still on it" on an accepted order without progress: the status visit (sla_timers id) it answers."""

    t: int


class SignalsPage(CallbackData, prefix="sgl"):
    p: int
    sev: str | None = None
    c: str | None = None
    o: str | None = None


class LogPage(CallbackData, prefix="lgp"):
    p: int


class PostmortemsPage(CallbackData, prefix="pmp"):
    p: int


def signal_button(signal_id: int, action: DecideAction, manager_id: str | None = None) -> str:
    return SignalCallback(id=signal_id, a=BUTTON_CODE_OF[action], m=manager_id).pack()


# --- labels -------------------------------------------------------------------------------------------------


def type_title(code: str) -> str:
    titles = {
        "sla.breach": _("SLA breach"),
        "order.stuck_72h": _("Order stuck for 72 h"),
        "order.unassigned": _("Order without a manager"),
        "order.accept_timeout": _("Order not accepted in time"),
        "order.no_progress": _('No answer to "still on it?"'),
        "quality.severe_defect": _("Severe defect found"),
        "sync.contract_violation": _("CRM record breaks the contract"),
        "telegram.chat_blocked": _("Chat blocked the bot"),
        "postmortem.missing": _("Postmortem missing"),
        "decision.approval_needed": _("Approval needed"),
        "compliance.sanctions_hit": _("Sanctions list hit: order held"),
        "governance.process_drift": _("Process bypassed in the CRM"),
        "reliability.crm_unreachable": _("CRM unreachable"),
        "reliability.crm_slow": _("CRM slow"),
        "reliability.sync_lagging": _("Sync lagging"),
        "reliability.sender_backlog": _("Telegram sender backlog growing"),
        "reliability.contract_violations": _("Burst of CRM contract violations"),
        "revenue.channel_conversion": _("Channel conversion out of its normal band"),
        "revenue.stage_drop_off": _("Funnel stage drop-off out of its normal band"),
    }
    return titles.get(code) or circle_title(code) or code


def severity_label(severity: str) -> str:
    labels = {"critical": _("critical"), "high": _("high"), "medium": _("medium"), "low": _("low")}
    return labels.get(severity, severity)


def level_label(level: Level) -> str:
    return {Level.MANAGER: _("manager"), Level.LEAD: _("lead"), Level.OWNER: _("owner")}[level]


def approval_label(action: str) -> str:
    labels = {
        "cancel": _("cancel the order"),
        "compensation": _("pay a compensation"),
        "bulk_reassign": _("reassign orders in bulk"),
        "sanctions_review": _("clear a sanctions hit"),
    }
    return labels.get(action, action)


def local_time(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%d.%m %H:%M")


def _who(person: int | str | None, names: Mapping[int, str]) -> str:
    if person is None:
        return "—"
    if isinstance(person, str):
        if not person.isdigit():
            return escape(person)
        person = int(person)
    return escape(names.get(person, str(person)))


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return escape(text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…")


def _status_text(value: str) -> str:
    """A status in the reader's language; a name we do not know (a CRM's own) is shown as it came."""
    try:
        return status_label(Status(value))
    except ValueError:
        return _value(value)


def _facts(signal: Signal, tz: ZoneInfo) -> list[str]:
    details = signal.details
    lines: list[str] = []
    if signal.type in ("sla.breach", "order.stuck_72h") and "status" in details:
        lines.append(_("Status: {status}").format(status=_status_text(str(details["status"]))))
        if "budget_minutes" in details and signal.type == "sla.breach":
            lines.append(
                _("Budget: {minutes} min ({clock} time), policy {version}").format(
                    minutes=details["budget_minutes"],
                    clock=_value(details.get("clock", "")),
                    version=_value(details.get("policy_version", "")),
                )
            )
        if "since" in details:
            since = datetime.fromisoformat(str(details["since"]))
            lines.append(_("In this status since {time}").format(time=local_time(since, tz)))
    elif signal.type in CIRCLE_SIGNALS:
        lines += circle_facts(signal.type, details)
    elif (facts := risk_facts(signal.type, details)) is not None:
        lines += facts
    elif signal.type == "decision.approval_needed":
        lines.append(
            _("Waiting for approval: {action}").format(
                action=escape(approval_label(str(details.get("action"))))
            )
        )
        if details.get("reason"):
            lines.append(_("Why: {reason}").format(reason=_value(details["reason"])))
    else:
        shown = [(k, v) for k, v in details.items() if not isinstance(v, dict | list)][:_MAX_DETAIL_LINES]
        lines += [f"{escape(str(k))}: {_value(v)}" for k, v in shown]
    return lines


def _state_line(signal: Signal, names: Mapping[int, str], tz: ZoneInfo) -> str:
    if signal.state == "resolved" and signal.resolved_at is not None:
        return _("✅ Resolved by {who} at {time}: {resolution}").format(
            who=_who(signal.resolved_by, names),
            time=local_time(signal.resolved_at, tz),
            resolution=_value(signal.resolution or "—"),
        )
    if signal.state == "acknowledged" and signal.acked_at is not None:
        line = _("👀 Acknowledged by {who} at {time}").format(
            who=_who(signal.acked_by, names), time=local_time(signal.acked_at, tz)
        )
        if signal.snoozed_until is not None:
            line += "\n" + _("💤 Snoozed until {time}").format(time=local_time(signal.snoozed_until, tz))
        return line
    return _("❗ Open · with the {level} · respond by {time}").format(
        level=level_label(signal.level), time=local_time(signal.deadline_at, tz)
    )


def ping_text(signal: Signal, *, names: Mapping[int, str], tz: ZoneInfo) -> str:
    head = "{icon} <b>{severity}</b> · {title} · #{id}".format(
        icon=_SEVERITY_ICON.get(signal.severity, ""),
        severity=escape(severity_label(signal.severity).upper()),
        title=escape(type_title(signal.type)),
        id=signal.id,
    )
    lines = [head]
    if signal.order_id is not None:
        lines.append(_("Order {order}").format(order=escape(signal.order_id)))
    lines += _facts(signal, tz)
    if signal.owner_person is not None and signal.state != "resolved":
        lines.append(_("Owner: {who}").format(who=_who(signal.owner_person, names)))
    if signal.repeats:
        seen = ngettext(
            "Seen {count} more time, last at {time}",
            "Seen {count} more times, last at {time}",
            signal.repeats,
        )
        lines.append(seen.format(count=signal.repeats, time=local_time(signal.last_seen_at, tz)))
    lines.append(_state_line(signal, names, tz))
    return "\n".join(lines)


def _button(text: str, signal_id: int, action: DecideAction) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=signal_button(signal_id, action))


def ping_keyboard(signal: Signal) -> InlineKeyboardMarkup:
    """The buttons of a ping in its state; a resolved signal shows none (an empty keyboard removes them)."""
    if signal.state == "resolved":
        return no_buttons()
    rows: list[list[InlineKeyboardButton]] = []
    if signal.needs_decision and signal.type == "compliance.sanctions_hit":
        rows.append([_button(_("✅ False positive: release the order"), signal.id, DecideAction.APPROVE)])
        rows.append([_button(_("⛔ Confirmed: cancel the order"), signal.id, DecideAction.REJECT)])
    elif signal.needs_decision:
        rows.append(
            [
                _button(_("✅ Approve"), signal.id, DecideAction.APPROVE),
                _button(_("⛔ Reject"), signal.id, DecideAction.REJECT),
            ]
        )
    first = (
        [] if signal.state == "acknowledged" else [_button(_("👀 Acknowledge"), signal.id, DecideAction.ACK)]
    )
    if not signal.needs_decision:
        first.append(_button(_("✔ Resolve"), signal.id, DecideAction.RESOLVE))
    if first:
        rows.append(first)
    rows.append(
        [
            _button(_snooze_label(signal.ladder.snooze_short_hours), signal.id, DecideAction.SNOOZE_1H),
            _button(_snooze_label(signal.ladder.snooze_long_hours), signal.id, DecideAction.SNOOZE_4H),
        ]
    )
    rows.append([_button(_("↪ Reassign"), signal.id, DecideAction.REASSIGN)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _snooze_label(hours: int) -> str:
    return ngettext("💤 Snooze {hours} h", "💤 Snooze {hours} h", hours).format(hours=hours)


def no_buttons() -> InlineKeyboardMarkup:
    """An empty keyboard: editing a message with it removes the buttons it had."""
    return InlineKeyboardMarkup(inline_keyboard=[])


def markup_dict(keyboard: InlineKeyboardMarkup) -> dict[str, Any]:
    return keyboard.model_dump(exclude_none=True)


def reassign_keyboard(signal_id: int, managers: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button per manager (id, display name): the name is the label, only the id goes into the data."""
    rows = [
        [
            InlineKeyboardButton(
                text=name, callback_data=signal_button(signal_id, DecideAction.REASSIGN, manager_id)
            )
        ]
        for manager_id, name in managers
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


# --- notices ------------------------------------------------------------------------------------------------


def reminder_text(*, order_id: str, status: str, share: float, breach_at: datetime, tz: ZoneInfo) -> str:
    return _("⏰ Order {order} has used {share} of its time in {status}: move it on by {time}.").format(
        order=escape(order_id),
        share=f"{round(share * 100)}%",
        status=_status_text(status),
        time=local_time(breach_at, tz),
    )


def still_on_it_text(signal: Signal, *, reply_by: datetime, tz: ZoneInfo) -> str:
    return _(
        "Still on it? Signal #{id} ({title}) shows no progress. Answer by {time}, or it goes up the ladder."
    ).format(id=signal.id, title=escape(type_title(signal.type)), time=local_time(reply_by, tz))


def still_on_it_keyboard(signal_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(_("🙋 Still on it"), signal_id, DecideAction.STILL_ON_IT)]]
    )


def checkin_text(*, order_id: str, reply_by: datetime, tz: ZoneInfo) -> str:
    return _(
        "Still on it? Order {order} was accepted but has not moved on. "
        "Answer by {time}, or the leads are told."
    ).format(order=escape(order_id), time=local_time(reply_by, tz))


def checkin_keyboard(timer_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("🙋 Still on it"), callback_data=CheckinCallback(t=timer_id).pack())]
        ]
    )


def checkin_answered_text(order_id: str) -> str:
    return _("Thanks: order {order} stays with you.").format(order=escape(order_id))


def still_on_it_answered_text(signal_id: int) -> str:
    return _("Thanks: signal #{id} stays with you.").format(id=signal_id)


def resolved_notice(signal: Signal, *, names: Mapping[int, str]) -> str:
    return _(
        "Signal #{id} ({title}) that you raised or escalated was resolved by {who}: {resolution}"
    ).format(
        id=signal.id,
        title=escape(type_title(signal.type)),
        who=_who(signal.resolved_by, names),
        resolution=_value(signal.resolution or "—"),
    )


def postmortem_question(step: str, signal: Signal) -> str:
    questions = {
        "cause": _("Postmortem for signal #{id} ({title}), 1/4: what was the cause?"),
        "action": _("Postmortem for signal #{id} ({title}), 2/4: what was done about it?"),
        "effect": _(
            "Postmortem for signal #{id} ({title}), 3/4: what was the effect (on the client, the order)?"
        ),
        "prevention": _("Postmortem for signal #{id} ({title}), 4/4: what prevents it next time?"),
    }
    return questions[step].format(id=signal.id, title=escape(type_title(signal.type)))


def postmortem_done_text(signal_id: int) -> str:
    return _("Postmortem for signal #{id} is saved. Thank you.").format(id=signal_id)


def postmortem_card(postmortem: Postmortem, *, names: Mapping[int, str], tz: ZoneInfo) -> str:
    lines = [
        _("Postmortem #{id} · signal #{signal} · {who} · {time}").format(
            id=postmortem.id,
            signal=postmortem.signal_id,
            who=_who(postmortem.author, names),
            time=local_time(postmortem.created_at, tz),
        )
    ]
    if postmortem.step != "done":
        lines.append(_("(in progress: waiting for the {step})").format(step=escape(postmortem.step)))
    for label, value in (
        (_("Cause"), postmortem.cause),
        (_("Action"), postmortem.action),
        (_("Effect"), postmortem.effect),
        (_("Prevention"), postmortem.prevention),
    ):
        if value:
            lines.append(f"{label}: {_value(value)}")
    return "\n".join(lines)


# --- lists --------------------------------------------------------------------------------------------------


def signal_line(signal: Signal, tz: ZoneInfo) -> str:
    order = _(" · order {order}").format(order=escape(signal.order_id)) if signal.order_id else ""
    state = {"open": _("open"), "acknowledged": _("acknowledged"), "resolved": _("resolved")}[signal.state]
    return "{icon} #{id} {title}{order} · {state} · {deadline}".format(
        icon=_SEVERITY_ICON.get(signal.severity, ""),
        id=signal.id,
        title=escape(type_title(signal.type)),
        order=order,
        state=state,
        deadline=_("by {time}").format(time=local_time(signal.deadline_at, tz)),
    )


def decision_line(decision: Decision, tz: ZoneInfo, names: Mapping[int, str]) -> str:
    subject = []
    if decision.signal_id is not None:
        subject.append(f"#{decision.signal_id}")
    if decision.order_id is not None:
        subject.append(_("order {order}").format(order=escape(decision.order_id)))
    kind = _("auto") if decision.kind == "auto" else _("human")
    line = "{time} · {kind} · {action} {subject} · {who}: {reason}".format(
        time=local_time(decision.created_at, tz),
        kind=kind,
        action=escape(decision.action),
        subject=" ".join(subject),
        who=_who(decision.actor, names),
        reason=_value(decision.reason),
    )
    if decision.state != "done":
        line += f" [{escape(decision.state)}]"
    if decision.effect is not None:
        line += "\n   " + effect_text(decision.effect)
    return line


def effect_text(effect: Mapping[str, Any]) -> str:
    if effect.get("moved_to"):
        return _("→ effect: the order moved to {status} after {minutes} min").format(
            status=escape(str(effect["moved_to"])), minutes=effect.get("minutes", "?")
        )
    return _("→ effect: no status change within {minutes} min").format(minutes=effect.get("minutes", "?"))


def pager(page: int, pages: int, make: Callable[[int], str]) -> InlineKeyboardMarkup | None:
    """◀ / ▶ buttons for a paged list; `make(page)` packs the callback data of a page."""
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton(text="◀", callback_data=make(page - 1)))
    if page + 1 < pages:
        buttons.append(InlineKeyboardButton(text="▶", callback_data=make(page + 1)))
    return InlineKeyboardMarkup(inline_keyboard=[buttons]) if buttons else None


def signals_page_data(page: int, where: SignalFilter) -> str:
    return SignalsPage(
        p=page, sev=where.severity, c=str(where.circle) if where.circle else None, o=where.order_id
    ).pack()


# --- answers to commands and button presses ---------------------------------------------------------------


def parse_error_text(error: ParseError) -> str:
    """One line saying what is wrong with the input and what is expected."""
    value = escape(error.value)
    texts = {
        "missing_id": _("Which signal? Use: /decide ID ACTION [comment], e.g. /decide 12 ack."),
        "bad_id": _("“{value}” is not a signal id. Use: /decide ID ACTION [comment] with a number as ID."),
        "missing_action": _(
            "What should happen? Use: /decide ID ACTION [comment]; "
            "ACTION is ack, resolve, approve, reject, reassign MANAGER or escalate."
        ),
        "unknown_action": _(
            "Unknown action “{value}”. "
            "Expected one of: ack, resolve, approve, reject, reassign MANAGER, escalate."
        ),
        "missing_manager": _("Reassign to whom? Use: /decide ID reassign MANAGER_ID [comment]."),
        "bad_manager": _("“{value}” is not a manager id. Use: /decide ID reassign MANAGER_ID [comment]."),
        "comment_too_long": _("The comment is too long ({value} characters); keep it within {limit}."),
        "bad_callback": _("This button is not valid. Use /signals to see the open signals."),
        "unknown_filter": _(
            "Unknown filter “{value}”. Use: /signals [critical|high|medium|low] [circle] [order ID]."
        ),
        "bad_order": _("“{value}” is not an order id. Use: /signals order ID."),
    }
    return texts[error.code].format(value=value, limit=MAX_COMMENT)


def refusal_text(refusal: str, command: SignalCommand) -> str:
    texts = {
        "not_found": _("There is no signal #{id}. /signals lists the open ones."),
        "forbidden": _(
            "You cannot do this with signal #{id}: only leads, admins, the owner and the person who owns "
            "the signal can act on it."
        ),
        "resolved": _("Signal #{id} is already resolved; nothing changed."),
        "already_acknowledged": _("Signal #{id} is already acknowledged; nothing changed."),
        "needs_decision": _("Signal #{id} waits for a decision: approve or reject it."),
        "not_a_decision": _("Signal #{id} needs no approval: acknowledge or resolve it."),
        "top_of_ladder": _("Signal #{id} is already with the owner; it cannot go higher."),
        "unknown_manager": _("There is no manager “{manager}”. /managers lists them."),
        "manager_unreachable": _("Manager “{manager}” is inactive or has no Telegram account linked."),
        "not_asked": _("Signal #{id} is not waiting for a “still on it” answer; nothing changed."),
    }
    if refusal == "forbidden" and command.action in (DecideAction.APPROVE, DecideAction.REJECT):
        return _("Only an admin or the owner can approve or reject signal #{id}.").format(
            id=command.signal_id
        )
    return texts[refusal].format(id=command.signal_id, manager=escape(command.manager_id or ""))


def done_text(signal: Signal, command: SignalCommand, tz: ZoneInfo) -> str:
    sid = signal.id
    snooze = (DecideAction.SNOOZE_1H, DecideAction.SNOOZE_4H)
    if command.action in snooze and signal.snoozed_until is not None:
        return _("Signal #{id} snoozed until {time}.").format(
            id=sid, time=local_time(signal.snoozed_until, tz)
        )
    texts = {
        DecideAction.ACK: _("Signal #{id} acknowledged: it is yours now."),
        DecideAction.RESOLVE: _("Signal #{id} resolved."),
        DecideAction.APPROVE: _("Signal #{id}: approved."),
        DecideAction.REJECT: _("Signal #{id}: rejected."),
        DecideAction.REASSIGN: _("Signal #{id} reassigned to manager {manager}."),
        DecideAction.ESCALATE: _("Signal #{id} escalated to the {level}."),
        DecideAction.STILL_ON_IT: _("Thanks: signal #{id} stays with you."),
    }
    return texts[command.action].format(
        id=sid, manager=escape(command.manager_id or ""), level=level_label(signal.level)
    )


def postmortem_sent_text() -> str:
    return _("The postmortem questions are waiting in your private chat with the bot.")


def notes_text(notes: Sequence[str]) -> str:
    """The extra facts of a command's answer (backbone.commands.Outcome.notes), each after a space."""
    texts = {
        "postmortem": postmortem_sent_text(),
        "carried_out": _("Done: the approved action was carried out."),
        "rejected": _("The requester was told; nothing changed."),
        "moved_on": _("The order had moved on meanwhile: nothing was changed."),
    }
    return "".join(" " + texts[n] for n in notes if n in texts)


def staff_only_text(command: str) -> str:
    return _("Only leads, admins and the owner can use {command}.").format(command=command)


def pick_manager_text(signal_id: int) -> str:
    return _("Reassign signal #{id} to:").format(id=signal_id)


def no_managers_text() -> str:
    return _("No active manager with Telegram linked: nobody to reassign to.")


def checkin_answer_text(result: str) -> str:
    texts = {
        "done": _("Thanks, noted."),
        "not_found": _("This question is not valid any more."),
        "forbidden": _("This question was for another manager."),
        "too_late": _("Too late: this was already answered or handed to the leads."),
    }
    return texts[result]


# --- admin views -------------------------------------------------------------------------------------------


class ManagerRow(Protocol):
    """A line of /managers (circles.sales_ops.dispatcher.ManagerLine)."""

    @property
    def manager(self) -> DispatchManager: ...
    @property
    def candidate(self) -> Candidate: ...
    @property
    def on_shift(self) -> bool: ...


def _filter_label(where: SignalFilter) -> str:
    parts = []
    if where.severity:
        parts.append(severity_label(where.severity))
    if where.circle:
        parts.append(escape(str(where.circle)))
    if where.order_id:
        parts.append(_("order {order}").format(order=escape(where.order_id)))
    return " (" + ", ".join(parts) + ")" if parts else ""


def _page_label(page: int, pages: int) -> str:
    return _("page {page}/{pages}").format(page=page + 1, pages=pages)


def signals_list(
    signals: Sequence[Signal], *, where: SignalFilter, total: int, page: int, pages: int, tz: ZoneInfo
) -> str:
    if not total:
        return _("No open signals{filter}.").format(filter=_filter_label(where))
    head = _("Open signals{filter}: {total} · {page}").format(
        filter=_filter_label(where), total=total, page=_page_label(page, pages)
    )
    return "\n".join([f"<b>{head}</b>", *(signal_line(s, tz) for s in signals), _("Details: /signal ID")])


def signal_usage(error: ParseError) -> str:
    if error.code == "missing_id":
        return _("Which signal? Use: /signal ID, e.g. /signal 12.")
    return _("“{value}” is not a signal id. Use: /signal ID with a number.").format(value=escape(error.value))


def no_signal(signal_id: int) -> str:
    return _("There is no signal #{id}. /signals lists the open ones.").format(id=signal_id)


def signal_details(
    signal: Signal, decisions: Sequence[Decision], *, names: Mapping[int, str], tz: ZoneInfo
) -> str:
    lines = [ping_text(signal, names=names, tz=tz), "", "<b>" + _("Decisions") + "</b>"]
    lines += [decision_line(d, tz, names) for d in decisions[-_MAX_HISTORY:]] or [_("none yet")]
    return "\n".join(lines)


def decision_log(
    decisions: Sequence[Decision],
    *,
    total: int,
    page: int,
    pages: int,
    names: Mapping[int, str],
    tz: ZoneInfo,
) -> str:
    if not total:
        return _("The decision log is empty.")
    head = _("Decision log: {total} · {page}").format(total=total, page=_page_label(page, pages))
    return "\n".join([f"<b>{head}</b>", *(decision_line(d, tz, names) for d in decisions)])


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


def postmortem_list(
    items: Sequence[Postmortem], *, total: int, page: int, pages: int, names: Mapping[int, str], tz: ZoneInfo
) -> str:
    if not total:
        return _("No postmortems yet.")
    head = _("Postmortems: {total} · {page}").format(total=total, page=_page_label(page, pages))
    return "\n\n".join([f"<b>{head}</b>", *(postmortem_card(p, names=names, tz=tz) for p in items)])


def postmortem_reply(signal: Signal, next_step: str | None, refusal: str | None) -> str:
    """The answer to a postmortem message: the next question, the thanks, or what was wrong with it."""
    if refusal == "too_long":
        return _(
            "That is too long for a postmortem answer (at most {limit} characters); please shorten it."
        ).format(limit=MAX_POSTMORTEM_ANSWER)
    if refusal == "empty" or next_step is None:
        return postmortem_question(next_step or "cause", signal)
    if next_step == "done":
        return postmortem_done_text(signal.id)
    return postmortem_question(next_step, signal)
