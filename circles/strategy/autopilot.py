"""Phase 4 autopilot: low-risk actions the policy file allows run without confirmation, within a limit per
day; each automatic run is a decision carrying its expected effect (the effect sweep fills in the observed
one); an action whose runs mostly did not help over the last weeks goes back to "ask a human", and the owner
is told. The weekly retrospective shows per action kind how often it ran and helped.

Callers ask `gate(...)` inside their transaction: "auto" means the run was recorded and they act; "ask"
means a person must decide (the caller raises its signal instead).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from backbone.decisions import record_decision
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from domain.autopilot import AUTOPILOT_ACTIONS, Mode, Verdict, judge, may_run
from domain.kpi import action_helped
from keyboards import autopilot as texts
from storage import autopilot as store
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)


def _day_start(services: Services, now: datetime) -> datetime:
    local = now.astimezone(services.settings.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def gate(
    conn: aiosqlite.Connection,
    services: Services,
    action: str,
    now: datetime,
    *,
    reason: str,
    expected: dict[str, Any],
    order_id: str | None = None,
    signal_id: int | None = None,
    actor: str = "autopilot",
    details: dict[str, Any] | None = None,
    decision_action: str | None = None,
) -> Verdict:
    """Whether `action` runs by itself now; when it does, its decision (kind auto, named `decision_action`
    or the action, with details.autopilot = the action and the expected effect) is recorded here, in the
    caller's transaction."""
    mode: Mode | None = "ask" if await store.mode_of(conn, action) == "ask" else None
    ran_today = await store.runs_since(conn, action, _day_start(services, now))
    verdict = may_run(services.policy.autopilot, action, mode, ran_today)
    if verdict.mode == "auto":
        await record_decision(
            conn,
            kind="auto",
            action=decision_action or action,
            actor=actor,
            reason=reason,
            now=now,
            signal_id=signal_id,
            order_id=order_id,
            details={**(details or {}), "autopilot": action, "expected": expected},
        )
    else:
        log_event(log, "autopilot.ask", action=action, why=verdict.reason)
    return verdict


async def review(services: Services, now: datetime) -> list[str]:
    """Switch back to "ask a human" every action whose automatic runs mostly did not help over the last
    `review_weeks`; the owner hears of each. Returns the actions switched."""
    policy = services.policy.autopilot
    since = now - timedelta(weeks=policy.review_weeks)
    current = await store.modes(services.db)
    switched: list[str] = []
    for action in AUTOPILOT_ACTIONS:
        if current.get(action) == "ask" or not policy.action(action).enabled:
            continue
        runs = await store.runs_between(services.db, action, since, now)
        verdict = judge(policy, (action_helped(r.effect) for r in runs))
        if not verdict.switch_back:
            continue
        async with services.db.transaction() as conn:
            await store.set_mode(conn, action, "ask", now, f"{verdict.bad} of {verdict.judged} did not help")
            await record_decision(
                conn,
                kind="auto",
                action="autopilot_switch",
                actor="autopilot",
                reason=f"{action}: {verdict.bad} of {verdict.judged} runs did not help; ask a human",
                now=now,
                details={"autopilot_action": action, "bad": verdict.bad, "judged": verdict.judged},
            )
            await _tell_owner(conn, services, action, verdict.bad, verdict.judged, now)
        switched.append(action)
        log_event(log, "autopilot.switched_back", action=action, bad=verdict.bad, judged=verdict.judged)
    if switched:
        services.wake_sender()
    return switched


async def _tell_owner(
    conn: aiosqlite.Connection, services: Services, action: str, bad: int, judged: int, now: datetime
) -> None:
    settings = services.settings
    chats = [settings.owner_id] if settings.owner_id is not None else list(settings.admin_ids)
    for chat in chats:
        with in_locale(await chat_language(conn, chat, settings.default_language)):
            text = texts.switched_back_text(action, bad, judged)
        ref = f"autopilot:switch:{action}:{int(now.timestamp())}"
        await put_message(conn, chat_id=chat, ref=ref, body=text, markup=None, now=now)


async def set_mode(services: Services, action: str, mode: Mode, now: datetime, reason: str) -> None:
    """An admin puts an action back on autopilot (or takes it off)."""
    async with services.db.transaction() as conn:
        await store.set_mode(conn, action, mode, now, reason)


async def week_report(services: Services, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per action kind over [start, end): how often it ran by itself, how often that helped, its mode now."""
    policy = services.policy.autopilot
    current = await store.modes(services.db)
    rows = []
    for action in AUTOPILOT_ACTIONS:
        runs = await store.runs_between(services.db, action, start, end)
        helped = [action_helped(r.effect) for r in runs]
        rule = policy.action(action)
        rows.append(
            {
                "action": action,
                "ran": len(runs),
                "helped": sum(1 for h in helped if h),
                "known": sum(1 for h in helped if h is not None),
                "mode": "ask" if not rule.enabled or current.get(action) == "ask" else "auto",
                "per_day": rule.per_day,
            }
        )
    return rows
