"""How signals end and what a crisis looks like (issue 12): the resolution of a signal rendered from its
stored code and facts (a condition that cleared, a person's comment), the crisis facts and playbook on a ping,
the postmortem request in the crisis chat, and the texts of /crisis.

The store keeps codes and facts; these functions render them in the reader's language at display time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from bot.i18n import _, i18n, ngettext
from domain.signals import ClearWhen, Signal
from domain.statuses import Status
from keyboards.orders import status_label

CLEARED_PREFIX = "cleared:"
_MAX_CHARS = 300


def _short(text: str, limit: int = _MAX_CHARS) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _status(value: object) -> str:
    try:
        return status_label(Status(str(value)))
    except ValueError:
        return _short(str(value))


def cleared_resolution(code: ClearWhen) -> str:
    """The code a signal resolved by the system stores as its resolution."""
    return f"{CLEARED_PREFIX}{code}"


def cleared_what(code: str, facts: Mapping[str, Any]) -> str:
    """What cleared a signal's condition, as a clause."""
    status = _status(facts.get("status", ""))
    texts = {
        ClearWhen.ORDER_LEFT_STATUS: _("the order moved on to “{status}”"),
        ClearWhen.ORDER_OFFERED: _("a manager was offered the order"),
        ClearWhen.ORDER_MOVED: _("the order moved on to “{status}”"),
        ClearWhen.NEXT_RUN_OK: _("the next run went through"),
        ClearWhen.CHAT_UNBLOCKED: _("the chat unblocked the bot"),
    }
    try:
        text = texts[ClearWhen(code)]
    except ValueError:
        return _short(code)
    return text.format(status=status)


def resolution_text(signal: Signal) -> str:
    """A signal's resolution in the reader's language: what cleared it, or the resolver's own words."""
    resolution = signal.resolution or ""
    if resolution.startswith(CLEARED_PREFIX):
        facts = signal.details.get("cleared") or {}
        return cleared_what(resolution.removeprefix(CLEARED_PREFIX), facts)
    words = {
        "postmortem written": _("postmortem written"),
        "resolved": _("resolved"),
        "approved": _("approved and carried out"),
        "rejected": _("rejected"),
        "moot": _("out of date by then: nothing was changed"),
    }
    code, _sep, comment = resolution.partition(": ")
    if code in ("approved", "rejected", "moot") and comment:
        return f"{words[code]} — {_short(comment)}"
    return words.get(resolution) or _short(resolution or "—")


def cleared_line(signal: Signal, tz: ZoneInfo) -> str | None:
    """The ping's last line for a signal the system resolved because its condition cleared."""
    if signal.state != "resolved" or not (signal.resolution or "").startswith(CLEARED_PREFIX):
        return None
    facts = signal.details.get("cleared") or {}
    at = signal.resolved_at
    if isinstance(facts.get("at"), str):
        at = datetime.fromisoformat(facts["at"])
    assert at is not None
    return _("✅ Cleared by itself at {time}: {what}. The bot closed the signal.").format(
        time=at.astimezone(tz).strftime("%d.%m %H:%M"), what=resolution_text(signal)
    )


# --- the crisis protocol ----------------------------------------------------------------------------------


def _locale(source: I18n = i18n) -> str:
    return source.current_locale


def crisis_facts(signal: Signal, tz: ZoneInfo) -> list[str]:
    """The crisis's own words (who raised it, when, what they wrote) and its playbook, in the reader's
    language."""
    details = signal.details
    lines: list[str] = []
    if details.get("text"):
        lines.append(_("What happened: {text}").format(text=_short(str(details["text"]))))
    if details.get("by_name"):
        lines.append(
            _("Raised by {who} at {time}").format(
                who=_short(str(details["by_name"]), 80),
                time=signal.raised_at.astimezone(tz).strftime("%d.%m %H:%M"),
            )
        )
    if details.get("breaches"):
        count = int(details["breaches"])
        lines.append(
            ngettext(
                "{count} SLA breach within {minutes} min",
                "{count} SLA breaches within {minutes} min",
                count,
            ).format(count=count, minutes=details.get("window_minutes", "?"))
        )
    if details.get("failing_since"):
        since = datetime.fromisoformat(str(details["failing_since"]))
        lines.append(
            _("The CRM has not answered since {time}").format(
                time=since.astimezone(tz).strftime("%d.%m %H:%M")
            )
        )
    playbook = details.get("playbook") or {}
    steps = playbook.get(_locale()) or playbook.get("en") or []
    if steps:
        lines.append(_("<b>First steps:</b>"))
        lines += [f"{number}. {_short(str(step))}" for number, step in enumerate(steps, 1)]
    return lines


def crisis_usage() -> str:
    return _(
        "Write what happened after the command, e.g. "
        "<code>/crisis the CRM shows no orders since 10:00</code>. "
        "The crisis chat and the owner are told at once."
    )


def crisis_raised(signal_id: int) -> str:
    return _(
        "Crisis #{id} raised: the crisis chat and the owner have it with a playbook. "
        "It climbs if nobody acknowledges it within 15 minutes."
    ).format(id=signal_id)


def crisis_no_role() -> str:
    return _("Only people with a role in the bot (managers, leads, the owner, admins) can raise a crisis.")


def postmortem_requested(signal: Signal, *, author: str, due: datetime, tz: ZoneInfo, title: str) -> str:
    """The crisis chat's copy of a postmortem request."""
    return _(
        "📝 Signal #{id} ({title}) is resolved and needs a postmortem: cause, action, effect, prevention. "
        "{who} is asked privately, one question at a time; due by {time}. Without it the bot raises "
        "“Postmortem missing”."
    ).format(
        id=signal.id, title=escape(title), who=escape(author), time=due.astimezone(tz).strftime("%d.%m %H:%M")
    )


# --- handing an order over (/reassign) --------------------------------------------------------------------


def reassign_usage() -> str:
    return _(
        "Usage: <code>/reassign ORDER MANAGER [reason]</code>, e.g. <code>/reassign 1042 boris "
        "Anna is ill</code>. /managers lists the managers with their load."
    )


def reassign_forbidden() -> str:
    return _("Only leads, admins and the owner can hand an order over.")


def reassign_refused(code: str, facts: Mapping[str, Any]) -> str:
    texts = {
        "not_found": _("There is no order {order}."),
        "order_closed": _("Order {order} is closed already: there is nothing to hand over."),
        "unknown_manager": _("There is no manager {manager}; /managers lists them."),
        "manager_unreachable": _(
            "Manager {manager} cannot take orders now (inactive, on leave or without Telegram)."
        ),
        "same_manager": _("Order {order} is already with {manager}."),
    }
    text = texts.get(code, _("That did not work; nothing was changed."))
    return text.format(
        order=escape(str(facts.get("order", ""))), manager=escape(str(facts.get("manager", "")))
    )


def reassign_done(order_id: str, old: str | None, new: str) -> str:
    """`old` and `new`: the managers' names."""
    if old is None:
        return _("Order {order} handed over; now with: {new}. The CRM gets the assignment.").format(
            order=escape(order_id), new=escape(new)
        )
    return _(
        "Order {order} handed over. Was with: {old}; now with: {new}. Both were told, the CRM gets the "
        "assignment."
    ).format(order=escape(order_id), old=escape(old), new=escape(new))


# --- compensations and bulk reassignments ----------------------------------------------------------------


def compensation_told(outcome: str, *, order: str, amount: str, comment: str) -> str:
    """What the requester of a compensation hears once an admin decided."""
    texts = {
        "approved": _("The compensation of €{amount} on order {order} was approved and goes to the CRM."),
        "rejected": _("The compensation of €{amount} on order {order} was rejected: {comment}"),
        "moot": _("The compensation of €{amount} on order {order} was not paid: the order is gone."),
    }
    return texts[outcome].format(amount=escape(amount), order=escape(order), comment=_short(comment or "—"))


def compensation_usage() -> str:
    return _(
        "Usage: <code>/compensate ORDER AMOUNT REASON</code>, e.g. <code>/compensate 1042 50 scratched "
        "frame</code>. An admin approves it before anything is paid."
    )


def compensation_requested(signal_id: int, amount: str, order: str) -> str:
    return _(
        "Compensation of €{amount} on order {order} requested (#{id}); "
        "nothing is paid until an admin approves."
    ).format(amount=escape(amount), order=escape(order), id=signal_id)


def request_refused(code: str, facts: Mapping[str, Any]) -> str:
    texts = {
        "not_found": _("There is no order {order}."),
        "bad_amount": _("“{amount}” is not an amount in euros between 0 and 10 000."),
        "reason_required": _("Say why, after the amount."),
        "unknown_manager": _("There is no manager {manager}; /managers lists them."),
        "nothing_open": _("{manager} has no open orders to hand over."),
    }
    text = texts.get(code, _("That did not work; nothing was changed."))
    return text.format(
        order=escape(str(facts.get("order", ""))),
        amount=escape(str(facts.get("amount", ""))),
        manager=escape(str(facts.get("manager", ""))),
    )


def bulk_usage() -> str:
    return _(
        "Usage: <code>/reassign_all MANAGER [reason]</code>, e.g. <code>/reassign_all anna ill today</code>. "
        "An admin approves it before any order moves."
    )


def bulk_requested(signal_id: int, manager: str, count: int) -> str:
    return ngettext(
        "Handing over {count} open order of {manager} requested (#{id}); "
        "nothing moves until an admin approves.",
        "Handing over {count} open orders of {manager} requested (#{id}); "
        "nothing moves until an admin approves.",
        count,
    ).format(count=count, manager=escape(manager), id=signal_id)


def bulk_told(outcome: str, *, manager: str, moved: int, left: int) -> str:
    """What the requester of a bulk reassignment hears once an admin decided."""
    if outcome == "rejected":
        return _("Handing over the orders of {manager} was rejected; nothing moved.").format(
            manager=escape(manager)
        )
    if outcome == "moot":
        return _(
            "Handing over the orders of {manager} changed nothing: none of them is with them any more."
        ).format(manager=escape(manager))
    text = ngettext(
        "{count} order of {manager} was handed over.", "{count} orders of {manager} were handed over.", moved
    ).format(count=moved, manager=escape(manager))
    if left:
        text += " " + ngettext(
            "{count} found nobody free and stays.", "{count} found nobody free and stay.", left
        ).format(count=left)
    return text


def approval_facts(details: Mapping[str, Any]) -> list[str]:
    """What a compensation or a bulk reassignment request is about, on its ping."""
    lines: list[str] = []
    if details.get("amount_eur"):
        lines.append(_("Amount: €{amount}").format(amount=escape(str(details["amount_eur"]))))
    orders = details.get("orders")
    if details.get("action") == "bulk_reassign" and isinstance(orders, list):
        lines.append(
            ngettext(
                "{count} open order of {manager} to hand over",
                "{count} open orders of {manager} to hand over",
                len(orders),
            ).format(count=len(orders), manager=escape(str(details.get("manager_id", ""))))
        )
    return lines


# --- observed effects (domain/effects.py) ---------------------------------------------------------------


def effect_text(effect: Mapping[str, Any]) -> str:
    """A decision's observed effect, as `/log`, `/signal ID` and the weekly retrospective show it."""
    minutes = effect.get("minutes", effect.get("window_min", "?"))
    expected = effect.get("expected")
    status = effect.get("moved_to")
    if effect.get("unobservable"):
        return _("→ effect: nothing to observe")
    if expected == "accepted":
        if effect.get("helped"):
            return _("→ effect: accepted after {minutes} min").format(minutes=minutes)
        return _("→ effect: not accepted within {minutes} min").format(minutes=minutes)
    if expected == "no_repeat":
        if effect.get("helped"):
            days = round(int(effect.get("window_min", 0)) / 1440)
            return ngettext(
                "→ effect: the problem did not come back within {days} day",
                "→ effect: the problem did not come back within {days} days",
                days,
            ).format(days=days)
        return _("→ effect: the problem came back after {minutes} min (#{id})").format(
            minutes=minutes, id=effect.get("repeat", "?")
        )
    if "carried_out" in effect and not status:
        if effect.get("carried_out"):
            return _("→ effect: carried out")
        return _("→ effect: nothing changed")
    if status:
        return _("→ effect: the order moved to “{status}” after {minutes} min").format(
            status=_status(status), minutes=minutes
        )
    return _("→ effect: no status change within {minutes} min").format(minutes=minutes)


def action_label(action: str) -> str:
    """A decision's action in the reader's language (the store keeps the code)."""
    labels = {
        "ack": _("acknowledged"),
        "resolve": _("resolved"),
        "approve": _("approved"),
        "reject": _("rejected"),
        "reassign": _("reassigned"),
        "escalate": _("escalated"),
        "snooze": _("snoozed"),
        "snooze_ended": _("snooze over"),
        "still_on_it": _("still on it"),
        "still_on_it_asked": _("asked “still on it?”"),
        "remind": _("reminder"),
        "arbitrate": _("conflict arbitrated"),
        "postmortem": _("postmortem written"),
        "cancel": _("cancellation"),
        "compensation": _("compensation"),
        "bulk_reassign": _("bulk reassignment"),
        "set_capacity": _("capacity changed"),
        "set_leave": _("leave changed"),
    }
    return labels.get(action, action)


# --- the facts of a signal, by key -----------------------------------------------------------------------


def _source_label(source: str) -> str:
    labels = {
        "orders": _("orders"),
        "order_status_events": _("status changes"),
        "managers": _("managers"),
        "workspace": _("workspace metrics"),
        "crm_writes": _("writes to the CRM"),
    }
    return labels.get(source, _short(source))


def _write_label(kind: str) -> str:
    labels = {"assign": _("assignment"), "status": _("status"), "compensation": _("compensation")}
    return labels.get(kind, _short(kind))


def detail_lines(details: Mapping[str, Any], type_title: Callable[[str], str], tz: ZoneInfo) -> list[str]:
    """The facts of a signal without a layout of its own, each with a label in the reader's language; keys
    this module does not know are shown as they are (another circle's facts)."""
    lines: list[str] = []
    for key, value in details.items():
        if isinstance(value, dict | list) or key in ("order_id", "cleared", "playbook", "telegram_id"):
            continue
        text = str(value)
        if key == "bike":
            lines.append(_("Bike: {bike}").format(bike=_short(text)))
        elif key == "item":
            lines.append(_("Checklist item {item}").format(item=_short(text)))
        elif key == "source":
            lines.append(_("Where: {source}").format(source=_source_label(text)))
        elif key == "records" and str(value).isdigit():
            count = int(text)
            lines.append(
                ngettext("{count} record kept aside", "{count} records kept aside", count).format(count=count)
            )
        elif key == "record":
            lines.append(_("First one: {record}").format(record=_short(text)))
        elif key == "reason":  # the CRM's or the validator's own words: shown verbatim, as code
            lines.append(_("Why: {reason}").format(reason=f"<code>{_short(text)}</code>"))
        elif key == "write":
            lines.append(_("Write: {kind}").format(kind=_write_label(text)))
        elif key == "status":
            lines.append(_("Status: {status}").format(status=_status(text)))
        elif key == "signal":
            lines.append(_("About signal #{id}").format(id=_short(text)))
        elif key == "type":
            lines.append(_("Kind: {type}").format(type=escape(type_title(text))))
        elif key == "chat_id":
            lines.append(_("Chat {chat}").format(chat=_short(text)))
        elif key == "via":
            via = {"send": _("a message did not go through"), "my_chat_member": _("Telegram said so")}
            lines.append(_("How we know: {how}").format(how=via.get(text, _short(text))))
        elif key == "manager" or key == "manager_id":
            lines.append(_("Manager: {manager}").format(manager=_short(text)))
        elif key == "asked_at":
            at = datetime.fromisoformat(text).astimezone(tz).strftime("%d.%m %H:%M")
            lines.append(_("Asked at {time}").format(time=at))
        else:
            lines.append(f"{escape(key)}: {_short(text, 120)}")
    return lines[:8]


def decision_state_label(state: str) -> str:
    labels = {
        "pending_approval": _("waiting for approval"),
        "approved": _("approved"),
        "rejected": _("rejected"),
    }
    return labels.get(state, _short(state))


def agent_label(actor: str) -> str:
    """Who took a decision or raised a signal when it was not a person: the bot's own agents by name; a CRM
    manager id or an admin name as stored."""
    labels = {
        "system": _("the bot"),
        "dispatcher": _("the dispatcher"),
        "sync": _("the CRM sync"),
        "crm_outbox": _("the CRM writer"),
        "telegram": _("Telegram"),
    }
    return labels.get(actor, _short(actor, 80))


# --- /cancel in the middle of a postmortem --------------------------------------------------------------


class PostmortemContinue(CallbackData, prefix="pmc"):
    """Continue the postmortem of signal `s` that /cancel put off."""

    s: int


def postmortem_put_off(signal_ids: Sequence[int]) -> str:
    ids = ", ".join(f"#{i}" for i in signal_ids)
    return _(
        "Cancelled. The postmortem of signal {ids} waits: your next messages are no longer taken as its "
        "answers. It is still due; continue with the button when you are ready."
    ).format(ids=ids)


def continue_keyboard(signal_ids: Sequence[int]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✍️ Continue the postmortem of #{id}").format(id=i),
                    callback_data=PostmortemContinue(s=i).pack(),
                )
            ]
            for i in signal_ids
        ]
    )


def answer_hint() -> str:
    """Under a question whose answer is the person's next message."""
    return _("Your next message here is the answer; /cancel puts it off.")


def nothing_to_continue() -> str:
    return _("There is no postmortem of yours to continue there.")
