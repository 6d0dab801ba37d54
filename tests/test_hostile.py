"""Hostile input, generated (hypothesis): texts and commands in Latin and Cyrillic with random arguments,
callback data of random characters and of valid shape with foreign ids, photos and documents where none is
expected, from strangers, from unknown groups and from the known people, through the real dispatcher.

Properties: no update fails (the errors router logs `update.failed` for any that does), every callback query
is answered, nothing a stranger does changes the store's business tables, the bot still answers afterwards.
Examples per run: HYPOTHESIS_HOSTILE_EXAMPLES (default 10 batches of up to 12 updates; e.g. 400 for a few
thousand updates).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiogram.filters.callback_data import CallbackData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import ADMIN_ID, LEAD_IDS, OWNER_ID, Harness, start_harness

EXAMPLES = int(os.environ.get("HYPOTHESIS_HOSTILE_EXAMPLES", "10"))
STRANGERS = (9001, 9002, 9003)
UNKNOWN_GROUP = -5005
KNOWN = (ADMIN_ID, OWNER_ID, *LEAD_IDS)
BUSINESS_TABLES = (
    "orders",
    "managers",
    "ai_assignments",
    "ai_signals",
    "ai_decisions",
    "crm_outbox",
    "checklist_answers",
    "sla_timers",
    "link_codes",
)
COMMANDS = (
    "start",
    "help",
    "lang",
    "link",
    "cancel",
    "admin",
    "signals",
    "decide",
    "orders",
    "digest",
    "kpi",
)
ALPHABET = st.characters(
    codec="utf-8",
    categories=("L", "N", "P", "Zs", "S"),
    include_characters="абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ:/@_-",
)


def _prefixes() -> list[str]:
    """Every callback data prefix of the bot (the handlers, imported by the harness, load the keyboards)."""
    found: list[str] = []
    pending: list[type[CallbackData]] = list(CallbackData.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        prefix = getattr(cls, "__prefix__", None)
        if isinstance(prefix, str):
            found.append(prefix)
    return sorted(set(found)) or ["x"]


PREFIXES = _prefixes()


@dataclass(frozen=True)
class Act:
    kind: str  # text | photo | document | press
    user: int
    payload: str
    in_group: bool = False


texts = st.one_of(
    st.text(ALPHABET, min_size=1, max_size=80).filter(str.strip),
    st.builds(
        lambda c, args: f"/{c} {args}".strip(),
        st.sampled_from(COMMANDS),
        st.text(ALPHABET, max_size=30),
    ),
)
callback_data = st.one_of(
    st.text(ALPHABET, min_size=1, max_size=64),
    st.builds(
        lambda p, parts: ":".join([p, *parts])[:64],
        st.sampled_from(PREFIXES),
        st.lists(
            st.one_of(st.integers(-(10**12), 10**12).map(str), st.text(ALPHABET, max_size=8)), max_size=4
        ),
    ),
)
people = st.sampled_from((*STRANGERS, *KNOWN))
acts = st.one_of(
    st.builds(Act, st.just("text"), people, texts, st.booleans()),
    st.builds(Act, st.just("photo"), people, st.text(ALPHABET, max_size=20)),
    st.builds(Act, st.just("document"), people, st.text(ALPHABET, max_size=20)),
    st.builds(Act, st.just("press"), people, callback_data),
)


class Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "update.failed" or record.name.startswith("aiogram"):
            self.records.append(record)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Harness]]:
    loop = asyncio.new_event_loop()
    h = loop.run_until_complete(start_harness(tmp_path_factory.mktemp("hostile")))
    for stranger in STRANGERS:
        h.emulator.add_user(stranger, "Stranger", language_code="en")
    h.emulator.add_group(UNKNOWN_GROUP, "Somebody's group")
    for person in (*STRANGERS, *KNOWN):  # a bot message in each chat, to press buttons under
        loop.run_until_complete(h.say(person, "/start"))
    try:
        yield loop, h
    finally:
        loop.run_until_complete(h.stop())
        loop.close()


async def business_state(h: Harness) -> dict[str, list[tuple[object, ...]]]:
    return {
        t: [tuple(r) for r in await h.services.db.fetchall(f"SELECT * FROM {t} ORDER BY 1")]
        for t in BUSINESS_TABLES
    }


async def feed(h: Harness, batch: list[Act]) -> list[str]:
    queries: list[str] = []
    for act in batch:
        group = UNKNOWN_GROUP if act.in_group and act.user in STRANGERS else None
        if act.kind == "text":
            h.emulator.send_text(act.user, act.payload, chat_id=group)
        elif act.kind == "photo":
            h.emulator.send_photo(act.user, b"\xff\xd8\xff not really a jpeg", caption=act.payload or None)
        elif act.kind == "document":
            h.emulator.send_document(act.user, b"%PDF-1.4 junk", "junk.pdf", caption=act.payload or None)
        else:
            message_id = h.emulator.transcript(act.user)[-1].message_id
            queries.append(h.emulator.press_button(act.user, act.user, message_id, act.payload))
    await h.settle(timeout=30)
    return queries


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(acts, min_size=1, max_size=12))
def test_hostile_updates_break_nothing(
    world: tuple[asyncio.AbstractEventLoop, Harness], batch: list[Act]
) -> None:
    loop, h = world
    failures = Failures()
    logging.getLogger().addHandler(failures)
    try:
        before = loop.run_until_complete(business_state(h))
        queries = loop.run_until_complete(feed(h, batch))
        after = loop.run_until_complete(business_state(h))
    finally:
        logging.getLogger().removeHandler(failures)
    assert failures.records == [], [(r.name, r.getMessage(), r.exc_info) for r in failures.records]
    unanswered = [q for q in queries if q not in h.emulator.callback_answers]
    assert unanswered == []
    if all(act.user in STRANGERS for act in batch):
        assert after == before
    assert loop.run_until_complete(h.say(ADMIN_ID, "/help"))  # still answering
