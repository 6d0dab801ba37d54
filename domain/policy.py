"""The policy (SPEC §5, §6): per-status budgets, the working calendar, timeouts, load weights and every
tunable of the signal backbone, read from one TOML file.

One source of defaults: `policy.toml` at the repository root (`DEFAULTS_FILE`). `Policy.default()` is that
file; a deployment's POLICY_FILE is laid over it: a key or table it gives wins, a key it leaves out keeps the
shipped value. Tables keyed by status (`budgets`, `load_weights`) and `crm_status_aliases` are replaced whole,
so a file that gives budgets must give one per open status, and every file names its own `version`. The
models below validate; they hold no default values of their own.
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from domain.calendar import WorkingCalendar
from domain.statuses import OPEN_STATUSES, STATUS_ORDER, Status

Clock = Literal["working", "calendar"]
Severity = Literal["critical", "high", "medium", "low"]

# The shipped policy: the one place where every default value is written down.
DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "policy.toml"
# Tables a deployment's file replaces whole instead of key by key (see the module docstring).
_REPLACED_TABLES = frozenset({"budgets", "load_weights", "crm_status_aliases"})


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
    timezone: str | None = None  # absent: the deployment's TIMEZONE setting
    workdays: list[int]  # Monday = 0
    start: time
    end: time
    holidays: list[date]

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


def _check_open_status_keys(table: dict[Status, object], what: str) -> None:
    final = sorted((s for s in table if s not in OPEN_STATUSES), key=STATUS_ORDER.__getitem__)
    if final:
        raise ValueError(f"final statuses take no {what}: {', '.join(final)}")
    missing = sorted(OPEN_STATUSES - table.keys(), key=STATUS_ORDER.__getitem__)
    if missing:
        raise ValueError(f"every open status needs a {what}; missing {', '.join(missing)}")


class GovernancePolicy(_Model):
    """[governance]: sanctions screening and process drift (issue 15)."""

    sanctions_threshold: float = Field(gt=0, le=100)  # name score (0..100) that holds an order


class ReliabilityPolicy(_Model):
    """[reliability]: the bounds whose crossing raises a reliability signal (issue 15)."""

    api_p95_bound_ms: float = Field(gt=0)  # CRM API p95 over the last hour
    unreachable_failures: int = Field(gt=0)  # failed sync runs in a row: CRM unreachable
    sync_lag_minutes: int = Field(gt=0)  # no successful sync for this long: lagging
    sender_backlog_limit: int = Field(gt=0)  # messages due and unsent
    violation_burst: int = Field(gt=0)  # records kept aside within the last hour


class RevenuePolicy(_Model):
    """[revenue]: the normal band of each channel's conversion and each stage's drop-off (issue 15)."""

    band_weeks: int = Field(gt=0)  # the band's rate is learned from this many weeks of days
    band_sigmas: float = Field(gt=0)  # ± this many binomial standard deviations for the day
    band_min_width: float = Field(ge=0)  # the band is at least ± this much wide (a fraction)
    band_min_days: int = Field(gt=1)  # fewer days of history: no band yet, no signal
    min_leads: int = Field(gt=0)  # a day with fewer at the stage's start is not judged


ResponseSeverity = Literal["critical", "high", "medium"]  # "low" waits for the weekly review


class SignalsPolicy(_Model):
    """The signal backbone's ladder and timings (SPEC §6). A signal keeps the ladder in force when it was
    raised (ai_signals.ladder); an edit applies to signals raised after it."""

    response_minutes: dict[ResponseSeverity, int]  # calendar minutes to acknowledge, per severity
    weekly_review_weekday: int = Field(ge=0, le=6)  # low signals are due at the weekly review
    weekly_review_time: time
    snooze_short_hours: int = Field(gt=0)  # the two snooze buttons
    snooze_long_hours: int = Field(gt=0)
    still_on_it_reply_minutes: int = Field(gt=0)  # working minutes to answer "still on it?"
    effect_window_minutes: int = Field(gt=0)  # a decision's effect: did the order move on within this
    postmortem_due_hours: int = Field(gt=0)  # a critical signal without a postmortem after this: flagged

    @field_validator("response_minutes")
    @classmethod
    def _every_severity(cls, value: dict[ResponseSeverity, int]) -> dict[ResponseSeverity, int]:
        missing = [s for s in ("critical", "high", "medium") if s not in value]
        if missing:
            raise ValueError(f"a response time is needed for {', '.join(missing)}")
        if any(minutes <= 0 for minutes in value.values()):
            raise ValueError("response times must be > 0 minutes")
        return value


class OutboxPolicy(_Model):
    """Retries of CRM writes (bikewerk/outbox.py): exponential backoff with jitter; slow once refused."""

    backoff_start_seconds: float = Field(gt=0)
    backoff_max_seconds: float = Field(gt=0)
    refused_retry_hours: float = Field(gt=0)


class DispatchPolicy(_Model):
    max_capacity: int = Field(gt=0)  # the highest capacity an admin may set with /capacity


class UnitEconomicsPolicy(_Model):
    """The AI-CFO's leak rules ([unit_economics]); domain.economics.EconomicsRules carries them."""

    margin_floor_pct: float = Field(ge=-1, lt=1)  # a fraction of the sale: 0.08 = 8 %
    usual_shipping_eur: float = Field(ge=0)
    shipping_tolerance_eur: float = Field(ge=0)
    purchase_tolerance_pct: float = Field(ge=0)
    under_collection_tolerance_eur: float = Field(ge=0)
    watch_days: int = Field(gt=0)  # delivered orders re-checked when they change, this long


class QualityPolicy(_Model):
    """The Head of Quality's rules ([quality])."""

    repeat_days: int = Field(gt=0)


class ScorecardPolicy(_Model):
    """AI-РОМ ([scorecards]): when a manager is slipping."""

    misses_per_day: int = Field(gt=0)  # offers missed (expired) within one local day
    breach_rate_factor: float = Field(gt=1)  # breach rate at least this many times the team's
    min_visits: int = Field(gt=0)  # visits a manager needs in the window before the rate counts
    window_days: int = Field(gt=0)


class Policy(_Model):
    version: str = Field(min_length=1)
    calendar: CalendarPolicy
    budgets: dict[Status, StatusBudget]
    reminder_share: float = Field(gt=0, lt=1)
    stuck_hours: int = Field(gt=0)
    accept_timeout_minutes: int = Field(gt=0)  # working minutes
    still_on_it_minutes: int = Field(gt=0)
    crm_status_aliases: dict[str, Status]
    load_weights: dict[Status, float]
    signals: SignalsPolicy
    outbox: OutboxPolicy
    dispatch: DispatchPolicy
    unit_economics: UnitEconomicsPolicy
    quality: QualityPolicy
    scorecards: ScorecardPolicy
    governance: GovernancePolicy
    reliability: ReliabilityPolicy
    revenue: RevenuePolicy

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
        """The shipped policy (`DEFAULTS_FILE`)."""
        return _shipped()


def _describe(error: ValidationError) -> tuple[tuple[str, ...], str]:
    fields: list[str] = []
    parts: list[str] = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "[key]") or "(file)"
        message = item["msg"].removeprefix("Value error, ")
        fields.append(where)
        parts.append(f"{where}: {message}")
    return tuple(fields), "; ".join(parts)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read: {exc.strerror or exc}", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path}: not valid TOML: {exc}", path=path) from None


def _validate(data: dict[str, Any], path: Path) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        fields, detail = _describe(exc)
        raise PolicyError(f"policy file {path}: {detail}", path=path, fields=fields) from None


def _overlay(base: dict[str, Any], top: dict[str, Any], *, depth: int = 0) -> dict[str, Any]:
    """`top` over `base`, table by table; the tables in `_REPLACED_TABLES` (top level) are taken whole."""
    merged = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        replaced = depth == 0 and key in _REPLACED_TABLES
        if isinstance(old, dict) and isinstance(value, dict) and not replaced:
            merged[key] = _overlay(old, value, depth=depth + 1)
        else:
            merged[key] = value
    return merged


@cache
def _shipped_data() -> dict[str, Any]:
    return _read(DEFAULTS_FILE)


@cache
def _shipped() -> Policy:
    return _validate(_shipped_data(), DEFAULTS_FILE)


def load_policy(path: Path | None) -> Policy:
    """Read a policy file laid over the shipped one (None: the shipped policy itself); `PolicyError` names the
    file and every bad field. The file must name its `version`."""
    if path is None:
        return Policy.default()
    data = _read(path)
    defaults = {key: value for key, value in _shipped_data().items() if key != "version"}
    return _validate(_overlay(defaults, data), path)


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
