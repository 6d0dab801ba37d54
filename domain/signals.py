"""Signals (SPEC §6) as pure rules: the dictionary of signal types, response deadlines, routing and the
escalation ladder, conflict arbitration, and the commands people give (what `/decide` and the buttons are
parsed into by keyboards/signal_input.py).

Nothing here touches the store or Telegram. Texts are not here either: the ping and answer texts live in
`keyboards/signals.py` and go through gettext; this module returns stable codes they are rendered from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import IntEnum, StrEnum
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from domain.actors import Actor
from domain.policy import Severity, SignalsPolicy

SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# Worst first: the order lists, arbitration and repeats use.
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

SignalState = Literal["open", "acknowledged", "resolved"]


class Circle(StrEnum):
    """The owner circle of a signal: whose area it belongs to (SPEC §12 adds leaders on this backbone)."""

    SALES_OPS = "sales_ops"
    QUALITY = "quality"
    UNIT_ECONOMICS = "unit_economics"
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


# The one dictionary of signal types. Reminders at 80 % of a budget are not signals: they are notifications
# to the step's owner, recorded as automatic decisions (circles/sales_ops/sla.py): nobody has to own or
# resolve them.
SIGNAL_TYPES: dict[str, SignalType] = {
    t.code: t
    for t in (
        SignalType("sla.breach", Circle.SALES_OPS, "high", Priority.SLA_SPEED, False, "expedite"),
        SignalType("order.stuck_72h", Circle.SALES_OPS, "high", Priority.SLA_SPEED, False, "unstick"),
        SignalType("order.unassigned", Circle.SALES_OPS, "high", Priority.SLA_SPEED, False, "assign"),
        SignalType("order.accept_timeout", Circle.SALES_OPS, "medium", Priority.SLA_SPEED, False, "reassign"),
        SignalType("order.no_progress", Circle.SALES_OPS, "medium", Priority.SLA_SPEED, False, "expedite"),
        SignalType(
            "quality.severe_defect", Circle.QUALITY, "high", Priority.CLIENT_MONEY, False, "renegotiate"
        ),
        # Circles, part 1: the CFO's findings go to the owner; quality and scorecard signals to the leads.
        SignalType(
            "unit_economics.margin_leak",
            Circle.UNIT_ECONOMICS,
            "medium",
            Priority.CLIENT_MONEY,
            False,
            "recover",
        ),
        SignalType(
            "unit_economics.under_collection",
            Circle.UNIT_ECONOMICS,
            "medium",
            Priority.CLIENT_MONEY,
            False,
            "collect",
        ),
        SignalType(
            "quality.repeat_incident", Circle.QUALITY, "high", Priority.CLIENT_MONEY, False, "review_seller"
        ),
        SignalType(
            "quality.dispute_opened", Circle.QUALITY, "medium", Priority.CLIENT_MONEY, False, "answer_dispute"
        ),
        SignalType(
            "sales_ops.manager_slipping", Circle.SALES_OPS, "medium", Priority.SLA_SPEED, False, "coach"
        ),
        SignalType(
            "sync.contract_violation", Circle.PLATFORM, "medium", Priority.SLA_SPEED, False, "fix_data"
        ),
        SignalType(
            "telegram.chat_blocked", Circle.PLATFORM, "low", Priority.SLA_SPEED, False, "restore_contact"
        ),
        SignalType(
            "postmortem.missing", Circle.COMPLIANCE, "medium", Priority.COMPLIANCE, False, "postmortem"
        ),
        # Governance, reliability and revenue circles (issue 15). A sanctions hit holds its order until a
        # human decides: approve = a false positive (the order is released), reject = cancel the order.
        SignalType(
            "compliance.sanctions_hit",
            Circle.COMPLIANCE,
            "critical",
            Priority.COMPLIANCE,
            True,
            "hold",
            postmortem=False,
        ),
        SignalType(
            "governance.process_drift",
            Circle.COMPLIANCE,
            "medium",
            Priority.COMPLIANCE,
            False,
            "follow_process",
        ),
        SignalType(
            "reliability.crm_unreachable", Circle.PLATFORM, "high", Priority.SLA_SPEED, False, "restore"
        ),
        SignalType("reliability.crm_slow", Circle.PLATFORM, "high", Priority.SLA_SPEED, False, "restore"),
        SignalType("reliability.sync_lagging", Circle.PLATFORM, "high", Priority.SLA_SPEED, False, "restore"),
        SignalType(
            "reliability.sender_backlog", Circle.PLATFORM, "medium", Priority.SLA_SPEED, False, "restore"
        ),
        SignalType(
            "reliability.contract_violations", Circle.PLATFORM, "high", Priority.SLA_SPEED, False, "fix_data"
        ),
        SignalType(
            "revenue.channel_conversion", Circle.GROWTH, "medium", Priority.GROWTH, False, "investigate"
        ),
        SignalType("revenue.stage_drop_off", Circle.GROWTH, "medium", Priority.GROWTH, False, "investigate"),
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

APPROVAL_ACTIONS: frozenset[str] = frozenset({"cancel", "compensation", "bulk_reassign", "sanctions_review"})


class UnknownSignalType(ValueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown signal type {code!r}; known: {', '.join(sorted(SIGNAL_TYPES))}")


def signal_type(code: str) -> SignalType:
    try:
        return SIGNAL_TYPES[code]
    except KeyError:
        raise UnknownSignalType(code) from None


MAX_POSTMORTEM_ANSWER = 1000  # characters in one answer of a postmortem


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
    # Frozen when raised (ai_signals.ladder, ai_signals.contacts): the timings and the routing that apply to
    # this signal. `contacts` is None until the signal is routed (raised without settings, or before 008).
    ladder: Ladder
    contacts: Contacts | None

    @property
    def kind(self) -> SignalType:
        return signal_type(self.type)

    @property
    def level(self) -> Level:
        return Level(min(max(self.escalation_level, Level.MANAGER), Level.OWNER))

    def as_open(self) -> OpenSignal:
        return OpenSignal(self.id, self.type, self.severity, self.raised_at)


# --- response deadlines -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ladder:
    """The timings that apply to one signal, taken from the policy's [signals] table when it is raised and
    frozen on it (ai_signals.ladder), so a later policy edit never rewrites a running escalation."""

    response_minutes: Mapping[str, int]  # critical, high, medium; low waits for the weekly review
    review_weekday: int  # Monday = 0
    review_time: time
    snooze_short_hours: int
    snooze_long_hours: int
    still_on_it_reply_minutes: int

    @classmethod
    def of(cls, policy: SignalsPolicy) -> Ladder:
        return cls(
            response_minutes={str(severity): m for severity, m in policy.response_minutes.items()},
            review_weekday=policy.weekly_review_weekday,
            review_time=policy.weekly_review_time,
            snooze_short_hours=policy.snooze_short_hours,
            snooze_long_hours=policy.snooze_long_hours,
            still_on_it_reply_minutes=policy.still_on_it_reply_minutes,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "response_minutes": dict(self.response_minutes),
            "review_weekday": self.review_weekday,
            "review_time": self.review_time.strftime("%H:%M"),
            "snooze_short_hours": self.snooze_short_hours,
            "snooze_long_hours": self.snooze_long_hours,
            "still_on_it_reply_minutes": self.still_on_it_reply_minutes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ladder:
        return cls(
            response_minutes={str(k): int(v) for k, v in data["response_minutes"].items()},
            review_weekday=int(data["review_weekday"]),
            review_time=time.fromisoformat(data["review_time"]),
            snooze_short_hours=int(data["snooze_short_hours"]),
            snooze_long_hours=int(data["snooze_long_hours"]),
            still_on_it_reply_minutes=int(data["still_on_it_reply_minutes"]),
        )

    def snooze_hours(self, action: DecideAction) -> int | None:
        """How long a snooze button postpones; None for an action that is not a snooze."""
        if action is DecideAction.SNOOZE_1H:
            return self.snooze_short_hours
        if action is DecideAction.SNOOZE_4H:
            return self.snooze_long_hours
        return None


def next_weekly_review(now: datetime, tz: ZoneInfo, ladder: Ladder) -> datetime:
    """The first weekly review (by default Monday 10:00 local) strictly after `now`."""
    local = now.astimezone(tz)
    days = (ladder.review_weekday - local.weekday()) % 7
    candidate = datetime.combine(local.date() + timedelta(days=days), ladder.review_time, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(candidate.date() + timedelta(days=7), ladder.review_time, tzinfo=tz)
    return candidate.astimezone(now.tzinfo)


def response_deadline(severity: str, now: datetime, tz: ZoneInfo, ladder: Ladder) -> datetime:
    """By when a signal must be acknowledged. Calendar time: a crisis does not wait for Monday; low ones wait
    for the weekly review."""
    if severity == "low":
        return next_weekly_review(now, tz, ladder)
    return now + timedelta(minutes=ladder.response_minutes[severity])


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "leads_chat_id": self.leads_chat_id,
            "crisis_chat_id": self.crisis_chat_id,
            "owner_id": self.owner_id,
            "lead_ids": list(self.lead_ids),
            "admin_ids": list(self.admin_ids),
            "admin_chat_id": self.admin_chat_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contacts:
        return cls(
            leads_chat_id=data.get("leads_chat_id"),
            crisis_chat_id=data.get("crisis_chat_id"),
            owner_id=data.get("owner_id"),
            lead_ids=tuple(data.get("lead_ids", ())),
            admin_ids=tuple(data.get("admin_ids", ())),
            admin_chat_id=data.get("admin_chat_id"),
        )


def initial_level(severity: str, owner_person: int | None) -> Level:
    """low/medium go to the owner person when there is one, else to the leads; high to the leads; critical to
    the crisis chat and the owner (the top of the ladder)."""
    if severity == "critical":
        return Level.OWNER
    if severity in ("low", "medium") and owner_person is not None:
        return Level.MANAGER
    return Level.LEAD


def chats_for(severity: str, level: Level, owner_person: int | None, contacts: Contacts) -> list[int]:
    """The chats a signal at `level` is pinged in, without duplicates, in a stable order."""
    chats: list[int] = []
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


# --- commands: what /decide, /signals and the ping buttons mean ------------------------------------------


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


MAX_COMMENT = 500  # characters in the comment of a /decide


@dataclass(frozen=True)
class SignalCommand:
    signal_id: int
    action: DecideAction
    manager_id: str | None = None  # for reassign
    comment: str = ""


@dataclass(frozen=True)
class SignalFilter:
    severity: Severity | None = None
    circle: Circle | None = None
    order_id: str | None = None

    def is_empty(self) -> bool:
        return self.severity is None and self.circle is None and self.order_id is None


# --- who may do what ---------------------------------------------------------------------------------------


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
