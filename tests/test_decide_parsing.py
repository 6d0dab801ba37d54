"""Property tests over the parsing of `/decide` arguments, `/signals` filters and signal button data: no input
crashes, every input is either a well-formed command or a typed error, and what our keyboards pack parses
back to the same command. A sample of generated inputs is then driven through the real handlers against the
Bot API emulator: each one gets exactly one answer and nothing in the store changes."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.i18n import in_locale
from domain.signals import MAX_COMMENT, Circle, DecideAction, SignalCommand, SignalFilter
from keyboards.signal_input import (
    BUTTON_CODES,
    DECIDE_WORDS,
    ParseError,
    parse_decide,
    parse_signal_callback,
    parse_signal_filter,
    parse_signal_id,
)
from keyboards.signals import SignalCallback, no_buttons, parse_error_text
from tests.support.admin_bot import running_bot
from tests.support.sla_world import ADMIN, LEADS_CHAT

T = TypeVar("T")

# What a Telegram client can send: printable text of any script, no control characters.
typed = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80)
ids = st.one_of(st.integers(min_value=-5, max_value=2**64), st.just("#7"), st.just("07"), st.just("1e3"))
words = st.one_of(st.sampled_from([*DECIDE_WORDS, "ACK", "Resolve", "snooze", "", "approve!"]), typed)
managers = st.one_of(st.just("M1"), st.from_regex(r"[A-Za-z0-9_.\-]{1,40}", fullmatch=True), typed)
decide_args = st.one_of(
    typed,
    st.builds(lambda i, w, m, c: f"{i} {w} {m} {c}", ids, words, managers, typed),
    st.builds(lambda i, w: f"{i} {w}", ids, words),
    st.builds(lambda i, c: f"{i} ack {c}", ids, st.text(min_size=MAX_COMMENT - 2, max_size=MAX_COMMENT + 2)),
)
callback_data = st.one_of(
    typed,
    st.builds(
        lambda i, a, m: f"sg:{i}:{a}:{m}",
        ids,
        st.one_of(st.sampled_from(sorted(BUTTON_CODES)), typed),
        st.one_of(st.just(""), managers),
    ),
    st.builds(lambda *parts: ":".join(parts), *(st.text(max_size=6) for _ in range(4))),
)


@given(decide_args)
def test_decide_parsing_never_crashes_and_says_what_is_wrong(args: str) -> None:
    result = parse_decide(args)
    if isinstance(result, ParseError):
        for lang in ("en", "ru"):
            with in_locale(lang):
                text = parse_error_text(result)
            assert text and "\n" not in text
        return
    assert isinstance(result, SignalCommand)
    assert result.signal_id > 0 and result.action.value in DECIDE_WORDS
    assert len(result.comment) <= MAX_COMMENT and result.comment == result.comment.strip()
    assert (result.manager_id is not None) == (result.action is DecideAction.REASSIGN)


@given(ids, st.sampled_from(DECIDE_WORDS), st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True), typed)
def test_well_formed_decide_commands_parse(
    signal_id: int | str, word: str, manager: str, comment: str
) -> None:
    comment = comment.strip()[:MAX_COMMENT]
    args = f"{signal_id} {word} {manager if word == 'reassign' else ''} {comment}"
    result = parse_decide(args)
    valid_id = (isinstance(signal_id, int) and 0 < signal_id < 2**63) or signal_id in ("#7", "07")
    if not valid_id:
        assert isinstance(result, ParseError) and result.code == "bad_id"
        return
    assert isinstance(result, SignalCommand), result
    assert result.action.value == word and result.comment == comment
    assert result.manager_id == (manager if word == "reassign" else None)


@given(callback_data)
def test_callback_parsing_never_crashes(data: str) -> None:
    result = parse_signal_callback(data)
    if isinstance(result, ParseError):
        assert result.code == "bad_callback"
        with in_locale("en"):
            assert parse_error_text(result)
    else:
        assert result.signal_id > 0 and result.comment == ""


@given(
    st.integers(min_value=1, max_value=10**12),
    st.sampled_from(sorted(BUTTON_CODES)),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True)),
)
def test_what_the_keyboard_packs_parses_back(signal_id: int, code: str, manager: str | None) -> None:
    manager = manager if BUTTON_CODES[code] is DecideAction.REASSIGN else None
    packed = SignalCallback(id=signal_id, a=code, m=manager).pack()
    assert len(packed.encode()) <= 64
    assert parse_signal_callback(packed) == SignalCommand(signal_id, BUTTON_CODES[code], manager)


@given(typed)
def test_filter_and_id_parsing_never_crash(args: str) -> None:
    where = parse_signal_filter(args)
    assert isinstance(where, SignalFilter | ParseError)
    if isinstance(where, SignalFilter) and where.circle is not None:
        assert where.circle in set(Circle)
    signal_id = parse_signal_id(args)
    assert isinstance(signal_id, int | ParseError)


def sample(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` inputs drawn by hypothesis (reproducibly), to drive through the running bot."""
    drawn: list[T] = []

    @settings(max_examples=count, database=None, derandomize=True)
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn


async def test_generated_inputs_through_the_real_handlers_each_get_one_answer(tmp_path: Path) -> None:
    commands = [f"/decide {args}".strip() for args in sample(decide_args, 20)]
    presses = [data for data in sample(callback_data, 20) if 0 < len(data.encode()) <= 64]
    async with running_bot(tmp_path, unlimited=True) as h:
        before = await h.world.snapshot()
        for text in commands:
            reply = await h.say(ADMIN, text)
            assert reply and "\n" not in reply, (text, reply)
        # A message in the leads chat to press forged buttons under.
        anchor = await h.app.bot.send_message(LEADS_CHAT, "anchor", reply_markup=no_buttons())
        for data in presses:
            answer = await h.press_data(ADMIN, LEADS_CHAT, anchor.message_id, data)
            assert answer["text"], (data, answer)
        assert h.tg.unanswered_callbacks() == []
        after = await h.world.snapshot()
        assert (
            after["ai_signals"] == before["ai_signals"] == []
            and after["ai_decisions"] == before["ai_decisions"]
        )
