"""Signals (SPEC §6) as pure rules: the dictionary of signal types, response deadlines, routing and the
escalation ladder, conflict arbitration, and the parsing of `/decide`, `/signals` and signal button data.

Nothing here touches the store or Telegram. Texts are not here either: the ping and answer texts live in
`keyboards/signals.py` and go through gettext; this module returns stable codes they are rendered from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import IntEnum, StrEnum
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from domain.policy import Severity

SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# Worst first: the order lists, arbitration and repeats use.
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

SignalState = Literal["open", "acknowledged", "resolved"]


class Circle(StrEnum):
    """The owner circle of a signal: whose area it belongs to (SPEC §12 adds leaders on this backbone)."""

    SALES_OPS = "sales_ops"
    QUALITY = "quality"
    FINANCE = "finance"
    COMPLIANCE = "compliance"
    PLATFORM = "platform"
    GROWTH = "growth"


class Priority(IntEnum):
    """SPEC §6: when signals on one order conflict, the lower number wins."""

    COMPLIANCE = 1
    CLIENT_MONEY = 2
    SLA_SPEED = 3
    GROWTH = 4


class Level(IntEnum):
    """The escalation ladder: who owns an unacknowledged signal (stored as ai_signals.escalation_level)."""

    MANAGER = 0
    LEAD = 1
    OWNER = 2


class ClearWhen(StrEnum):
    """What tells the backbone that a signal's condition has cleared (stored as the resolution's code)."""

    ORDER_LEFT_STATUS = "order_left_status"  # sla.breach: the order left the breached status
    ORDER_OFFERED = "order_offered"  # order.unassigned: a manager was offered (or took) the order
    ORDER_MOVED = "order_moved"  # stuck / no progress: the order entered another status since
    NEXT_RUN_OK = "next_run_ok"  # sync or CRM write problems: the next run of the same source succeeded
    CHAT_UNBLOCKED = "chat_unblocked"  # telegram.chat_blocked: the person unblocked the bot


@dataclass(frozen=True)
class SignalType:
    code: str
    circle: Circle
    severity: (
        Severity  # default; a caller may pass the severity of the case (sla.breach: the status budget's)
    )
    priority: Priority
    needs_decision: bool  # a human must approve or reject (Approve / Reject buttons)
    asks_for: str  # the action the signal asks for; arbitration compares these
    postmortem: bool = True  # critical/high ones ask their resolver for a postmortem (see needs_postmortem)
    # When the condition behind the signal has cleared: the backbone then resolves it by itself
    # (backbone/clearing.py). None: only a person resolves it.
    clears_when: ClearWhen | None = None


# The one dictionary of signal types. Reminders at 80 % of a budget are not signals: they are notifications
# to the step's owner, recorded as automatic decisions (circles/sales_ops/sla.py): nobody has to own or
# resolve them.
SIGNAL_TYPES: dict[str, SignalType] = {
    t.code: t
    for t in (
        SignalType(
            "sla.breach",
            Circle.SALES_OPS,
            "high",
            Priority.SLA_SPEED,
            False,
            "expedite",
            clears_when=ClearWhen.ORDER_LEFT_STATUS,
        ),
        SignalType(
            "order.stuck_72h",
            Circle.SALES_OPS,
            "high",
            Priority.SLA_SPEED,
            False,
            "unstick",
            clears_when=ClearWhen.ORDER_MOVED,
        ),
        SignalType(
            "order.unassigned",
            Circle.SALES_OPS,
            "high",
            Priority.SLA_SPEED,
            False,
            "assign",
            clears_when=ClearWhen.ORDER_OFFERED,
        ),
        SignalType("order.accept_timeout", Circle.SALES_OPS, "medium", Priority.SLA_SPEED, False, "reassign"),
        SignalType(
            "order.no_progress",
            Circle.SALES_OPS,
            "medium",
            Priority.SLA_SPEED,
            False,
            "expedite",
            clears_when=ClearWhen.ORDER_MOVED,
        ),
        SignalType(
            "quality.severe_defect", Circle.QUALITY, "high", Priority.CLIENT_MONEY, False, "renegotiate"
        ),
        SignalType(
            "sync.contract_violation",
            Circle.PLATFORM,
            "medium",
            Priority.SLA_SPEED,
            False,
            "fix_data",
            clears_when=ClearWhen.NEXT_RUN_OK,
        ),
        SignalType(
            "telegram.chat_blocked",
            Circle.PLATFORM,
            "low",
            Priority.SLA_SPEED,
            False,
            "restore_contact",
            clears_when=ClearWhen.CHAT_UNBLOCKED,
        ),
        SignalType(
            "postmortem.missing", Circle.COMPLIANCE, "medium", Priority.COMPLIANCE, False, "postmortem"
        ),
        # The crisis protocol (domain/crisis.py): raised by hand (/crisis) or by agents on policy conditions.
        SignalType("crisis.manual", Circle.SALES_OPS, "critical", Priority.CLIENT_MONEY, False, "respond"),
        SignalType("crisis.breach_storm", Circle.SALES_OPS, "critical", Priority.SLA_SPEED, False, "respond"),
        SignalType(
            "crisis.crm_unreachable",
            Circle.PLATFORM,
            "critical",
            Priority.SLA_SPEED,
            False,
            "respond",
            clears_when=ClearWhen.NEXT_RUN_OK,
        ),
        SignalType("crisis.paid_defect", Circle.QUALITY, "critical", Priority.CLIENT_MONEY, False, "respond"),
        # details["action"] names what waits for approval: cancel | compensation | bulk_reassign.
        SignalType(
            "decision.approval_needed",
            Circle.SALES_OPS,
            "high",
            Priority.CLIENT_MONEY,
            True,
            "approve",
            postmortem=False,
        ),
    )
}

APPROVAL_ACTIONS: frozenset[str] = frozenset({"cancel", "compensation", "bulk_reassign"})


class UnknownSignalType(ValueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown signal type {code!r}; known: {', '.join(sorted(SIGNAL_TYPES))}")


def signal_type(code: str) -> SignalType:
    try:
        return SIGNAL_TYPES[code]
    except KeyError:
        raise UnknownSignalType(code) from None


def needs_postmortem(severity: str) -> bool:
    return severity in ("critical", "high")


def worse(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_RANK[a] <= SEVERITY_RANK[b] else b


@dataclass(frozen=True)
class Signal:
    """One row of ai_signals as the agents and the texts see it."""

    id: int
    type: str
    severity: Severity
    circle: str
    order_id: str | None
    dedup_key: str
    state: SignalState
    owner_person: int | None
    escalation_level: int
    needs_decision: bool
    deadline_at: datetime
    raised_at: datetime
    raised_by: str
    acked_at: datetime | None
    acked_by: int | None
    resolved_at: datetime | None
    resolved_by: int | None
    resolution: str | None
    snoozed_until: datetime | None
    still_on_it_asked_at: datetime | None
    checked_in_at: datetime | None
    repeats: int
    last_seen_at: datetime
    details: dict[str, Any]
    ping_chats: tuple[int, ...]

    @property
    def kind(self) -> SignalType:
        return signal_type(self.type)

    @property
    def level(self) -> Level:
        return Level(min(max(self.escalation_level, Level.MANAGER), Level.OWNER))

    def as_open(self) -> OpenSignal:
        return OpenSignal(self.id, self.type, self.severity, self.raised_at)


# --- response deadlines -------------------------------------------------------------------------------------

RESPONSE_MINUTES: dict[str, int] = {"critical": 15, "high": 2 * 60, "medium": 24 * 60}
WEEKLY_REVIEW_WEEKDAY = 0  # Monday
WEEKLY_REVIEW_TIME = time(10, 0)


# How long the owner has to answer "still on it?" (working minutes) before it goes up the ladder.
STILL_ON_IT_REPLY_MINUTES = 60
# How long after a decision its observed effect is judged (did the order move on within this many minutes).
EFFECT_WINDOW_MINUTES = 60
# A critical signal without a finished postmortem this long after it was raised raises postmortem.missing.
POSTMORTEM_DUE_HOURS = 24


def next_weekly_review(now: datetime, tz: ZoneInfo) -> datetime:
    """The first weekly review (Monday 10:00 local) strictly after `now`."""
    local = now.astimezone(tz)
    days = (WEEKLY_REVIEW_WEEKDAY - local.weekday()) % 7
    candidate = datetime.combine(local.date() + timedelta(days=days), WEEKLY_REVIEW_TIME, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(candidate.date() + timedelta(days=7), WEEKLY_REVIEW_TIME, tzinfo=tz)
    return candidate.astimezone(now.tzinfo)


def response_deadline(severity: str, now: datetime, tz: ZoneInfo) -> datetime:
    """By when a signal must be acknowledged. Calendar time: a crisis does not wait for Monday; low ones wait
    for the weekly review."""
    if severity == "low":
        return next_weekly_review(now, tz)
    return now + timedelta(minutes=RESPONSE_MINUTES[severity])


# --- routing and the escalation ladder ---------------------------------------------------------------------


@dataclass(frozen=True)
class Contacts:
    """Where people are reached (from the settings): chat ids; a private chat id is the person's user id."""

    leads_chat_id: int | None = None
    crisis_chat_id: int | None = None
    owner_id: int | None = None
    lead_ids: tuple[int, ...] = ()
    admin_ids: tuple[int, ...] = ()
    admin_chat_id: int | None = None

    def leads(self) -> list[int]:
        """The leads chat; without one the leads privately; without leads the admins."""
        if self.leads_chat_id is not None:
            return [self.leads_chat_id]
        return list(self.lead_ids) or self.admins()

    def admins(self) -> list[int]:
        return [self.admin_chat_id] if self.admin_chat_id is not None else list(self.admin_ids)

    def owner(self) -> list[int]:
        return [self.owner_id] if self.owner_id is not None else self.leads()

    def crisis(self) -> list[int]:
        return [self.crisis_chat_id] if self.crisis_chat_id is not None else self.leads()

    def lead_person(self) -> int | None:
        return self.lead_ids[0] if self.lead_ids else None


def initial_level(severity: str, owner_person: int | None) -> Level:
    """low/medium go to the owner person when there is one, else to the leads; high to the leads; critical to
    the crisis chat and the owner (see chats_for) with a lead owning it, so that 15 minutes without an
    acknowledgement still climb: to the owner, and the admins are called in."""
    if severity in ("low", "medium") and owner_person is not None:
        return Level.MANAGER
    return Level.LEAD


def chats_for(severity: str, level: Level, owner_person: int | None, contacts: Contacts) -> list[int]:
    """The chats a signal at `level` is pinged in, without duplicates, in a stable order."""
    chats: list[int] = []
    if severity == "critical":  # the crisis protocol: the crisis chat and the owner at every rung
        chats += contacts.crisis() + contacts.owner()
        if level is Level.OWNER:
            chats += contacts.admins()
        return list(dict.fromkeys(chats))
    if level is Level.MANAGER and owner_person is not None:
        chats.append(owner_person)
    if level is Level.LEAD:
        chats += contacts.leads()
    if level is Level.OWNER:
        chats += contacts.crisis() if severity == "critical" else contacts.leads()
        chats += contacts.owner()
    return list(dict.fromkeys(chats))


def owner_at(level: Level, owner_person: int | None, contacts: Contacts) -> int | None:
    """Who owns a signal at `level`: the person at that rung of the ladder."""
    if level is Level.MANAGER:
        return owner_person
    if level is Level.LEAD:
        return contacts.lead_person()
    return contacts.owner_id


def escalate_level(level: int) -> Level | None:
    """One rung up the ladder; None at the top."""
    return Level(level + 1) if level < Level.OWNER else None


# --- conflict arbitration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSignal:
    """What arbitration needs to know about one unresolved signal."""

    id: int
    type: str
    severity: Severity
    raised_at: datetime

    @property
    def priority(self) -> Priority:
        return signal_type(self.type).priority

    @property
    def asks_for(self) -> str:
        return signal_type(self.type).asks_for


@dataclass(frozen=True)
class Arbitration:
    winner: OpenSignal
    ranked: tuple[OpenSignal, ...]  # winner first
    reason: Literal["priority", "severity", "earlier"]  # what separated the winner from the runner-up


def _arbitration_key(signal: OpenSignal) -> tuple[int, int, datetime, int]:
    return (signal.priority, SEVERITY_RANK[signal.severity], signal.raised_at, signal.id)


def arbitrate(signals: Iterable[OpenSignal]) -> Arbitration | None:
    """Order conflicting signals on one order; None when there is no conflict (fewer than two different asks).

    Priority class first (compliance > client money > SLA speed > growth), then severity, then who came first.
    """
    ranked = tuple(sorted(signals, key=_arbitration_key))
    if len({s.asks_for for s in ranked}) < 2:
        return None
    winner, runner_up = ranked[0], ranked[1]
    reason: Literal["priority", "severity", "earlier"] = "earlier"
    if winner.priority != runner_up.priority:
        reason = "priority"
    elif winner.severity != runner_up.severity:
        reason = "severity"
    return Arbitration(winner, ranked, reason)


# --- commands: /decide, /signals and the ping buttons -------------------------------------------------------


class DecideAction(StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    APPROVE = "approve"
    REJECT = "reject"
    REASSIGN = "reassign"
    ESCALATE = "escalate"
    SNOOZE_1H = "snooze1h"
    SNOOZE_4H = "snooze4h"
    STILL_ON_IT = "still"  # the "still on it?" answer (button only)


SNOOZE_HOURS: dict[DecideAction, int] = {DecideAction.SNOOZE_1H: 1, DecideAction.SNOOZE_4H: 4}
# Words /decide accepts (the buttons also snooze and answer "still on it?").
DECIDE_WORDS: tuple[str, ...] = ("ack", "resolve", "approve", "reject", "reassign", "escalate")
MAX_COMMENT = 500
_MAX_ID = 2**63 - 1
_MANAGER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_ORDER_ID = _MANAGER_ID


@dataclass(frozen=True)
class SignalCommand:
    signal_id: int
    action: DecideAction
    manager_id: str | None = None  # for reassign
    comment: str = ""


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


@dataclass(frozen=True)
class SignalFilter:
    severity: Severity | None = None
    circle: Circle | None = None
    order_id: str | None = None

    def is_empty(self) -> bool:
        return self.severity is None and self.circle is None and self.order_id is None


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


# --- who may do what ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """The person pressing a button or typing /decide, as the rights rules see them."""

    user_id: int
    staff: bool  # lead, admin or owner: may act on any signal
    approver: bool  # admin or owner: may approve or reject what waits for a human decision


_OWNER_PERSON_ACTIONS = frozenset(
    {
        DecideAction.ACK,
        DecideAction.RESOLVE,
        DecideAction.SNOOZE_1H,
        DecideAction.SNOOZE_4H,
        DecideAction.ESCALATE,
        DecideAction.STILL_ON_IT,
    }
)


def permitted(action: DecideAction, actor: Actor, owner_person: int | None) -> bool:
    """Approve/reject: admins and the owner. Everything else: leads, admins, the owner; the person who owns
    the signal may acknowledge, resolve, snooze, escalate it and answer "still on it?"."""
    if action in (DecideAction.APPROVE, DecideAction.REJECT):
        return actor.approver
    if actor.staff:
        return True
    return owner_person is not None and actor.user_id == owner_person and action in _OWNER_PERSON_ACTIONS
