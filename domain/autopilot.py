"""Phase 4 autopilot as pure rules: which low-risk actions run without a human's confirmation (the policy
file's [autopilot] table, each with a limit per day), and when an action whose observed effects were mostly
bad goes back to "ask a human"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The low-risk actions the autopilot knows (SPEC §6, seed Phase 4).
REASSIGN_ON_TIMEOUT = "reassign_on_accept_timeout"
REMIND = "remind"
REOFFER_AFTER_DECLINE = "reoffer_after_decline"
RESCREEN = "rescreen_after_list_update"
AUTOPILOT_ACTIONS: tuple[str, ...] = (REASSIGN_ON_TIMEOUT, REMIND, REOFFER_AFTER_DECLINE, RESCREEN)

Mode = Literal["auto", "ask"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutopilotAction(_Model):
    enabled: bool  # false: always ask a human
    per_day: int = Field(ge=0)  # runs per local day without confirmation; then ask a human


class AutopilotPolicy(_Model):
    """The policy file's [autopilot] table (policy.toml is the one source of its values)."""

    actions: dict[str, AutopilotAction]
    review_weeks: int = Field(ge=1)  # how far back the switch-back looks
    min_judged: int = Field(ge=1)  # runs with a known effect before judging
    max_bad_share: float = Field(gt=0, lt=1)  # more than this share unhelpful -> ask a human

    def action(self, name: str) -> AutopilotAction:
        """An action the file does not list is not allowed to run by itself."""
        return self.actions.get(name, AutopilotAction(enabled=False, per_day=0))


@dataclass(frozen=True)
class Verdict:
    mode: Mode
    reason: Literal["allowed", "disabled", "switched_back", "daily_limit"]


def may_run(policy: AutopilotPolicy, action: str, mode: Mode | None, ran_today: int) -> Verdict:
    """Whether `action` runs now without confirmation: listed and enabled, not switched back to "ask" after
    bad effects (`mode`), and below its limit for today."""
    rule = policy.action(action)
    if not rule.enabled:
        return Verdict("ask", "disabled")
    if mode == "ask":
        return Verdict("ask", "switched_back")
    if ran_today >= rule.per_day:
        return Verdict("ask", "daily_limit")
    return Verdict("auto", "allowed")


@dataclass(frozen=True)
class Judgement:
    judged: int
    bad: int
    switch_back: bool

    @property
    def bad_share(self) -> float | None:
        return self.bad / self.judged if self.judged else None


def judge(policy: AutopilotPolicy, helped: Iterable[bool | None]) -> Judgement:
    """Over the automatic runs of the last `review_weeks`: switch back when at least `min_judged` have a
    known effect and more than `max_bad_share` of those did not help."""
    known = [h for h in helped if h is not None]
    bad = sum(1 for h in known if not h)
    switch = len(known) >= policy.min_judged and bad / len(known) > policy.max_bad_share
    return Judgement(len(known), bad, switch)
