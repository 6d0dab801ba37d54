"""One source of defaults (issue 11): the shipped policy.toml holds every default; a deployment's file is laid
over it key by key, and every tunable of the signal backbone is in it with the value it had in code."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from domain.policy import DEFAULTS_FILE, Policy, PolicyError, load_policy

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_file_is_the_source_of_the_defaults() -> None:
    assert DEFAULTS_FILE == REPO_ROOT / "policy.toml"
    policy = Policy.default()
    signals = policy.signals
    # The values the backbone had as constants before they moved here.
    assert signals.response_minutes == {"critical": 15, "high": 120, "medium": 1440}
    assert (signals.weekly_review_weekday, signals.weekly_review_time) == (0, time(10))
    assert (signals.snooze_short_hours, signals.snooze_long_hours) == (1, 4)
    assert (signals.still_on_it_reply_minutes, signals.effect_window_minutes) == (60, 60)
    assert signals.postmortem_due_hours == 24
    assert (policy.outbox.backoff_start_seconds, policy.outbox.backoff_max_seconds) == (30, 900)
    assert policy.outbox.refused_retry_hours == 6
    assert policy.dispatch.max_capacity == 500
    assert policy.still_on_it_minutes == 240


def test_a_deployment_file_overrides_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = "site-1"\n'
        "[signals]\nresponse_minutes = { high = 30 }\nsnooze_long_hours = 8\n"
        "[outbox]\nbackoff_start_seconds = 5\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    shipped = Policy.default()
    assert policy.signals.response_minutes == {"critical": 15, "high": 30, "medium": 1440}
    assert (policy.signals.snooze_short_hours, policy.signals.snooze_long_hours) == (1, 8)
    assert policy.outbox.backoff_start_seconds == 5
    assert policy.outbox.backoff_max_seconds == shipped.outbox.backoff_max_seconds
    assert (policy.budgets, policy.calendar, policy.dispatch) == (
        shipped.budgets,
        shipped.calendar,
        shipped.dispatch,
    )


def test_bad_backbone_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = "x"\n[signals]\nresponse_minutes = { high = 0 }\nsnooze_short_hours = -1\n'
        "[dispatch]\nmax_capacity = 0\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert {"signals.response_minutes", "signals.snooze_short_hours", "dispatch.max_capacity"} <= set(
        caught.value.fields
    )
