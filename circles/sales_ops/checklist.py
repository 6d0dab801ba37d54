"""The 28-point inspection checklist from Telegram (SPEC §4): open or resume it, answer items, notes, photos
and documents as artifacts of the current item, pages, and Submit behind the completeness gate.

The checklist is one message per order (ref ``order:<id>:checklist``) edited in place after every change;
where the manager is (page, current item, a note awaited) lives in checklist_sessions and input_focus, so
leaving the chat or a restart resumes there. Submitting a complete checklist moves the order inspection ->
awaiting_client; an incomplete one is refused with the list of what is missing. A fail on item 4 or 6 raises
`quality.severe_defect` for the leads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import aiosqlite

from backbone.signals import raise_signal
from bot.i18n import in_locale
from bot.logs import log_event
from bot.services import Services
from circles.sales_ops.orders import ActionRefused, apply_status, authorise, load_order
from domain.actors import Actor
from domain.checklist import (
    GROUPS,
    ITEMS,
    SEVERE_DEFECT_ITEMS,
    Answer,
    ChecklistError,
    Missing,
    missing_for_submit,
    validate_answer,
)
from domain.models import Order
from domain.statuses import Status
from keyboards.checklist import ChecklistView, checklist_message
from storage import checklist as store
from storage import orders as order_store
from storage.checklist import ArtifactKind, ChecklistSession, NewArtifact
from storage.messages import put_message
from storage.people import chat_language

log = logging.getLogger(__name__)

Fetch = Callable[[Path], Awaitable[None]]  # downloads the Telegram file to the given path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def checklist_ref(order_id: str) -> str:
    return f"order:{order_id}:checklist"


async def _render(
    conn: aiosqlite.Connection,
    services: Services,
    order: Order,
    session: ChecklistSession,
    now: datetime,
    missing: Sequence[Missing] = (),
) -> None:
    chat_id = session.telegram_id
    lang = await chat_language(conn, chat_id, services.settings.default_language)
    view = ChecklistView(
        order=order,
        handle=await order_store.order_handle(conn, order.id),
        lang=lang,
        tz=services.calendar.tz,
        answers=await store.answers(conn, order.id),
        files=await store.files_per_item(conn, order.id),
        page=session.page,
        current_item=session.current_item,
        note_item=session.note_item,
        missing=missing,
        submitted_at=session.submitted_at,
    )
    with in_locale(lang):
        text, markup = checklist_message(view)
    await put_message(
        conn,
        chat_id=chat_id,
        ref=checklist_ref(order.id),
        body=text,
        markup=markup,
        now=now,
    )


async def _editable(
    conn: aiosqlite.Connection, services: Services, order_id: str, telegram_id: int
) -> tuple[Order, ChecklistSession, Actor]:
    """The order and its open session, for someone allowed to fill it, while the order is in inspection."""
    order = await load_order(conn, order_id)
    actor = await authorise(conn, services, order, telegram_id)
    session = await store.get_session(conn, order.id)
    if session is not None and session.submitted_at is not None:
        raise ActionRefused("checklist_submitted", order=order.id)
    if order.status is not Status.INSPECTION:
        raise ActionRefused("checklist_closed", order=order.id)
    if session is None:
        raise ActionRefused("no_checklist")
    return order, session, actor


async def open_checklist(services: Services, order_id: str, *, actor_telegram_id: int, now: datetime) -> None:
    """Show the order's checklist where it was left (or from the first page); files and notes sent from now on
    go to it."""
    async with services.db.transaction() as conn:
        order = await load_order(conn, order_id)
        await authorise(conn, services, order, actor_telegram_id)
        existing = await store.get_session(conn, order.id)
        if order.status is not Status.INSPECTION and (existing is None or existing.submitted_at is None):
            raise ActionRefused("checklist_closed", order=order.id)
        await store.open_session(conn, order.id, actor_telegram_id, now)
        if existing is None or existing.submitted_at is None:
            await order_store.set_focus(conn, actor_telegram_id, "checklist", order.id, now)
        session = await store.get_session(conn, order.id)
        assert session is not None
        await _render(conn, services, order, session, now)
    services.wake_sender()
    log_event(log, "checklist.opened", order=order_id, by=actor_telegram_id, page=session.page)


async def _update(
    services: Services,
    order_id: str,
    telegram_id: int,
    now: datetime,
    change: Callable[[aiosqlite.Connection, Order, ChecklistSession], Awaitable[None]],
) -> None:
    """Apply one change to an open checklist and re-render it; the change's session is the manager's focus."""
    async with services.db.transaction() as conn:
        order, _, _ = await _editable(conn, services, order_id, telegram_id)
        await store.open_session(conn, order.id, telegram_id, now)
        session = await store.get_session(conn, order.id)
        assert session is not None
        await change(conn, order, session)
        await order_store.set_focus(conn, telegram_id, "checklist", order.id, now)
        session = await store.get_session(conn, order.id)
        assert session is not None
        await _render(conn, services, order, session, now)
    services.wake_sender()


async def answer_item(
    services: Services, order_id: str, item: int, answer: str, *, actor_telegram_id: int, now: datetime
) -> None:
    """Pass / fail / N/A for one item. A fail makes the item current and asks for its note and photo; a fail
    on a frame or fork crack (items 4, 6) raises quality.severe_defect."""

    async def change(conn: aiosqlite.Connection, order: Order, session: ChecklistSession) -> None:
        try:
            validate_answer(item, answer, is_ebike=order.is_ebike)
        except ChecklistError as exc:
            raise ActionRefused("bad_answer", item=item, why=exc.reason) from None
        await store.set_answer(conn, order.id, item, cast(Answer, answer), by=actor_telegram_id, now=now)
        await store.set_current_item(conn, order.id, item, wants_note=answer == "fail")
        await store.set_page(conn, order.id, _page_of(item))
        if answer == "fail" and item in SEVERE_DEFECT_ITEMS:
            await raise_signal(
                conn,
                type="quality.severe_defect",
                dedup_key=f"quality.severe_defect:{order.id}:{item}",
                now=now,
                order_id=order.id,
                details={
                    "order_id": order.id,
                    "item": item,
                    "bike": f"{order.bike_brand} {order.bike_model}".strip(),
                },
                raised_by=order.assigned_manager_id or str(actor_telegram_id),
                settings=services.settings,
                policy=services.policy,
            )
            log_event(log, "checklist.severe_defect", order=order.id, item=item)

    await _update(services, order_id, actor_telegram_id, now, change)


async def select_item(
    services: Services, order_id: str, item: int, *, actor_telegram_id: int, now: datetime
) -> None:
    """📎: photos, documents and the next note go to `item`."""
    if item not in ITEMS:
        raise ActionRefused("bad_item", item=item)

    async def change(conn: aiosqlite.Connection, order: Order, session: ChecklistSession) -> None:
        await store.set_current_item(conn, order.id, item, wants_note=True)
        await store.set_page(conn, order.id, _page_of(item))

    await _update(services, order_id, actor_telegram_id, now, change)


def _page_of(item: int) -> int:
    return next(group.number for group in GROUPS if any(i.number == item for i in group.items))


async def show_page(
    services: Services, order_id: str, page: int, *, actor_telegram_id: int, now: datetime
) -> None:
    if not 1 <= page <= len(GROUPS):
        raise ActionRefused("bad_page", page=page)

    async def change(conn: aiosqlite.Connection, order: Order, session: ChecklistSession) -> None:
        await store.set_page(conn, order.id, page)

    await _update(services, order_id, actor_telegram_id, now, change)


async def _focused(services: Services, telegram_id: int) -> tuple[Order, ChecklistSession] | None:
    """The checklist this person is filling right now, if any (read-only)."""
    conn = services.db.reader
    focus = await order_store.get_focus(conn, telegram_id)
    if focus is None or focus.kind != "checklist":
        return None
    order = await order_store.get_order(conn, focus.order_id)
    session = await store.get_session(conn, focus.order_id)
    if (
        order is None
        or session is None
        or session.submitted_at is not None
        or order.status is not Status.INSPECTION
    ):
        return None
    return order, session


async def add_note(
    services: Services, *, telegram_id: int, text: str, is_reply: bool, now: datetime
) -> int | None:
    """A text while a checklist is open: the note of the item waiting for one (or, for a reply to the
    checklist, of the current item). Returns the item; None when the text is not meant for a checklist."""
    focused = await _focused(services, telegram_id)
    if focused is None:
        return None
    order, session = focused
    item = session.note_item or (session.current_item if is_reply else None)
    if item is None:
        return None
    note = text.strip()
    if not note:
        raise ActionRefused("empty_note", item=item)

    async def change(conn: aiosqlite.Connection, order: Order, session: ChecklistSession) -> None:
        if not await store.set_note(conn, order.id, item, note[:1000]):
            raise ActionRefused("answer_first", item=item)
        await store.set_current_item(conn, order.id, item, wants_note=False)

    await _update(services, order.id, telegram_id, now, change)
    log_event(log, "checklist.note", order=order.id, item=item)
    return item


def artifact_path(
    root: Path, order_id: str, item: int, file_unique_id: str, kind: ArtifactKind, name: str | None
) -> Path:
    """Where a file of the checklist is kept: <root>/<order>/<item>-<unique id><extension>."""
    suffix = Path(name).suffix if name else ""
    extension = _UNSAFE.sub("", suffix)[:10] if suffix else (".jpg" if kind == "photo" else ".bin")
    folder = _UNSAFE.sub("_", order_id).strip(".") or "order"
    return root / folder / f"{item:02d}-{_UNSAFE.sub('_', file_unique_id)}{extension}"


@dataclass(frozen=True)
class Attached:
    order_id: str
    item: int
    new: bool  # False: this very file was attached before
    saved: bool  # the file was downloaded into the artifacts folder


async def attach_file(
    services: Services,
    *,
    telegram_id: int,
    kind: ArtifactKind,
    file_id: str,
    file_unique_id: str,
    file_name: str | None,
    fetch: Fetch,
    now: datetime,
) -> Attached:
    """A photo or document sent while a checklist is open becomes an artifact of the current item.

    The download runs before the transaction (network I/O never holds the database); if it fails, the artifact
    is still recorded with its Telegram file id, from which it can be fetched again.
    """
    focused = await _focused(services, telegram_id)
    if focused is None:
        raise ActionRefused("no_checklist")
    order, session = focused
    await authorise(services.db.reader, services, order, telegram_id)
    item = session.current_item
    if item is None:
        raise ActionRefused("choose_item")
    path = artifact_path(services.settings.artifacts_dir, order.id, item, file_unique_id, kind, file_name)
    saved = True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        await fetch(path)
    except Exception as exc:  # any failure of the download: keep the file id, report, go on
        saved = False
        log_event(
            log, "checklist.download_failed", logging.WARNING, order=order.id, item=item, error=str(exc)
        )
    new = False

    async def change(conn: aiosqlite.Connection, order: Order, session: ChecklistSession) -> None:
        nonlocal new
        artifact = NewArtifact(
            order.id, item, kind, file_id, file_unique_id, str(path) if saved else None, telegram_id
        )
        new = await store.add_artifact(conn, artifact, now)

    await _update(services, order.id, telegram_id, now, change)
    log_event(log, "checklist.file", order=order.id, item=item, kind=kind, new=new, saved=saved)
    return Attached(order.id, item, new, saved)


@dataclass(frozen=True)
class Submitted:
    order: Order
    missing: list[Missing]  # empty: accepted, the order moved to awaiting_client

    @property
    def accepted(self) -> bool:
        return not self.missing


async def submit_checklist(
    services: Services, order_id: str, *, actor_telegram_id: int, now: datetime
) -> Submitted:
    """Return the checklist: refused with everything missing until the completeness gate holds, then the order
    moves to awaiting_client."""
    async with services.db.transaction() as conn:
        order, session, actor = await _editable(conn, services, order_id, actor_telegram_id)
        missing = missing_for_submit(await store.answers(conn, order.id), is_ebike=order.is_ebike)
        if missing:
            await _render(conn, services, order, session, now, missing)
        else:
            await store.mark_submitted(conn, order.id, now)
            order = await apply_status(
                conn, services, order, Status.AWAITING_CLIENT, actor=actor.name, now=now
            )
            submitted = await store.get_session(conn, order.id)
            assert submitted is not None
            await _render(conn, services, order, submitted, now)
    services.wake_sender()
    log_event(log, "checklist.submit", order=order_id, accepted=not missing, missing=len(missing))
    return Submitted(order, missing)
