"""The SLA policy (SPEC §5): per-status budgets, the working calendar, timeouts and load weights, read from
one TOML file. `Policy.default()` is the SPEC table; `policy.toml` at the repository root has the
same values.
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from domain.calendar import WorkingCalendar
from domain.crisis import CrisisPolicy
from domain.statuses import OPEN_STATUSES, STATUS_ORDER, Status

Clock = Literal["working", "calendar"]
Severity = Literal["critical", "high", "medium", "low"]

DEFAULT_POLICY_VERSION = "2026-11-1"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is one line naming the file and every bad field."""

    def __init__(self, message: str, *, path: Path | None = None, fields: tuple[str, ...] = ()) -> None:
        self.path = path
        self.fields = fields
        super().__init__(message)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarPolicy(_Model):
    timezone: str | None = None  # None: the deployment's TIMEZONE setting
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])  # Monday = 0
    start: time = time(9, 0)
    end: time = time(18, 0)
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            _zone(value)
        return value

    @field_validator("workdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one workday is needed")
        if any(not 0 <= day <= 6 for day in value):
            raise ValueError("workdays are 0 (Monday) .. 6 (Sunday)")
        return sorted(set(value))

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: time, info: ValidationInfo) -> time:
        # A field validator (not a model one) so this is reported even when another calendar field is bad.
        start = info.data.get("start")
        if start is not None and not start < value:
            raise ValueError(f"end {value} must be after start {start}")
        return value


class StatusBudget(_Model):
    minutes: int = Field(gt=0)
    clock: Clock
    severity: Severity


DEFAULT_BUDGETS: dict[Status, StatusBudget] = {
    Status.PENDING_MANAGER: StatusBudget(minutes=15, clock="working", severity="high"),
    Status.ACCEPTED: StatusBudget(minutes=4 * 60, clock="working", severity="medium"),
    Status.INSPECTION: StatusBudget(minutes=24 * 60, clock="working", severity="high"),
    Status.AWAITING_CLIENT: StatusBudget(minutes=48 * 60, clock="calendar", severity="medium"),
    Status.READY_FOR_SHIPMENT: StatusBudget(minutes=24 * 60, clock="working", severity="high"),
    Status.IN_TRANSIT: StatusBudget(minutes=10 * 24 * 60, clock="calendar", severity="medium"),
}

# Inspection is the most work per order, in_transit the least; assigned-but-not-accepted orders count in full.
DEFAULT_LOAD_WEIGHTS: dict[Status, float] = {
    Status.PENDING_MANAGER: 1.0,
    Status.ACCEPTED: 1.0,
    Status.INSPECTION: 1.5,
    Status.AWAITING_CLIENT: 0.5,
    Status.READY_FOR_SHIPMENT: 1.0,
    Status.IN_TRANSIT: 0.25,
}


def _check_open_status_keys(table: dict[Status, object], what: str) -> None:
    final = sorted((s for s in table if s not in OPEN_STATUSES), key=STATUS_ORDER.__getitem__)
    if final:
        raise ValueError(f"final statuses take no {what}: {', '.join(final)}")
    missing = sorted(OPEN_STATUSES - table.keys(), key=STATUS_ORDER.__getitem__)
    if missing:
        raise ValueError(f"every open status needs a {what}; missing {', '.join(missing)}")


class Policy(_Model):
    version: str = Field(min_length=1)
    calendar: CalendarPolicy = Field(default_factory=CalendarPolicy)
    budgets: dict[Status, StatusBudget] = Field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    reminder_share: float = Field(default=0.8, gt=0, lt=1)
    stuck_hours: int = Field(default=72, gt=0)
    accept_timeout_minutes: int = Field(default=10, gt=0)  # working minutes
    still_on_it_minutes: int = Field(default=240, gt=0)
    crm_status_aliases: dict[str, Status] = Field(default_factory=dict)
    load_weights: dict[Status, float] = Field(default_factory=lambda: dict(DEFAULT_LOAD_WEIGHTS))
    crisis: CrisisPolicy = Field(default_factory=CrisisPolicy)  # domain/crisis.py

    @field_validator("budgets")
    @classmethod
    def _budget_per_open_status(cls, value: dict[Status, StatusBudget]) -> dict[Status, StatusBudget]:
        _check_open_status_keys(dict(value), "budget")
        return value

    @field_validator("load_weights")
    @classmethod
    def _weight_per_open_status(cls, value: dict[Status, float]) -> dict[Status, float]:
        _check_open_status_keys(dict(value), "load weight")
        negative = [status.value for status, weight in value.items() if weight < 0]
        if negative:
            raise ValueError(f"load weights must be >= 0: {', '.join(negative)}")
        return value

    @field_validator("crm_status_aliases")
    @classmethod
    def _aliases_named(cls, value: dict[str, Status]) -> dict[str, Status]:
        if any(not alias.strip() for alias in value):
            raise ValueError("a CRM status alias cannot be empty")
        return value

    @classmethod
    def default(cls) -> Policy:
        return cls(version=DEFAULT_POLICY_VERSION)


def _describe(error: ValidationError) -> tuple[tuple[str, ...], str]:
    fields: list[str] = []
    parts: list[str] = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "[key]") or "(file)"
        message = item["msg"].removeprefix("Value error, ")
        fields.append(where)
        parts.append(f"{where}: {message}")
    return tuple(fields), "; ".join(parts)


def load_policy(path: Path | None) -> Policy:
    """Read the policy file (None: the built-in default); `PolicyError` names the file and every bad field."""
    if path is None:
        return Policy.default()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read: {exc.strerror or exc}", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path}: not valid TOML: {exc}", path=path) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        fields, detail = _describe(exc)
        raise PolicyError(f"policy file {path}: {detail}", path=path, fields=fields) from None


def calendar_for(policy: Policy, default_tz: str) -> WorkingCalendar:
    """The policy's working calendar; `default_tz` (the TIMEZONE setting) applies when the file names none."""
    cal = policy.calendar
    name = cal.timezone or default_tz
    try:
        tz = _zone(name)
    except ValueError as exc:
        raise PolicyError(str(exc), fields=("calendar.timezone",)) from None
    return WorkingCalendar(
        tz=tz,
        workdays=frozenset(cal.workdays),
        start=cal.start,
        end=cal.end,
        holidays=frozenset(cal.holidays),
    )
