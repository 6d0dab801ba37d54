"""The effect sweep (issue 12): every minute, fill in the observed effect of the decisions whose expected
effect (domain/effects.py) is now known or whose window has passed. Written once (`effect IS NULL`), never
for a request still waiting for an admin; cancel, compensation and bulk reassignment get theirs from their
settler when the admin decides."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.logs import log_event
from bot.services import Services
from domain.effects import EXPECTED, OBSERVED_ACTIONS, Expect, Observed, deadline, judge
from storage import effects as store
from storage import signals as signal_store

log = logging.getLogger(__name__)

_BATCH = 500


async def _observe(
    services: Services, decision: signal_store.Decision, expect: Expect, until: datetime
) -> Observed:
    db = services.db
    if expect is Expect.ACCEPTED and decision.order_id is not None:
        return Observed(
            accepted_at=await store.first_acceptance_after(db, decision.order_id, decision.created_at)
        )
    if expect is Expect.NO_REPEAT and decision.signal_id is not None:
        signal = await signal_store.get_signal(db, decision.signal_id)
        if signal is None:
            return Observed()
        status = signal.details.get("status")
        repeat = await store.repeat_after(
            db,
            type_=signal.type,
            status=str(status) if status is not None else None,
            after=decision.created_at,
            not_id=signal.id,
        )
        return Observed(repeat=repeat)
    if decision.order_id is not None:
        change = await signal_store.first_status_change_after(db, decision.order_id, decision.created_at)
        return Observed(status_change=(change.to_status, change.at) if change is not None else None)
    return Observed()


def _window(services: Services, expect: Expect, made_at: datetime) -> timedelta:
    if expect is Expect.ACCEPTED:
        timeout = services.policy.accept_timeout_minutes
        return services.calendar.add_working_minutes(made_at, timeout) - made_at
    return timedelta(minutes=services.policy.signals.effect_window_minutes)


async def observe_effects(services: Services, now: datetime) -> int:
    """Fill in what is known; returns how many effects were written."""
    effects: list[tuple[int, dict[str, Any]]] = []
    for decision in await store.decisions_to_observe(services.db, OBSERVED_ACTIONS, _BATCH):
        if decision.created_at > now:
            break
        expect = EXPECTED[decision.action]
        if expect is not Expect.NO_REPEAT and decision.order_id is None:
            effects.append((decision.id, {"expected": str(expect), "helped": None, "unobservable": True}))
            continue
        window = _window(services, expect, decision.created_at)
        until = deadline(expect, decision.created_at, window=window, facts=dict(decision.details))
        effect = judge(
            expect, decision.created_at, until, await _observe(services, decision, expect, until), now
        )
        if effect is not None:
            effects.append((decision.id, effect))
    if effects:
        async with services.db.transaction() as conn:
            for decision_id, effect in effects:
                await signal_store.set_effect(conn, decision_id, effect, now)
        log_event(log, "decision.effects", filled=len(effects))
    return len(effects)
