"""Admin commands of the signal and decision backbone: /signals (filtered, paged), /signal ID,
/decide ID ACTION [comment], /log (the decision log, paged), /managers, /postmortems, and the answers of the
postmortem dialogue.

Every wrong id, unknown action, missing right or malformed argument gets one line saying what is wrong and
what is expected; nothing changes then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from pydantic import ValidationError

from backbone import postmortems
from backbone.commands import act
from backbone.decisions import decision_page
from backbone.views import signal_page, signal_with_history
from bot.roles import Caller
from bot.services import Services
from circles.sales_ops.dispatcher import managers_overview
from domain.signals import SignalFilter
from handlers.signals import actor_of_caller
from keyboards import signals as cards
from keyboards.managers import managers_table
from keyboards.signal_input import ParseError, parse_decide, parse_signal_filter, parse_signal_id
from storage.awaiting import Awaited

PER_PAGE = 10


def _staff(caller: Caller) -> bool:
    return caller.is_lead or caller.is_admin or caller.is_owner


def _pages(total: int) -> int:
    return max(1, -(-total // PER_PAGE))


# A paged list: (services, page) -> (text, pager keyboard).
PageView = Callable[[Services, int], Awaitable[tuple[str, InlineKeyboardMarkup | None]]]


async def _first_page(
    message: Message, services: Services, caller: Caller, command: str, view: PageView
) -> None:
    if not _staff(caller):
        await message.answer(cards.staff_only_text(command))
        return
    text, keyboard = await view(services, 0)
    await message.answer(text, reply_markup=keyboard)


async def _turn_page(
    callback: CallbackQuery, services: Services, caller: Caller, command: str, factory: Any, view: PageView
) -> None:
    """A pager button of a list whose callback data carries only the page number `p`."""
    if not _staff(caller):
        await callback.answer(cards.staff_only_text(command), show_alert=True)
        return
    data = _unpack(factory, callback.data)
    if data is None or data.p < 0:
        await callback.answer(cards.parse_error_text(ParseError("bad_callback")), show_alert=True)
        return
    text, keyboard = await view(services, data.p)
    await _show_page(callback, text, keyboard)


async def _show_page(callback: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=keyboard)


# --- /signals -----------------------------------------------------------------------------------------------


async def _signals_view(
    services: Services, where: SignalFilter, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    signals, total = await signal_page(services, where, limit=PER_PAGE, offset=page * PER_PAGE)
    pages = _pages(total)
    text = cards.signals_list(
        signals, where=where, total=total, page=page, pages=pages, tz=services.settings.tz
    )
    return text, cards.pager(page, pages, lambda p: cards.signals_page_data(p, where))


async def cmd_signals(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    if not _staff(caller):
        await message.answer(cards.staff_only_text("/signals"))
        return
    where = parse_signal_filter(command.args)
    if isinstance(where, ParseError):
        await message.answer(cards.parse_error_text(where))
        return
    text, keyboard = await _signals_view(services, where, 0)
    await message.answer(text, reply_markup=keyboard)


def _page_filter(data: cards.SignalsPage) -> SignalFilter | ParseError:
    # The filter comes back from callback data: validate it exactly like typed input.
    words = [data.sev or "", data.c or "", f"order={data.o}" if data.o else ""]
    return parse_signal_filter(" ".join(w for w in words if w))


async def on_signals_page(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    if not _staff(caller):
        await callback.answer(cards.staff_only_text("/signals"), show_alert=True)
        return
    data = _unpack(cards.SignalsPage, callback.data)
    where = _page_filter(data) if data is not None else ParseError("bad_callback")
    if data is None or isinstance(where, ParseError) or data.p < 0:
        await callback.answer(cards.parse_error_text(ParseError("bad_callback")), show_alert=True)
        return
    text, keyboard = await _signals_view(services, where, data.p)
    await _show_page(callback, text, keyboard)


# --- /signal ID and /decide ---------------------------------------------------------------------------------


async def cmd_signal(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    signal_id = parse_signal_id(command.args)
    if isinstance(signal_id, ParseError):
        await message.answer(cards.signal_usage(signal_id))
        return
    found = await signal_with_history(services, signal_id)
    if found is None:
        await message.answer(cards.no_signal(signal_id))
        return
    signal, decisions, names = found
    if not _staff(caller) and signal.owner_person != caller.user_id:
        await message.answer(cards.staff_only_text("/signal"))
        return
    tz = services.settings.tz
    text = cards.signal_details(signal, decisions, names=names, tz=tz)
    await message.answer(text, reply_markup=cards.ping_keyboard(signal))


async def cmd_decide(message: Message, command: CommandObject, services: Services, caller: Caller) -> None:
    parsed = parse_decide(command.args)
    if isinstance(parsed, ParseError):
        await message.answer(cards.parse_error_text(parsed))
        return
    outcome = await act(services, parsed, actor_of_caller(caller), services.clock.now())
    if not outcome.ok or outcome.signal is None:
        await message.answer(cards.refusal_text(outcome.refusal or "not_found", parsed))
        return
    text = cards.done_text(outcome.signal, parsed, services.settings.tz)
    text += cards.notes_text(outcome.notes)
    await message.answer(text)


# --- /log ---------------------------------------------------------------------------------------------------


async def _log_view(services: Services, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    decisions, total, names = await decision_page(services, limit=PER_PAGE, offset=page * PER_PAGE)
    pages = _pages(total)
    text = cards.decision_log(
        decisions, total=total, page=page, pages=pages, names=names, tz=services.settings.tz
    )
    return text, cards.pager(page, pages, lambda p: cards.LogPage(p=p).pack())


async def cmd_log(message: Message, services: Services, caller: Caller) -> None:
    await _first_page(message, services, caller, "/log", _log_view)


async def on_log_page(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    await _turn_page(callback, services, caller, "/log", cards.LogPage, _log_view)


# --- /managers ----------------------------------------------------------------------------------------------


async def cmd_managers(message: Message, services: Services, caller: Caller) -> None:
    if not _staff(caller):
        await message.answer(cards.staff_only_text("/managers"))
        return
    rows = await managers_overview(services, services.clock.now())
    await message.answer(managers_table(rows))


# --- /postmortems and the dialogue --------------------------------------------------------------------------


async def _postmortems_view(services: Services, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    items, total = await postmortems.list_page(services, page=page, per_page=PER_PAGE)
    pages = _pages(total)
    names = await postmortems.author_names(services, items)
    text = cards.postmortem_list(
        items, total=total, page=page, pages=pages, names=names, tz=services.settings.tz
    )
    return text, cards.pager(page, pages, lambda p: cards.PostmortemsPage(p=p).pack())


async def cmd_postmortems(message: Message, services: Services, caller: Caller) -> None:
    await _first_page(message, services, caller, "/postmortems", _postmortems_view)


async def on_postmortems_page(callback: CallbackQuery, services: Services, caller: Caller) -> None:
    await _turn_page(callback, services, caller, "/postmortems", cards.PostmortemsPage, _postmortems_view)


async def owes_postmortem(message: Message, awaited: Awaited | None = None) -> bool:
    """Filter: the sender's next message answers a postmortem question (asked last, not put off)."""
    return awaited is not None and awaited.kind == "postmortem"


async def on_postmortem_answer(message: Message, services: Services, awaited: Awaited) -> None:
    assert message.from_user is not None and message.text is not None
    result = await postmortems.answer_step(
        services, message.from_user.id, message.text, services.clock.now(), awaited.postmortem_id
    )
    if result is None or result.signal is None:
        return
    await message.answer(cards.postmortem_reply(result.signal, result.next_step, result.refusal))


# --- wiring -------------------------------------------------------------------------------------------------


def _unpack(factory: Any, data: str | None) -> Any:
    """Callback data of `factory`, or None when it does not parse (forged or from an older version)."""
    try:
        return factory.unpack(data or "")
    except (ValueError, TypeError, ValidationError):
        return None


def router() -> Router:
    r = Router(name="admin")
    r.message.register(cmd_signals, Command("signals"))
    r.message.register(cmd_signal, Command("signal"))
    r.message.register(cmd_decide, Command("decide"))
    r.message.register(cmd_log, Command("log"))
    r.message.register(cmd_managers, Command("managers"))
    r.message.register(cmd_postmortems, Command("postmortems"))
    r.message.register(
        on_postmortem_answer, F.chat.type == "private", F.text, ~F.text.startswith("/"), owes_postmortem
    )
    r.callback_query.register(on_signals_page, F.data.startswith(f"{cards.SignalsPage.__prefix__}:"))
    r.callback_query.register(on_log_page, F.data.startswith(f"{cards.LogPage.__prefix__}:"))
    r.callback_query.register(on_postmortems_page, F.data.startswith(f"{cards.PostmortemsPage.__prefix__}:"))
    return r
