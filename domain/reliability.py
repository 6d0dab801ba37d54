"""Reliability rules that need no store (SPEC §14, docs/kpi.md): percentiles of the CRM client's latency and
the conditions that raise the reliability circle's signals, each with the numbers that made it fire."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.policy import ReliabilityPolicy


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.95 = p95); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Observed:
    """What the health check saw, now."""

    now: datetime
    recent_runs_ok: Sequence[bool]  # the latest sync runs, newest first
    last_good_sync: datetime | None
    p95_ms_last_hour: float | None
    requests_last_hour: int
    sender_backlog: int
    violations_last_hour: int
    violation_sample: Sequence[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None


@dataclass(frozen=True)
class Finding:
    """A condition of a signal type: firing or not, with its facts."""

    type: str
    firing: bool
    details: dict[str, Any]


def findings(seen: Observed, policy: ReliabilityPolicy) -> list[Finding]:
    """Every reliability condition, firing or clear (a clear one resolves its live signal)."""
    failures = 0
    for ok in seen.recent_runs_ok:
        if ok:
            break
        failures += 1
    lag = None if seen.last_good_sync is None else (seen.now - seen.last_good_sync) / timedelta(minutes=1)
    p95 = seen.p95_ms_last_hour
    return [
        Finding(
            "reliability.crm_unreachable",
            failures >= policy.unreachable_failures,
            {"failed_runs": failures, "bound": policy.unreachable_failures, "error": seen.last_error or "-"},
        ),
        Finding(
            "reliability.crm_slow",
            p95 is not None and p95 > policy.api_p95_bound_ms,
            {
                "p95_ms": None if p95 is None else round(p95),
                "bound_ms": round(policy.api_p95_bound_ms),
                "requests": seen.requests_last_hour,
            },
        ),
        Finding(
            "reliability.sync_lagging",
            lag is not None and lag > policy.sync_lag_minutes,
            {
                "minutes_since_good_sync": None if lag is None else round(lag),
                "bound": policy.sync_lag_minutes,
            },
        ),
        Finding(
            "reliability.sender_backlog",
            seen.sender_backlog > policy.sender_backlog_limit,
            {"messages_due": seen.sender_backlog, "bound": policy.sender_backlog_limit},
        ),
        Finding(
            "reliability.contract_violations",
            seen.violations_last_hour >= policy.violation_burst,
            {
                "records_last_hour": seen.violations_last_hour,
                "bound": policy.violation_burst,
                "sample": list(seen.violation_sample),
            },
        ),
    ]
