"""Hostile input, generated (hypothesis): texts and commands in Latin and Cyrillic with random arguments,
callback data of random characters and of valid shape with foreign ids, photos and documents where none is
expected, from strangers, from unknown groups and from the known people, through the real dispatcher; and, in
an office with real orders, checklists and signals, updates Telegram delivers again, stale buttons pressed
again, and managers' forged buttons on what is not theirs or not their role's.

Properties: no update fails (the errors router logs `update.failed` for any that does), every callback query
is answered, nothing a stranger, a replay or a forged button does changes the store's business tables, the
bot still answers afterwards. Examples per run: HYPOTHESIS_HOSTILE_EXAMPLES per test (default 10 batches of
up to 12 updates; 400 gives a few thousand updates, see README "Tests").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiogram.filters.callback_data import CallbackData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circles.sales_ops import sla
from domain.orders import CANCEL_REASONS, DECLINE_REASONS, STEP_ACTIONS
from keyboards.checklist import ANSWER_ACTIONS
from keyboards.signal_input import BUTTON_CODES
from tests.support.e2e_world import ANNA, BORIS, VERA, World, offered_order, start_world
from tests.support.harness import ADMIN_ID, LEAD_IDS, OWNER_ID, Harness, start_harness

EXAMPLES = int(os.environ.get("HYPOTHESIS_HOSTILE_EXAMPLES", "10"))
STRANGERS = (9001, 9002, 9003)
UNKNOWN_GROUP = -5005
KNOWN = (ADMIN_ID, OWNER_ID, *LEAD_IDS)
LEAD = LEAD_IDS[0]
BUSINESS_TABLES = (
    "orders",
    "order_status_events",
    "managers",
    "ai_assignments",
    "ai_signals",
    "ai_decisions",
    "crm_outbox",
    "checklist_sessions",
    "checklist_answers",
    "artifacts",
    "sla_timers",
    "order_checkins",
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
    kind: str  # text | photo | document | press | replay (update id) | repress (update id of a press)
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
        elif act.kind == "press":
            message_id = h.emulator.transcript(act.user)[-1].message_id
            queries.append(h.emulator.press_button(act.user, act.user, message_id, act.payload))
        elif act.kind == "replay":
            h.emulator.redeliver(int(act.payload))
        else:  # repress: the same button on the same old message, a new query
            old = h.emulator.sent_updates[int(act.payload)]["callback_query"]
            chat, message_id = old["message"]["chat"]["id"], old["message"]["message_id"]
            queries.append(h.emulator.press_button(old["from"]["id"], chat, message_id, old["data"]))
    await h.settle(timeout=30)
    return queries


def run_batch(
    loop: asyncio.AbstractEventLoop, h: Harness, batch: list[Act]
) -> tuple[dict[str, list[tuple[object, ...]]], list[str], dict[str, list[tuple[object, ...]]]]:
    """The business tables before, the callback queries of the batch, the tables after; no update failed
    (nothing logged at WARNING or above)."""
    failures = Failures()
    logging.getLogger().addHandler(failures)
    try:
        before = loop.run_until_complete(business_state(h))
        queries = loop.run_until_complete(feed(h, batch))
        after = loop.run_until_complete(business_state(h))
    finally:
        logging.getLogger().removeHandler(failures)
    assert failures.records == [], [(r.name, r.getMessage(), r.exc_info) for r in failures.records]
    return before, queries, after


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
    before, queries, after = run_batch(loop, h, batch)
    unanswered = [q for q in queries if q not in h.emulator.callback_answers]
    assert unanswered == []
    if all(act.user in STRANGERS for act in batch):
        assert after == before
    assert loop.run_until_complete(h.say(ADMIN_ID, "/help"))  # still answering


# --- the office: known managers with real orders, a finished checklist and signals -------------------------
#
# Anna works every order (Boris and Vera are off shift): the first is inspected and submitted, the second was
# accepted and then handed to Vera by a lead, the third is a live offer; the SLA sweep raised signals, and a
# lead resolved one. Boris owns nothing, so nothing he presses may change the store; Anna presses only what
# her role may not do or what is not hers, and the lead only approve / reject (admins' and the owner's).
# Every update of that story is delivered again with its own id, and every press of it is pressed again on
# its old message (a new query on a stale button): neither may change anything. Telegram redelivers only the
# unconfirmed tail of the updates, in order; any one update alone is a stronger test, and fair because the
# story never undoes itself (no setting is set twice).


@dataclass(frozen=True)
class Office:
    w: World
    story: tuple[int, ...]  # the update ids of the setup story, all already handled
    orders: tuple[str, ...]
    assignments: tuple[int, ...]  # ai_assignments ids
    handles: tuple[int, ...]  # order_handles ids
    signals: tuple[int, ...]
    timers: tuple[int, ...]  # sla_timers ids (check-in buttons carry them)
    not_annas: tuple[tuple[str, str], ...]  # (prefix, id) of buttons on what Anna does not own


async def open_office(w: World) -> Office:
    tg, h = w.tg, w.h
    assert "off shift" in await w.say(BORIS, "/shift off")
    assert "off shift" in await w.say(VERA, "/shift off")
    bike = {"brand": "Canyon", "model": "Grizl", "price_eur": 2400.0, "is_ebike": False}  # no battery report
    orders = (await offered_order(w, bike=bike), await offered_order(w), await offered_order(w))
    first, second = orders[:2]  # the third stays a live offer
    assert "is yours" in await w.press_data(ANNA, w.card(ANNA, first).message_id, _accept(w, ANNA, first))
    assert "Inspection" in await w.press(ANNA, "Start inspection")
    await w.fill_checklist(ANNA)
    assert "now waits for the client" in await w.press(ANNA, "Submit")
    assert "is yours" in await w.press_data(ANNA, w.card(ANNA, second).message_id, _accept(w, ANNA, second))
    assert "Manager vera" in await h.say(LEAD, f"/reassign {second} vera moved")
    h.clock.advance(timedelta(hours=5))  # past the accepted budget: the sweep raises signals
    await sla.sweep(h.services, h.clock.now())
    await h.settle()
    db = h.services.db
    signals = [r["id"] for r in await db.fetchall("SELECT id FROM ai_signals ORDER BY id")]
    assert signals, "the sweep raised no signal"
    await h.say(LEAD, f"/decide {signals[0]} resolve done")
    await w.crm_writes(first)  # the CRM has every write: no delivery is left to change the outbox later

    async def ids(sql: str) -> tuple[int, ...]:
        return tuple(int(r[0]) for r in await db.fetchall(sql))

    others_orders = await ids(f"{_HANDLES} WHERE o.assigned_manager_id IS NOT 'anna'")
    others_checkins = await ids(f"SELECT timer_id FROM order_checkins WHERE telegram_id != {ANNA}")
    not_annas = [
        *[("of", str(a)) for a in await ids("SELECT id FROM ai_assignments WHERE manager_id != 'anna'")],
        *[(p, str(h)) for h in others_orders for p in ("st", "cl")],
        *[("ci", str(t)) for t in others_checkins],
    ]
    return Office(
        w,
        story=tuple(sorted(tg.sent_updates)),
        orders=orders,
        assignments=await ids("SELECT id FROM ai_assignments"),
        handles=await ids(_HANDLES),
        signals=tuple(signals),
        timers=await ids("SELECT id FROM sla_timers"),
        not_annas=tuple(not_annas),
    )


_HANDLES = "SELECT h.id FROM order_handles h JOIN orders o ON o.id = h.order_id"


def _accept(w: World, user: int, order_id: str) -> str:
    return next(data for text, data in w.card(user, order_id).buttons if "Accept" in text)


# What the bot's own buttons carry after each prefix (the act codes and the field after the id).
_ACTS = {
    "of": ("acc", "dec", "why", "back"),
    "st": (*STEP_ACTIONS, "chk", "cxl", "cx", "ship", "back"),
    "cl": (*ANSWER_ACTIONS, "it", "pg", "sub"),
    "sg": tuple(BUTTON_CODES),
}
_EXTRAS = {
    "of": ("", *DECLINE_REASONS),
    "st": ("", *CANCEL_REASONS),
    "cl": ("0", "1", "7", "28", "40"),
    "sg": ("", "anna", "boris", "vera"),
}


@st.composite
def button_on(draw: st.DrawFn, targets: tuple[tuple[str, str], ...]) -> str:
    """Callback data our keyboards could have made, for one of `targets` (prefix, id)."""
    prefix, id_ = draw(st.sampled_from(targets))
    if prefix == "ci":
        return f"ci:{id_}"
    act, extra = draw(st.sampled_from(_ACTS[prefix])), draw(st.sampled_from(_EXTRAS[prefix]))
    return f"sg:{id_}:{act}:{extra}" if prefix == "sg" else f"{prefix}:{act}:{id_}:{extra}"


def office_acts(o: Office) -> st.SearchStrategy[Act]:
    presses = [u for u in o.story if "callback_query" in o.w.tg.sent_updates[u]]
    everything = (
        *[("of", str(a)) for a in o.assignments],
        *[(p, str(h)) for h in o.handles for p in ("st", "cl")],
        *[("sg", str(s)) for s in o.signals],
        *[("ci", str(t)) for t in o.timers],
    )
    ids = st.sampled_from((*o.signals, *o.handles, 0, -1, 10**9)).map(str)
    orders = st.sampled_from((*o.orders, "nope"))
    boris_texts = st.one_of(
        st.builds(
            "/decide {} {}".format, ids, st.sampled_from(("ack", "resolve", "approve", "reject", "escalate"))
        ),
        st.builds("/decide {} reassign {}".format, ids, st.sampled_from(("anna", "boris", "vera"))),
        st.builds("/signal {}".format, ids),
        st.builds(
            "/{} {} {}".format, st.sampled_from(("order", "reassign")), orders, st.sampled_from(("boris", ""))
        ),
        st.sampled_from(("/my", "/signals", "/log", "/managers", "/capacity anna 3", "/leave anna on")),
    )
    annas_forbidden = st.builds(
        "sg:{}:{}".format,
        st.sampled_from(o.signals),
        st.sampled_from(("ap:", "rj:", "ra:", "ra:anna", "ra:boris", "ra:vera")),
    )
    return st.one_of(
        st.builds(Act, st.just("replay"), st.just(0), st.sampled_from(o.story).map(str)),
        st.builds(Act, st.just("repress"), st.just(0), st.sampled_from(presses).map(str)),
        st.builds(Act, st.just("press"), st.just(BORIS), st.one_of(button_on(everything), callback_data)),
        st.builds(Act, st.just("text"), st.just(BORIS), boris_texts),
        st.builds(Act, st.just("photo"), st.just(BORIS), st.text(ALPHABET, max_size=20)),
        st.builds(Act, st.just("press"), st.just(ANNA), st.one_of(button_on(o.not_annas), annas_forbidden)),
        st.builds(
            Act,
            st.just("text"),
            st.just(ANNA),
            st.builds("/decide {} {}".format, ids, st.sampled_from(("approve", "reject", "reassign vera"))),
        ),
        st.builds(
            Act,
            st.just("press"),
            st.just(LEAD),
            st.builds("sg:{}:{}:".format, ids, st.sampled_from(("ap", "rj"))),
        ),
        st.builds(
            Act,
            st.just("text"),
            st.just(LEAD),
            st.builds("/decide {} {}".format, ids, st.sampled_from(("approve", "reject"))),
        ),
    )


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Office]]:
    loop = asyncio.new_event_loop()
    w = loop.run_until_complete(start_world(tmp_path_factory.mktemp("office")))
    try:
        yield loop, loop.run_until_complete(open_office(w))
    finally:
        loop.run_until_complete(w.h.stop())
        loop.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_replays_and_forged_buttons_of_known_people_change_nothing(
    office: tuple[asyncio.AbstractEventLoop, Office], data: st.DataObject
) -> None:
    loop, o = office
    batch = data.draw(st.lists(office_acts(o), min_size=1, max_size=12), label="batch")
    h = o.w.h
    before, queries, after = run_batch(loop, h, batch)
    assert [q for q in queries if q not in h.emulator.callback_answers] == []
    assert after == before
    assert loop.run_until_complete(h.say(ANNA, "/my"))  # still answering
