"""The demo's simulated people: they use Telegram only through the Bot API emulator, as a person would.

Each person watches their chats in the emulator, notices new and edited bot messages, and answers with the
buttons those messages carry (or with text and photos) after a delay that fits their habit: managers accept,
decline or ignore order cards, start inspections, fill the checklist page by page with photos, and move orders
on to delivery; a lead acknowledges pings; an admin answers with `/decide` and the postmortem questions.

People read the buttons' callback data (ids and short action codes, see keyboards/), not their texts, so the
demo works in any language the bot speaks. Delays are in simulated minutes on the working calendar: nobody
works at night. Everything they see and do goes to the transcript.
"""

from __future__ import annotations

import heapq
import random
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from domain.calendar import WorkingCalendar
from domain.checklist import BATTERY_REPORT_ITEM, GROUPS, ITEMS
from testkit.emulator import BotAPIEmulator, BotMessage

Role = Literal["manager", "lead", "admin", "owner"]
Say = Callable[[datetime, str], None]

_POSTMORTEM_STEP = re.compile(r"\b([1-4])/4\b")
_POSTMORTEM_ANSWERS = {
    "1": "The card went to a manager who did not answer, twice in a row.",
    "2": "The lead made sure a manager took the order.",
    "3": "The order was accepted within minutes after that.",
    "4": "Managers on leave or busy set /shift off, so cards skip them.",
}
# A crisis's postmortem (the lead resolves the crisis a manager raised by hand, issue 12).
_CRISIS_ANSWERS = {
    "1": "The CRM's database ran out of disk space; the API answered with errors.",
    "2": "The hosting restarted the database on a bigger disk; managers kept working in the bot meanwhile.",
    "3": "New orders were late by about an hour; the bot's writes waited in the outbox and went through.",
    "4": "A disk-space alert at 80 % on the CRM's database, and the crisis playbook checked monthly.",
}
_CRISIS_RESOLUTION = "resolve the CRM answers again after the hosting restarted its database"
_CAUGHT_UP = "resolve the team caught up with the waiting orders"
_PHOTO_ITEMS = frozenset({1, BATTERY_REPORT_ITEM, 28})  # photos for 1 and 28; the battery report on e-bikes


def tiny_png(seed: int) -> bytes:
    """A valid 4x4 PNG whose colour depends on `seed`: a stand-in for a photo of a bike."""
    shade = bytes(((seed * 53) % 256, (seed * 97) % 256, (seed * 193) % 256))
    raw = b"".join(b"\x00" + shade * 4 for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Habit:
    """How a manager works, as medians in working minutes (lognormal around them)."""

    name: str
    answer: float  # until an order card is answered
    ignore_share: float  # cards never answered
    decline_share: float
    step: float  # until the next step of an order they hold (start inspection, client reply, shipping)
    heed_share: float  # "still on it?" and reminders acted on


HABITS: dict[str, Habit] = {
    habit.name: habit
    for habit in (
        Habit("fast", 2, 0.0, 0.0, 40, 1.0),
        Habit("steady", 5, 0.0, 0.05, 70, 0.9),
        Habit("slow", 11, 0.0, 0.0, 140, 0.6),
        Habit("ignores cards", 5, 0.8, 0.0, 90, 0.3),
        Habit("declines", 3, 0.0, 0.7, 70, 0.9),
    )
}
TEAM_HABITS = ("fast", "steady", "slow", "ignores cards", "declines", "steady")


@dataclass
class Person:
    user_id: int
    name: str
    role: Role
    chats: tuple[int, ...]
    habit: Habit | None = None

    @property
    def label(self) -> str:
        detail = self.role if self.habit is None else f"{self.role}, {self.habit.name}"
        return f"{self.name} ({detail})"


@dataclass(order=True)
class _Action:
    due: datetime
    seq: int
    person: Person = field(compare=False)
    chat_id: int = field(compare=False)
    kind: Literal["press", "text", "photo"] = field(compare=False)
    data: str = field(compare=False)  # callback data, text, or the photo's caption
    message_id: int = field(compare=False, default=0)
    quiet: bool = field(compare=False, default=False)  # not worth a transcript line (checklist ticks)
    tag: str = field(compare=False, default="")  # names a press, so that another action can wait for it
    waits_for: str = field(compare=False, default="")  # a tagged press the bot must have answered first


@dataclass
class Stats:
    cards: int = 0
    accepted: int = 0
    declined: int = 0
    ignored: int = 0
    inspections: int = 0
    checklists: int = 0
    photos: int = 0
    delivered: int = 0
    cancelled: int = 0
    pings: int = 0
    acknowledged: int = 0
    decisions: int = 0
    postmortem_answers: int = 0


@dataclass
class _OrderWork:
    """What a manager already set in motion for one order (so an edited message is not answered twice)."""

    done: set[str] = field(default_factory=set)
    items: set[int] = field(default_factory=set)
    pages: set[int] = field(default_factory=set)


def _buttons(message: BotMessage) -> dict[str, str]:
    """callback data -> button text."""
    return {data: text for text, data in message.buttons}


def _find(buttons: Iterable[str], *fields: str) -> str | None:
    """The callback data whose leading fields are `fields` (aiogram packs an absent field as empty)."""
    for data in buttons:
        if data.split(":")[: len(fields)] == list(fields):
            return data
    return None


def _first_line(message: BotMessage) -> str:
    text = message.text if message.text is not None else message.caption or f"[{message.kind}]"
    return text.strip().splitlines()[0] if text.strip() else f"[{message.kind}]"


class People:
    """Everyone on the Telegram side of the demo, driven by `tick(now)` from the demo's loop."""

    def __init__(
        self,
        emulator: BotAPIEmulator,
        calendar: WorkingCalendar,
        people: Iterable[Person],
        say: Say,
        *,
        rng_seed: int,
        chat_names: dict[int, str],
    ) -> None:
        self.emulator = emulator
        self.calendar = calendar
        self.people = list(people)
        self.say = say
        self.rng = random.Random(rng_seed)
        self.chat_names = chat_names
        self.stats = Stats()
        self._seen: dict[tuple[int, int, int], tuple[int, str, tuple[str, ...]]] = {}
        self._actions: list[_Action] = []
        self._seq = 0
        self._work: dict[tuple[int, str], _OrderWork] = {}
        self._offers: set[tuple[int, str]] = set()
        self._signals: set[tuple[int, str, str]] = set()
        self._announced: set[tuple[int, int]] = set()  # (chat, message) whose first line was printed
        self._queries: dict[str, str] = {}  # tag -> callback query id of the press
        self._dropped: set[str] = set()  # tags of presses that could not be made any more
        self._decided: Counter[date] = Counter()  # the admin's /decide per local day

    # --- the loop -----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """Notice what changed in every watched chat, then do what is due."""
        for person in self.people:
            for chat_id in person.chats:
                for message in self.emulator.transcript(chat_id):
                    self._notice(person, chat_id, message, now)
        waiting = []
        while self._actions and self._actions[0].due <= now:
            action = heapq.heappop(self._actions)
            if action.waits_for in self._dropped:
                continue
            if action.waits_for and self._queries.get(action.waits_for) not in self.emulator.callback_answers:
                waiting.append(action)  # e.g. a photo waits until the bot has taken the 📎 item it belongs to
                continue
            self._act(action, now)
        for action in waiting:
            heapq.heappush(self._actions, action)

    def start_everyone(self, now: datetime) -> None:
        for person in self.people:
            self._schedule(person, person.user_id, "text", "/start", now, 0, working=False)

    # --- noticing -----------------------------------------------------------------------------------

    def _notice(self, person: Person, chat_id: int, message: BotMessage, now: datetime) -> None:
        key = (person.user_id, chat_id, message.message_id)
        state = (message.edits, _first_line(message), tuple(data for _, data in message.buttons))
        before = self._seen.get(key)
        if before == state:
            return
        self._seen[key] = state
        self._announce(person, chat_id, message, before, now)
        if person.role == "manager":
            self._as_manager(person, chat_id, message, now)
        elif person.role == "lead":
            self._as_lead(person, chat_id, message, now)
        elif person.role == "admin":
            self._as_admin(person, chat_id, message, now)

    def _announce(
        self,
        person: Person,
        chat_id: int,
        message: BotMessage,
        before: tuple[int, str, tuple[str, ...]] | None,
        now: datetime,
    ) -> None:
        """One transcript line per message a chat gets, and one when its headline changes (a new state)."""
        line = _first_line(message)
        if any(data.startswith("cl:") for _, data in message.buttons) and before is not None:
            return  # the checklist is edited on every tick of a box; its headline says nothing new
        if before is not None and before[1] == line:
            return
        shown = (chat_id, message.message_id)
        if chat_id < 0 and before is None and shown in self._announced:
            return  # a group message is seen by several people; print it once
        self._announced.add(shown)
        where = self.chat_names.get(chat_id, person.label)
        kinds = {data.split(":")[0] for _, data in message.buttons}
        if before is None and "of" in kinds:
            where += " [dispatched]"
        elif before is None and "sg" in kinds and chat_id < 0:
            where += " [escalated]"
        photo = " [photo]" if message.kind == "photo" else ""
        verb = "→" if before is None else "↻"
        self.say(now, f"bot {verb} {where}: {line}{photo}")

    # --- managers -----------------------------------------------------------------------------------

    def _as_manager(self, person: Person, chat_id: int, message: BotMessage, now: datetime) -> None:
        habit = person.habit
        assert habit is not None
        buttons = _buttons(message)
        for data in buttons:
            parts = data.split(":")
            if parts[:2] == ["of", "acc"]:
                self._answer_offer(person, chat_id, message, buttons, parts[2], habit, now)
            elif parts[:2] == ["of", "why"] and parts[3:] == ["busy"]:
                self._decline_reason(person, chat_id, message, data, parts[2], now)
            elif parts[0] == "st":
                self._step(person, chat_id, message, parts[1], parts[2], data, habit, now)
            elif parts[0] == "cl":
                self._checklist(person, chat_id, message, buttons, parts[2], now)
                return
            elif parts[0] == "ci" or (parts[0] == "sg" and parts[2:3] == ["ok"]):
                self._still_on_it(person, chat_id, message, data, habit, now)

    def _answer_offer(
        self,
        person: Person,
        chat_id: int,
        message: BotMessage,
        buttons: dict[str, str],
        offer: str,
        habit: Habit,
        now: datetime,
    ) -> None:
        if (person.user_id, offer) in self._offers:
            return
        self._offers.add((person.user_id, offer))
        self.stats.cards += 1
        roll = self.rng.random()
        if roll < habit.ignore_share:
            self.stats.ignored += 1
            return
        declines = roll < habit.ignore_share + habit.decline_share
        data = _find(buttons, "of", "dec" if declines else "acc", offer)
        if data is not None:
            self._schedule(
                person, chat_id, "press", data, now, self._minutes(habit.answer), message.message_id
            )

    def _decline_reason(
        self, person: Person, chat_id: int, message: BotMessage, data: str, offer: str, now: datetime
    ) -> None:
        if (person.user_id, f"why:{offer}") in self._offers:
            return
        self._offers.add((person.user_id, f"why:{offer}"))
        self._schedule(person, chat_id, "press", data, now, 1, message.message_id)

    def _step(
        self,
        person: Person,
        chat_id: int,
        message: BotMessage,
        act: str,
        handle: str,
        data: str,
        habit: Habit,
        now: datetime,
    ) -> None:
        work = self._work.setdefault((person.user_id, handle), _OrderWork())
        if act == "cx" and data.endswith(":client_no"):
            act = "yes"  # the client's answer is one decision, whichever of its two buttons is seen first
        if act not in ("insp", "chk", "yes", "ship", "dlv") or act in work.done:
            return
        work.done.add(act)
        if act == "yes" and self.rng.random() < 0.125:  # one client in eight says no after the inspection
            data = _find(_buttons(message), "st", "cx", handle, "client_no") or data
        elif act == "yes":
            data = _find(_buttons(message), "st", "yes", handle) or data
        minutes = self._minutes(habit.step * (3 if act == "dlv" else 1))
        tag = f"{person.user_id}:ship:{handle}" if act == "ship" else ""
        self._schedule(person, chat_id, "press", data, now, minutes, message.message_id, tag=tag)
        if act == "ship":  # the tracking number, once the bot has taken the press that asks for it
            tracking = f"DHL JJD{self.rng.randrange(10**13, 10**14)}"
            self._schedule(person, chat_id, "text", tracking, now, minutes + 2, waits_for=tag)

    def _checklist(
        self,
        person: Person,
        chat_id: int,
        message: BotMessage,
        buttons: dict[str, str],
        handle: str,
        now: datetime,
    ) -> None:
        """Tick every box of the page shown (photos where the checklist asks for them), then the next page;
        Submit on the last."""
        work = self._work.setdefault((person.user_id, f"cl{handle}"), _OrderWork())
        shown = sorted({int(d.split(":")[3]) for d in buttons if d.startswith(f"cl:p:{handle}:")})
        if not shown:
            return
        page = ITEMS[shown[0]].group
        delay = 1.0
        for item in shown:
            if item in work.items:
                continue
            work.items.add(item)
            if item in _PHOTO_ITEMS:
                tag = f"{person.user_id}:it:{handle}:{item}"
                select = f"cl:it:{handle}:{item}"
                self._schedule(
                    person, chat_id, "press", select, now, delay, message.message_id, quiet=True, tag=tag
                )
                self._schedule(person, chat_id, "photo", f"item {item}", now, delay + 0.5, waits_for=tag)
                delay += 1.0
            self._schedule(
                person, chat_id, "press", f"cl:p:{handle}:{item}", now, delay, message.message_id, quiet=True
            )
            delay += self.rng.uniform(0.5, 2.0)
        if not all(item in work.items for item in shown) or page in work.pages:
            return
        work.pages.add(page)
        following = _find(buttons, "cl", "pg", handle, str(page + 1))
        submit = _find(buttons, "cl", "sub", handle)
        if page < len(GROUPS) and following is not None:
            self._schedule(
                person, chat_id, "press", following, now, delay + 0.5, message.message_id, quiet=True
            )
        elif page == len(GROUPS) and submit is not None:
            self._schedule(person, chat_id, "press", submit, now, delay + 1, message.message_id)

    def _still_on_it(
        self, person: Person, chat_id: int, message: BotMessage, data: str, habit: Habit, now: datetime
    ) -> None:
        key = (person.user_id, data, str(message.message_id))
        if key in self._signals:
            return
        self._signals.add(key)
        if self.rng.random() < habit.heed_share:
            self._schedule(
                person, chat_id, "press", data, now, self._minutes(habit.answer), message.message_id
            )

    # --- the lead and the admin ---------------------------------------------------------------------

    def raise_crisis(self, person: Person, text: str, now: datetime, after_minutes: float) -> None:
        """`person` raises a crisis by hand (`/crisis TEXT`) after `after_minutes` working minutes."""
        self._schedule(person, person.user_id, "text", f"/crisis {text}", now, after_minutes)

    def _answer_postmortem(self, person: Person, chat_id: int, message: BotMessage, now: datetime) -> bool:
        """A postmortem question in the person's private chat: answer it (True), once per question."""
        text = message.text or ""
        step = _POSTMORTEM_STEP.search(text)
        key = (person.user_id, str(message.message_id), "pm")
        if chat_id != person.user_id or step is None or key in self._signals:
            return False
        self._signals.add(key)
        self.stats.postmortem_answers += 1
        answers = _CRISIS_ANSWERS if "raised by hand" in text else _POSTMORTEM_ANSWERS
        self._schedule(person, chat_id, "text", answers[step.group(1)], now, self._minutes(4))
        return True

    def _as_lead(self, person: Person, chat_id: int, message: BotMessage, now: datetime) -> None:
        """Acknowledge every ping, answer "still on it?" about the ones already acknowledged, resolve a crisis
        once it is acknowledged (and write its postmortem)."""
        if self._answer_postmortem(person, chat_id, message, now):
            return
        buttons = _buttons(message)
        crisis = "🔴" in (message.text or "") and chat_id < 0
        for data in buttons:
            parts = data.split(":")
            if (
                crisis
                and parts[0] == "sg"
                and parts[2] == "rs"
                and _find(buttons, "sg", parts[1], "ak") is None
                and (person.user_id, parts[1], "decide") not in self._signals
            ):
                self._signals.add((person.user_id, parts[1], "decide"))
                self.stats.decisions += 1
                why = _CRISIS_RESOLUTION if "raised by hand" in (message.text or "") else _CAUGHT_UP
                words = f"/decide {parts[1]} {why}"
                self._schedule(person, person.user_id, "text", words, now, self._minutes(25))
        for data in buttons:
            parts = data.split(":")
            if parts[0] != "sg" or parts[2] not in ("ak", "ok"):
                continue
            key = (person.user_id, f"{parts[1]}:{message.message_id}", parts[2])
            if key not in self._signals:
                self._signals.add(key)
                self.stats.pings += parts[2] == "ak"
                self._schedule(person, chat_id, "press", data, now, self._minutes(8), message.message_id)

    def _as_admin(self, person: Person, chat_id: int, message: BotMessage, now: datetime) -> None:
        if self._answer_postmortem(person, chat_id, message, now):
            return
        buttons = _buttons(message)
        for data in buttons:
            parts = data.split(":")
            if parts[0] != "sg" or len(parts) < 3 or (person.user_id, parts[1], "decide") in self._signals:
                continue
            signal, action = parts[1], parts[2]
            if action == "ap":
                self._decide(person, signal, "approve looks right", now)
            elif (
                action == "rs" and _find(buttons, "sg", signal, "ak") is None and self._decisions_on(now) < 2
            ):
                # Acknowledged by the lead: the admin closes it with a comment (two a day, to keep it short).
                self._decide(person, signal, "resolve the order is moving again", now)

    def _decisions_on(self, now: datetime) -> int:
        return self._decided[now.astimezone(self.calendar.tz).date()]

    def _decide(self, person: Person, signal: str, words: str, now: datetime) -> None:
        self._signals.add((person.user_id, signal, "decide"))
        self._decided[now.astimezone(self.calendar.tz).date()] += 1
        self.stats.decisions += 1
        self._schedule(person, person.user_id, "text", f"/decide {signal} {words}", now, self._minutes(15))

    # --- acting -------------------------------------------------------------------------------------

    def _minutes(self, median: float) -> float:
        return self.rng.lognormvariate(0.0, 0.5) * median

    def _schedule(
        self,
        person: Person,
        chat_id: int,
        kind: Literal["press", "text", "photo"],
        data: str,
        now: datetime,
        minutes: float,
        message_id: int = 0,
        *,
        quiet: bool = False,
        working: bool = True,
        tag: str = "",
        waits_for: str = "",
    ) -> None:
        due = self.calendar.add_working_minutes(now, minutes) if working else now
        self._seq += 1
        action = _Action(due, self._seq, person, chat_id, kind, data, message_id, quiet, tag, waits_for)
        heapq.heappush(self._actions, action)

    def _act(self, action: _Action, now: datetime) -> None:
        person, chat_id = action.person, action.chat_id
        if action.kind == "text":
            self.emulator.send_text(person.user_id, action.data, chat_id=chat_id)
            self.say(now, f"{person.name} wrote: {action.data}")
            return
        if action.kind == "photo":
            self.stats.photos += 1
            self.emulator.send_photo(person.user_id, tiny_png(self.stats.photos), chat_id=chat_id)
            return
        current = {m.message_id: m for m in self.emulator.transcript(chat_id)}.get(action.message_id)
        if current is None or action.data not in _buttons(current):
            if action.tag:
                self._dropped.add(action.tag)
            return  # the message moved on (the offer expired, the page changed): nothing to press any more
        query = self.emulator.press_button(person.user_id, chat_id, action.message_id, action.data)
        if action.tag:
            self._queries[action.tag] = query
        self._count(action.data)
        if not action.quiet:
            self.say(now, f"{person.name} pressed «{_buttons(current)[action.data]}»")

    def _count(self, data: str) -> None:
        parts = data.split(":")
        act = parts[2] if parts[0] == "sg" else parts[1]
        counters = {
            "acc": "accepted",
            "why": "declined",
            "insp": "inspections",
            "sub": "checklists",
            "dlv": "delivered",
            "ak": "acknowledged",
        }
        if data.startswith("st:cx:"):
            self.stats.cancelled += 1
        elif act in counters:
            name = counters[act]
            setattr(self.stats, name, getattr(self.stats, name) + 1)
