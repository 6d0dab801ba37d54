"""The checklist message: one message per order, edited in place, one page per checklist group, with pass /
fail / N/A buttons per item, a 📎 button choosing the item that photos, documents and notes go to, page
navigation and Submit. Item texts come from domain.checklist in the reader's language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData

from bot.i18n import _
from domain.checklist import GROUPS, ITEMS, ItemAnswer, Missing
from domain.models import Order
from keyboards.orders import Markup, button, keyboard, missing_text, when

ANSWER_ACTIONS = {"p": "pass", "f": "fail", "n": "na"}
_ANSWER_ICON = {"pass": "✅", "fail": "❌", "na": "➖"}
_NOTE_PREVIEW = 60


class ChecklistCallback(CallbackData, prefix="cl"):
    """act: p / f / n answer item `i`; it makes item `i` the one files and notes go to; pg shows group `i`;
    sub submits. `h` is the order's handle (storage.orders.order_handle)."""

    act: str
    h: int
    i: int = 0


@dataclass(frozen=True)
class ChecklistView:
    order: Order
    handle: int
    lang: str
    tz: ZoneInfo
    answers: Mapping[int, ItemAnswer]
    files: Mapping[int, int]  # files attached per item, answered or not
    page: int  # checklist group number, 1..len(GROUPS)
    current_item: int | None
    note_item: int | None
    missing: Sequence[Missing] = ()  # what the last refused submit named
    submitted_at: datetime | None = None


def page_count() -> int:
    return len(GROUPS)


def _item_text(number: int, lang: str) -> str:
    item = ITEMS[number]
    return item.text_ru if lang == "ru" else item.text_en


def _item_line(view: ChecklistView, number: int) -> str:
    answer = view.answers.get(number)
    icon = _ANSWER_ICON[answer.answer] if answer is not None else "⬜"
    marker = "👉 " if number == view.current_item else ""
    line = f"{marker}{icon} <b>{number}.</b> {escape(_item_text(number, view.lang))}"
    if ITEMS[number].optional:
        line += " " + _("(optional)")
    extras = []
    if answer is not None and answer.note:
        note = answer.note if len(answer.note) <= _NOTE_PREVIEW else answer.note[:_NOTE_PREVIEW] + "…"
        extras.append("📝 " + escape(note))
    if view.files.get(number):
        extras.append(_("📎 {count}").format(count=view.files[number]))
    return line + ("\n      " + " · ".join(extras) if extras else "")


def checklist_message(view: ChecklistView) -> tuple[str, Markup | None]:
    group = GROUPS[view.page - 1]
    title = group.title_ru if view.lang == "ru" else group.title_en
    lines = [
        _("<b>Checklist · order {order}</b>").format(order=escape(view.order.id)),
        _("Answered {answered}/{total} · page {page}/{pages}: {title}").format(
            answered=len(view.answers),
            total=len(ITEMS),
            page=view.page,
            pages=page_count(),
            title=escape(title),
        ),
        "",
        *(_item_line(view, item.number) for item in group.items),
    ]
    if view.submitted_at is not None:
        lines += [
            "",
            _("✅ Submitted {at}. The order now waits for the client.").format(
                at=when(view.submitted_at, view.tz)
            ),
        ]
        return "\n".join(lines), None
    lines.append("")
    if view.note_item is not None:
        lines.append(_("✏️ Send the note for item {item} as your next message.").format(item=view.note_item))
    if view.current_item is not None:
        lines.append(
            _(
                "📎 Photos and documents you send now go to item {item}; reply to this message to add a note."
            ).format(item=view.current_item)
        )
    else:
        lines.append(_("Tap 📎 next to an item, then send its photos or documents."))
    if view.missing:
        lines += ["", _("⚠️ Not ready to submit."), missing_text(view.missing)]
    return "\n".join(lines), _keyboard(view)


def _keyboard(view: ChecklistView) -> Markup | None:
    handle = view.handle
    rows = []
    for item in GROUPS[view.page - 1].items:
        number = item.number
        row = [
            button(f"✅ {number}", ChecklistCallback(act="p", h=handle, i=number)),
            button(f"❌ {number}", ChecklistCallback(act="f", h=handle, i=number)),
        ]
        if item.allows_na(is_ebike=view.order.is_ebike):
            row.append(button(f"N/A {number}", ChecklistCallback(act="n", h=handle, i=number)))
        row.append(button(f"📎 {number}", ChecklistCallback(act="it", h=handle, i=number)))
        rows.append(row)
    nav = []
    if view.page > 1:
        nav.append(button(_("« Back"), ChecklistCallback(act="pg", h=handle, i=view.page - 1)))
    if view.page < page_count():
        nav.append(button(_("Next »"), ChecklistCallback(act="pg", h=handle, i=view.page + 1)))
    rows += [nav, [button(_("📤 Submit"), ChecklistCallback(act="sub", h=handle))]]
    return keyboard(rows)
