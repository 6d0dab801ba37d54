"""Why a decision was taken, in the reader's language (issue 12). The code stores a decision's reason as a
stable code or template in English (the phrases in `_TEMPLATES`, `_FIXED`), with its facts; a person's own
comment is stored as they wrote it. Rendering turns a known code into the reader's language at display time
(so rows written before a translation existed read right too) and shows a comment as it is.

Keep the templates in step with the code that writes them: tests/test_russian_whole.py renders every one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import escape
from typing import Any

from babel.numbers import format_percent

from bot.i18n import _, i18n, ngettext
from domain.statuses import Status
from keyboards.orders import CANCEL_REASON_LABELS, DECLINE_REASON_LABELS, label, status_label
from keyboards.outcomes import CLEARED_PREFIX, cleared_what

_FIXED: dict[str, Callable[[], str]] = {
    "acknowledged": lambda: _("acknowledged"),
    "resolved": lambda: _("resolved"),
    "approved": lambda: _("approved"),
    "rejected": lambda: _("rejected"),
    "still on it": lambda: _("still on it"),
    "escalated by hand": lambda: _("escalated by hand"),
    "not acknowledged by the deadline": lambda: _("not acknowledged by the deadline"),
    "the snooze is over": lambda: _("the snooze is over"),
    "no progress since the last check-in": lambda: _("no progress since the last check-in"),
    'no answer to "still on it?"': lambda: _("no answer to “still on it?”"),
    "postmortem written": lambda: _("postmortem written"),
    "on leave": lambda: _("on leave"),
    "back from leave": lambda: _("back from leave"),
    "accepted order without progress": lambda: _("accepted order without progress"),
    "handover": lambda: _("handed over"),
    "reassign": lambda: _("handed over"),
    "bulk_reassign": lambda: _("all open orders handed over"),
}


def _status(code: str) -> str:
    try:
        return status_label(Status(code))
    except ValueError:
        return escape(code)


def _share(m: re.Match[str]) -> str:
    share = format_percent(int(m[1]) / 100, locale=i18n.current_locale)
    return _("{share} of the “{status}” budget used").format(share=share, status=_status(m[2]))


def _timeout(m: re.Match[str]) -> str:
    minutes = int(m[1])
    return ngettext(
        "not accepted within {minutes} working minute",
        "not accepted within {minutes} working minutes",
        minutes,
    ).format(minutes=minutes)


def _declined(m: re.Match[str]) -> str:
    return _("declined by the manager: {reason}").format(reason=label(DECLINE_REASON_LABELS, m[1]))


def _capacity(m: re.Match[str]) -> str:
    if m[1] == "reset":
        return _("capacity back to the CRM's")
    return _("capacity set to {n}").format(n=m[1])


def _reassigned(m: re.Match[str]) -> str:
    return _("handed to {manager}").format(manager=escape(m[1]))


def _snoozed(m: re.Match[str]) -> str:
    hours = int(m[1])
    return ngettext("snoozed for {hours} hour", "snoozed for {hours} hours", hours).format(hours=hours)


def _arbitrated(m: re.Match[str], type_title: Callable[[str], str]) -> str:
    by = {"priority": _("by priority"), "severity": _("by severity"), "earlier": _("as the earlier one")}
    return _("“{type}” (priority {priority}) wins {by}").format(
        type=escape(type_title(m[1])), priority=m[2], by=by.get(m[3], escape(m[3]))
    )


_ARBITRATION = re.compile(r"^(\S+) \(priority (\d)\) wins by (\w+)$")
_TEMPLATES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^(\d+)% of the (\w+) budget used$"), _share),
    (re.compile(r"^not accepted within (\d+) working minutes$"), _timeout),
    (re.compile(r"^declined by the manager: (\w+)$"), _declined),
    (re.compile(r"^capacity (\w+)$"), _capacity),
    (re.compile(r"^reassigned to (\S+)$"), _reassigned),
    (re.compile(r"^snoozed for (\d+) h$"), _snoozed),
)


def reason_text(
    reason: str, facts: Mapping[str, Any] | None = None, type_title: Callable[[str], str] = escape
) -> str:
    """A stored reason in the reader's language; a person's own words come back escaped, as written.
    `facts`: the decision's details; `type_title`: how a signal type is named (for arbitration)."""
    fixed = _FIXED.get(reason)
    if fixed is not None:
        return fixed()
    if reason in CANCEL_REASON_LABELS:  # a cancel request's reason code
        return label(CANCEL_REASON_LABELS, reason)
    if reason.startswith(CLEARED_PREFIX):
        what = cleared_what(reason.removeprefix(CLEARED_PREFIX), facts or {})
        return _("cleared by itself: {what}").format(what=what)
    arbitration = _ARBITRATION.match(reason)
    if arbitration is not None:
        return _arbitrated(arbitration, type_title)
    for pattern, render in _TEMPLATES:
        match = pattern.match(reason)
        if match is not None:
            return render(match)
    return escape(reason)
