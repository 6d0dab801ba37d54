"""Texts and keyboards every audience shares: each role's commands, the greeting, the language choice.

`ROLE_COMMANDS` is the one list of commands per role: /start and /help print it and the bot registers it with
setMyCommands for each person's chat. Add a command for your audience there: a `(name, __("description"))`.
"""

from __future__ import annotations

from html import escape

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n.lazy_proxy import LazyProxy

from bot.i18n import LANGUAGES, _, __
from bot.roles import Caller, Role

# A language is offered in its own name, the same in every locale, so these are not translated.
LANGUAGE_NAMES = {"ru": "Русский", "en": "English"}

Command = tuple[str, LazyProxy]

COMMON_COMMANDS: list[Command] = [
    ("start", __("greeting and what you can do here")),
    ("help", __("the commands you can use")),
    ("lang", __("language: Russian or English")),
    ("cancel", __("stop what you are entering")),
]
# Commands for someone the bot does not know yet: a manager links their account with a code from an admin.
STRANGER_COMMANDS: list[Command] = [
    ("start", __("what this bot is")),
    ("link", __("link your account with a code from an admin")),
]
ROLE_COMMANDS: dict[Role, list[Command]] = {
    Role.MANAGER: [
        ("my", __("your open orders and their next steps")),
        ("shift", __("on | off: take new orders or not")),
        ("me", __("your scorecard for the last 7 days")),
    ],
    Role.LEAD: [
        ("signals", __("open signals")),
        ("order", __("ID: an order, its history and why it went to its manager")),
        ("scorecard", __("[MANAGER]: managers' scorecards and why SLAs failed")),
    ],
    Role.OWNER: [
        ("kpi", __("the KPIs now")),
        ("digest", __("the morning digest now")),
        ("margin", __("[ORDER | days N]: margins, leaks and their causes")),
    ],
    Role.ADMIN: [
        ("signals", __("open signals, filtered")),
        ("signal", __("ID: one signal with its decisions")),
        ("decide", __("ID ACTION [comment]: act on a signal")),
        ("log", __("the decision log")),
        ("managers", __("managers, their load and shifts")),
        ("capacity", __("MANAGER N: how many open orders a manager may hold")),
        ("leave", __("MANAGER on | off: a manager's leave")),
        ("postmortems", __("postmortems of critical and high signals")),
        ("order", __("ID: an order, its history and why it went to its manager")),
        ("kpi", __("the KPIs now")),
        ("digest", __("the morning digest now")),
        ("margin", __("[ORDER | days N]: margins, leaks and their causes")),
        ("scorecard", __("[MANAGER]: managers' scorecards and why SLAs failed")),
        ("link", __("MANAGER_ID: a one-time code to link a manager's Telegram")),
    ],
}
ROLE_ORDER = (Role.ADMIN, Role.OWNER, Role.LEAD, Role.MANAGER)


def commands_for(roles: frozenset[Role]) -> list[tuple[str, str]]:
    """The commands a person with these roles can use, each once, described in the current locale."""
    seen: set[str] = set()
    result: list[tuple[str, str]] = []
    groups = [ROLE_COMMANDS[role] for role in ROLE_ORDER if role in roles] if roles else [STRANGER_COMMANDS]
    for command, description in [*(COMMON_COMMANDS if roles else []), *(c for g in groups for c in g)]:
        if command not in seen:
            seen.add(command)
            result.append((command, str(description)))
    return result


def _role_intro(role: Role) -> str:
    intros = {
        Role.ADMIN: _("As an admin you work the signal and decision log and look after the managers."),
        Role.OWNER: _("As the owner you get the morning digest with the KPIs and the weekly retrospective."),
        Role.LEAD: _(
            "As a head of sales you get escalations in the leads chat, with Acknowledge, Resolve and "
            "Reassign buttons."
        ),
        Role.MANAGER: _(
            "As a manager you get new orders here as cards with Accept and Decline, move them forward and "
            "fill in the inspection checklist with the buttons."
        ),
    }
    return intros[role]


def greeting_text(caller: Caller, first_name: str | None) -> str:
    """/start: hello, what each of the caller's roles does here, and their commands."""
    lines = [_("Hello, {name}! This is the BikeWerk operations bot.").format(name=escape(first_name or ""))]
    lines += [_role_intro(role) for role in ROLE_ORDER if role in caller.roles]
    lines += ["", help_text(caller)]
    return "\n".join(lines)


def help_text(caller: Caller) -> str:
    commands = "\n".join(f"/{command} — {escape(text)}" for command, text in commands_for(caller.roles))
    return _("Your commands:") + "\n" + commands


def stranger_text() -> str:
    return _(
        "Sorry, this bot is only for the BikeWerk team. If you are a manager, ask an admin for a link code "
        "and send /link CODE."
    )


class LangCallback(CallbackData, prefix="lang"):
    """A language button: the two-letter code only."""

    code: str


def language_keyboard(current: str) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            text=("✓ " if code == current else "") + LANGUAGE_NAMES[code],
            callback_data=LangCallback(code=code).pack(),
        )
        for code in LANGUAGES
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])
