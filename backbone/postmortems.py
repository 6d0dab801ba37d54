"""Postmortems (SPEC §6, crisis protocol): resolving a critical or high signal asks its resolver, privately
and one question at a time, for the cause, the action, the effect and the prevention. The resolver's next
private messages answer the questions in order; the last answer finishes the postmortem and resolves the
postmortem.missing signal raised for it, if any. `/postmortems` lists them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import aiosqlite

from backbone.decisions import actor_of, record_decision
from backbone.signals import Routing, contacts_of, put_rendered, resolve_signal
from bot.logs import log_event
from bot.services import Services
from domain.signals import MAX_POSTMORTEM_ANSWER, Signal
from keyboards import outcomes
from keyboards import signals as cards
from storage import awaiting as awaiting_store
from storage import signals as store

log = logging.getLogger(__name__)

STEPS = ("cause", "action", "effect", "prevention")


@dataclass(frozen=True)
class StepAnswer:
    """What came of one answer: the next question to ask (`next_step`), or "done", or a refusal."""

    signal: Signal | None
    next_step: str | None = None  # cause | action | effect | prevention | done
    refusal: Literal["too_long", "empty"] | None = None


async def answer_step(
    services: Services, user_id: int, text: str, now: datetime, postmortem_id: int | None = None
) -> StepAnswer | None:
    """Store the person's answer to their current postmortem question (`postmortem_id`: the one their next
    message answers, storage.awaiting); None if they owe no postmortem."""
    answer = text.strip()
    async with services.db.transaction() as conn:
        if postmortem_id is not None:
            postmortem = await awaiting_store.get_postmortem(conn, postmortem_id)
            if postmortem is not None and (postmortem.author != user_id or postmortem.step == "done"):
                postmortem = None
        else:
            postmortem = await store.postmortem_in_progress(conn, user_id)
        if postmortem is None:
            return None
        signal = await store.get_signal(conn, postmortem.signal_id)
        if not answer:
            return StepAnswer(signal, postmortem.step, "empty")
        if len(answer) > MAX_POSTMORTEM_ANSWER:
            return StepAnswer(signal, postmortem.step, "too_long")
        index = STEPS.index(postmortem.step)
        next_step = STEPS[index + 1] if index + 1 < len(STEPS) else "done"
        await store.answer_postmortem_step(
            conn, postmortem.id, step=postmortem.step, text=answer, next_step=next_step, now=now
        )
        if next_step == "done":
            await _finish(services, conn, postmortem, user_id, now)
        else:
            await awaiting_store.mark_asked(conn, postmortem.signal_id, now)
    if next_step == "done":
        services.wake_sender()
        log_event(log, "postmortem.done", id=postmortem.id, signal=postmortem.signal_id, author=user_id)
    return StepAnswer(signal, next_step)


async def _finish(
    services: Services, conn: aiosqlite.Connection, postmortem: store.Postmortem, user_id: int, now: datetime
) -> None:
    await record_decision(
        conn,
        kind="human",
        action="postmortem",
        actor=actor_of(user_id),
        reason="postmortem written",
        now=now,
        signal_id=postmortem.signal_id,
        details={"postmortem": postmortem.id},
    )
    missing = await store.live_signal_by_dedup(conn, f"postmortem.missing:{postmortem.signal_id}")
    if missing is not None:
        await resolve_signal(
            conn,
            missing,
            Routing.from_settings(services.settings),
            now,
            by=user_id,
            resolution="postmortem written",
        )


async def list_page(services: Services, *, page: int, per_page: int) -> tuple[list[store.Postmortem], int]:
    return await store.list_postmortems(services.db, limit=per_page, offset=page * per_page)


async def author_names(services: Services, items: list[store.Postmortem]) -> dict[int, str]:
    return await store.person_names(services.db, (p.author for p in items))


async def ask_postmortem(
    conn: aiosqlite.Connection, routing: Routing, signal: Signal, author: int, now: datetime
) -> bool:
    """Ask `author` privately for the postmortem of `signal` (one question at a time) and, for a critical
    signal, tell the crisis chat who owes it and by when. False if one was already asked for."""
    if not await store.create_postmortem(conn, signal_id=signal.id, author=author, now=now):
        return False
    await put_rendered(
        conn,
        routing,
        author,
        f"postmortem:{signal.id}:cause",
        now,
        lambda: (cards.postmortem_question("cause", signal), None),
    )
    crisis = contacts_of(signal, routing).crisis_chat_id
    if signal.severity == "critical" and crisis is not None and crisis != author:
        names = await store.person_names(conn, [author])
        due = signal.raised_at + timedelta(hours=signal.ladder.postmortem_due_hours)
        await put_rendered(
            conn,
            routing,
            crisis,
            f"postmortem:{signal.id}:crisis",
            now,
            lambda: (
                outcomes.postmortem_requested(
                    signal,
                    author=names.get(author, str(author)),
                    due=due,
                    tz=routing.tz,
                    title=cards.type_title(signal.type),
                ),
                None,
            ),
        )
    log_event(log, "postmortem.asked", signal=signal.id, author=author)
    return True


async def put_off(services: Services, user_id: int, now: datetime) -> list[int]:
    """/cancel in the middle of a postmortem: it waits (still owed; postmortem.missing still comes after the
    due time) and the person's next texts are no longer taken as answers. Returns the signals put off."""
    async with services.db.transaction() as conn:
        return await awaiting_store.pause_postmortems(conn, user_id, now)


async def continue_postmortem(
    services: Services, user_id: int, signal_id: int, now: datetime
) -> StepAnswer | None:
    """The person continues a postmortem they put off: its current question again (None: nothing to
    continue)."""
    async with services.db.transaction() as conn:
        if not await awaiting_store.resume_postmortem(conn, signal_id, user_id, now):
            return None
        signal = await store.get_signal(conn, signal_id)
        postmortem = await awaiting_store.postmortem_of_signal(conn, signal_id)
    if postmortem is None or signal is None:
        return None
    return StepAnswer(signal, postmortem.step)
