"""What people send about signals, parsed: the arguments of `/decide`, `/signal` and `/signals`, and the
callback data of the ping buttons (their action codes live here; `keyboards.signals.SignalCallback` packs
them). The result is the domain's `SignalCommand` / `SignalFilter`, or a `ParseError` naming why not (its text
is in keyboards/signals.py). Out of domain/signals.py since issue 11: the domain keeps the model, not the
wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from domain.policy import Severity
from domain.signals import MAX_COMMENT, SEVERITIES, Circle, DecideAction, SignalCommand, SignalFilter

# Words /decide accepts (the buttons also snooze and answer "still on it?").
DECIDE_WORDS: tuple[str, ...] = ("ack", "resolve", "approve", "reject", "reassign", "escalate")
_MAX_ID = 2**63 - 1
_MANAGER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_ORDER_ID = _MANAGER_ID


ParseErrorCode = Literal[
    "missing_id",
    "bad_id",
    "missing_action",
    "unknown_action",
    "missing_manager",
    "bad_manager",
    "comment_too_long",
    "bad_callback",
    "unknown_filter",
    "bad_order",
]


@dataclass(frozen=True)
class ParseError:
    """Why a command was refused: a stable code and the offending piece (for the one-line answer)."""

    code: ParseErrorCode
    value: str = ""


def _parse_id(token: str) -> int | None:
    token = token.removeprefix("#")
    if not token.isascii() or not token.isdigit():
        return None
    number = int(token)
    return number if 0 < number <= _MAX_ID else None


def parse_decide(args: str | None) -> SignalCommand | ParseError:
    """`/decide ID ACTION [comment]`; ACTION: ack, resolve, approve, reject, reassign MANAGER, escalate."""
    parts = (args or "").split(maxsplit=2)
    if not parts:
        return ParseError("missing_id")
    signal_id = _parse_id(parts[0])
    if signal_id is None:
        return ParseError("bad_id", parts[0][:40])
    if len(parts) < 2:
        return ParseError("missing_action")
    word = parts[1].lower()
    if word not in DECIDE_WORDS:
        return ParseError("unknown_action", parts[1][:40])
    action = DecideAction(word)
    rest = parts[2] if len(parts) > 2 else ""
    manager_id: str | None = None
    if action is DecideAction.REASSIGN:
        manager, _, rest = rest.partition(" ") if rest else ("", "", "")
        if not manager:
            return ParseError("missing_manager")
        if not _MANAGER_ID.match(manager):
            return ParseError("bad_manager", manager[:40])
        manager_id = manager
    comment = rest.strip()
    if len(comment) > MAX_COMMENT:
        return ParseError("comment_too_long", str(len(comment)))
    return SignalCommand(signal_id, action, manager_id, comment)


def parse_signal_id(args: str | None) -> int | ParseError:
    """`/signal ID`."""
    parts = (args or "").split()
    if not parts:
        return ParseError("missing_id")
    signal_id = _parse_id(parts[0])
    if signal_id is None or len(parts) > 1:
        return ParseError("bad_id", (args or "").strip()[:40])
    return signal_id


# Signal buttons: "sg:<id>:<code>[:<manager>]" — the layout keyboards.signals.SignalCallback packs.
CALLBACK_PREFIX = "sg"
BUTTON_CODES: dict[str, DecideAction] = {
    "ak": DecideAction.ACK,
    "rs": DecideAction.RESOLVE,
    "s1": DecideAction.SNOOZE_1H,
    "s4": DecideAction.SNOOZE_4H,
    "ra": DecideAction.REASSIGN,  # without a manager: show the picker; with one: reassign to them
    "ap": DecideAction.APPROVE,
    "rj": DecideAction.REJECT,
    "es": DecideAction.ESCALATE,
    "ok": DecideAction.STILL_ON_IT,
}
BUTTON_CODE_OF: dict[DecideAction, str] = {action: code for code, action in BUTTON_CODES.items()}


def parse_signal_callback(data: str | None) -> SignalCommand | ParseError:
    """Parse a signal button's callback data; anything not made by our keyboards is a `bad_callback`."""
    parts = (data or "").split(":")
    if len(parts) not in (3, 4) or parts[0] != CALLBACK_PREFIX:
        return ParseError("bad_callback")
    signal_id = _parse_id(parts[1]) if not parts[1].startswith("#") else None
    action = BUTTON_CODES.get(parts[2])
    if signal_id is None or action is None:
        return ParseError("bad_callback")
    # aiogram packs an absent manager as an empty last field.
    manager = parts[3] if len(parts) == 4 else ""
    if manager and (action is not DecideAction.REASSIGN or not _MANAGER_ID.match(manager)):
        return ParseError("bad_callback")
    return SignalCommand(signal_id, action, manager or None)


def parse_signal_filter(args: str | None) -> SignalFilter | ParseError:
    """`/signals [severity] [circle] [order ID]`, in any order (`order=ID` works too)."""
    severity: Severity | None = None
    circle: Circle | None = None
    order_id: str | None = None
    tokens = (args or "").split()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        word = token.lower()
        if word in SEVERITIES and severity is None:
            severity = next(s for s in SEVERITIES if s == word)
        elif word in {c.value for c in Circle} and circle is None:
            circle = Circle(word)
        elif (word == "order" or word.startswith("order=")) and order_id is None:
            value = token.partition("=")[2]
            if not value:
                index += 1
                value = tokens[index] if index < len(tokens) else ""
            if not _ORDER_ID.match(value):
                return ParseError("bad_order", value[:40])
            order_id = value
        else:
            return ParseError("unknown_filter", token[:40])
        index += 1
    return SignalFilter(severity, circle, order_id)
