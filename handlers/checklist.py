"""The checklist in Telegram: its buttons (pass / fail / N/A, 📎 item, pages, Submit), notes typed while a
checklist is open (after 📎 or a fail, or as a reply to the checklist), and photos and documents sent while a
checklist is open, which become artifacts of the current item.
"""

from __future__ import annotations

from pathlib import Path

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from bot.roles import Caller
from bot.services import Services
from circles.sales_ops import checklist as use_cases
from circles.sales_ops.orders import ActionRefused, order_id_of_handle
from handlers.manager import refused, unpack_callback
from keyboards.checklist import ANSWER_ACTIONS, ChecklistCallback
from keyboards.orders import done_text, refusal_text
from storage.awaiting import Awaited
from storage.checklist import ArtifactKind


async def _press(services: Services, caller: Caller, data: ChecklistCallback) -> str | None:
    now = services.clock.now()
    order_id = await order_id_of_handle(services, data.h)
    who = caller.user_id
    if data.act in ANSWER_ACTIONS:
        await use_cases.answer_item(
            services, order_id, data.i, ANSWER_ACTIONS[data.act], actor_telegram_id=who, now=now
        )
        return done_text("answered", item=data.i)
    if data.act == "it":
        await use_cases.select_item(services, order_id, data.i, actor_telegram_id=who, now=now)
        return done_text("item_chosen", item=data.i)
    if data.act == "pg":
        await use_cases.show_page(services, order_id, data.i, actor_telegram_id=who, now=now)
        return None
    if data.act == "sub":
        result = await use_cases.submit_checklist(services, order_id, actor_telegram_id=who, now=now)
        if result.accepted:
            return done_text("submitted", order=order_id)
        return done_text("submit_refused", count=len(result.missing))
    raise ActionRefused("stale_button")


async def on_checklist_button(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    data = unpack_callback(ChecklistCallback, callback.data)
    if data is None:
        await callback.answer(refusal_text("stale_button"), show_alert=True)
        return
    try:
        text = await _press(services, caller, data)
    except ActionRefused as exc:
        await callback.answer(refused(exc), show_alert=True)
        return
    await callback.answer(text, show_alert=data.act == "sub")


async def fills_checklist(message: Message, awaited: Awaited | None = None) -> bool:
    """Filter: the sender's next message goes to the checklist they have open (a note or a file)."""
    return awaited is not None and awaited.kind == "checklist"


async def on_note(message: Message, services: Services, caller: Caller) -> None:
    try:
        item = await use_cases.add_note(
            services,
            telegram_id=caller.user_id,
            text=message.text or "",
            is_reply=message.reply_to_message is not None,
            now=services.clock.now(),
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    await message.answer(
        done_text("note_saved", item=item) if item is not None else refusal_text("no_note_target")
    )


async def on_file(message: Message, services: Services, caller: Caller, bot: Bot) -> None:
    kind: ArtifactKind
    if message.photo:
        photo = message.photo[-1]  # the largest size
        kind, file_id, unique_id, name = "photo", photo.file_id, photo.file_unique_id, None
    elif message.document is not None:
        doc = message.document
        kind, file_id, unique_id, name = "document", doc.file_id, doc.file_unique_id, doc.file_name
    else:
        return

    async def fetch(path: Path) -> None:
        await bot.download(file_id, destination=path)

    try:
        attached = await use_cases.attach_file(
            services,
            telegram_id=caller.user_id,
            kind=kind,
            file_id=file_id,
            file_unique_id=unique_id,
            file_name=name,
            fetch=fetch,
            now=services.clock.now(),
        )
    except ActionRefused as exc:
        await message.answer(refused(exc))
        return
    code = "file_saved" if attached.saved else "file_kept_id"
    await message.answer(done_text(code if attached.new else "file_known", item=attached.item))


def router() -> Router:
    r = Router(name="checklist")
    r.callback_query.register(on_checklist_button, F.data.startswith(f"{ChecklistCallback.__prefix__}:"))
    r.message.register(on_file, F.chat.type == "private", F.photo | F.document)
    r.message.register(on_note, F.chat.type == "private", F.text, ~F.text.startswith("/"), fills_checklist)
    return r
