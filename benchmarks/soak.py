"""Soak: the real bot process killed with SIGKILL at random moments, again and again, under load (issue 13).

`python main.py run` runs as a child process against the BikeWerk simulator and the Bot API emulator (both
served over HTTP from this process), with the demo's simulated people (demo/people.py) working the orders:
managers accept, decline or ignore cards, inspect with the checklist and photos, move orders to delivery;
the lead acknowledges pings; the admin decides. New orders arrive in the CRM all along and are pushed to the
bot (`POST /crm/events`), with the periodic sync as the safety net. A policy laid over the default one makes
every day a working day and the budgets short, so SLA breaches, signals and reassignments happen within
minutes of real time.

Every life of the bot ends with SIGKILL after a random time (mostly seconds, some past the minute so the
every-minute jobs run); the process is started again at once. What was going on at the moment of each kill
(a sync, a CRM write, a send, a button being handled, a checklist being filled) is read from the two test
doubles. After the last kill the bot runs once more, the people stop, the bot drains its queues and is
stopped cleanly, and the data is checked:

- orders whose status differs between the bot and the CRM (goal 0);
- CRM writes applied more than once (the same change under two idempotency keys; goal 0);
- orders with more than one live assignment (goal 0);
- signals and SLA violations duplicated (goal 0);
- messages lost: wanted but never delivered, or recorded as sent but not in the chat (goal 0);
- messages sent twice (reported; goal 0 for everything but a send cut off on the wire by a kill);
- updates never confirmed, and orders inconsistent across the bot's own tables (goal 0);
- `PRAGMA integrity_check` (goal ok).

    python benchmarks/soak.py [--kills 50] [--seed 7] [--out DIR] [--small]

`--small` (CI): 5 kills, shorter lives. Exit code 0 when every count is at its goal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bikewerk.push import PUSH_PATH
from demo.people import People, Person
from demo.report import text_table
from demo.run import DATABASE_NAME, TIMEZONE, inconsistencies, populate_world, world_env
from domain.calendar import WorkingCalendar
from storage.db import Database, ts
from storage.history import order_ledgers
from testkit.clocks import AcceleratedClock
from testkit.emulator import BotAPIEmulator
from testkit.simulator import BikeWerkSimulator

ROOT = Path(__file__).resolve().parent.parent
SECRET = "soak-push-secret"
# Simulated minutes per real second for the people: a card answered within seconds, a step within a minute.
PEOPLE_SPEED = 150.0
TICK = 0.1  # seconds between two looks of the people at their chats
SYNC_INTERVAL = 5  # seconds: the safety net runs often, so many kills land in a sync
# A life's length after the bot answers /healthz: most end within seconds (in the middle of the traffic),
# some outlive the minute (the every-minute jobs run: sweeps, dispatch tick), some never finish starting.
LIFE_SHORT = (0.0, 10.0)
LIFE_LONG = (58.0, 75.0)
STARTUP = (0.3, 6.0)  # seconds after the process started
STARTUP_SHARE, LONG_SHARE = 0.1, 0.2
CRM_WRITES = frozenset({"assign", "status", "compensation"})  # the simulator's route names of the writes
RECENT = 0.3  # seconds before a kill that count as "going on at the moment"
READY_TIMEOUT = 60.0
DRAIN_TIMEOUT = 180.0

# Every day a working day, around the clock, and short budgets: breaches, reminders, expiries and the
# signal ladder happen within the soak's minutes.
POLICY = """
version = "soak-1"
accept_timeout_minutes = 1
still_on_it_minutes = 5

[calendar]
workdays = [0, 1, 2, 3, 4, 5, 6]
start = "00:00"
end = "23:59"

[budgets.pending_manager]
minutes = 3
clock = "working"
severity = "high"

[budgets.accepted]
minutes = 5
clock = "working"
severity = "medium"

[budgets.inspection]
minutes = 10
clock = "working"
severity = "high"

[budgets.awaiting_client]
minutes = 10
clock = "calendar"
severity = "medium"

[budgets.ready_for_shipment]
minutes = 10
clock = "working"
severity = "high"

[budgets.in_transit]
minutes = 20
clock = "calendar"
severity = "medium"

[signals]
response_minutes = { critical = 5, high = 10, medium = 30 }
still_on_it_reply_minutes = 3

[outbox]
backoff_start_seconds = 1
backoff_max_seconds = 10
"""


@dataclass
class Life:
    number: int
    planned: float
    lived: float = 0.0
    ready_after: float | None = None  # None: killed before it answered /healthz
    moment: list[str] = field(default_factory=list)


@dataclass
class Soak:
    out: Path
    kills: int
    seed: int
    short: tuple[float, float]
    long: tuple[float, float]
    orders_every: float
    rng: random.Random = field(init=False)
    lives: list[Life] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    # method -> real times of its calls (Bot API) or requests (CRM), for what was going on at a kill
    activity: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


# --- the bot as a child process --------------------------------------------------------------------------


class BotProcess:
    """`python main.py run` with the soak's environment; each life logs to its own file."""

    def __init__(self, env: dict[str, str], logs: Path, health_url: str) -> None:
        self.env = env
        self.logs = logs
        self.health_url = health_url
        self.process: asyncio.subprocess.Process | None = None
        self.lives = 0

    async def start(self) -> None:
        self.lives += 1
        log = (self.logs / f"life-{self.lives:03d}.log").open("wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "main.py"), "run", env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        finally:
            log.close()

    async def ready(self, http: aiohttp.ClientSession) -> float:
        """Seconds until the process's HTTP server answers /healthz (whatever it says)."""
        started = time.monotonic()
        while time.monotonic() - started < READY_TIMEOUT:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}; see {self.logs}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    await response.read()
                    return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bot did not answer {self.health_url} within {READY_TIMEOUT:.0f} s")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the world ---------------------------------------------------------------------------------------------


class World:
    """The simulator, the emulator and the people, ticking in this process while the bot lives and dies."""

    def __init__(self, soak: Soak, simulator: BikeWerkSimulator, emulator: BotAPIEmulator) -> None:
        self.soak = soak
        self.simulator = simulator
        self.emulator = emulator
        self.people: People | None = None
        self.clock = AcceleratedClock(datetime.now(ZoneInfo(TIMEZONE)), PEOPLE_SPEED)
        self.transcript = (soak.out / "transcript.log").open("w", encoding="utf-8")
        self.calls_seen = 0
        self.requests_seen: Counter[str] = Counter()
        self.working = True
        self.next_order = time.monotonic()

    def meet(self, persons: list[Person]) -> None:
        calendar = WorkingCalendar(
            tz=ZoneInfo(TIMEZONE),
            workdays=frozenset(range(7)),
            start=datetime.strptime("00:00", "%H:%M").time(),
            end=datetime.strptime("23:59", "%H:%M").time(),
        )
        names = {person.user_id: person.label for person in persons}
        self.people = People(
            self.emulator, calendar, persons, self._say, rng_seed=self.soak.seed, chat_names=names
        )
        self.people.start_everyone(self.clock.now())

    def _say(self, now: datetime, text: str) -> None:
        self.transcript.write(f"{now:%H:%M:%S} {text}\n")

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Orders arrive and people act until told to stop; what the doubles saw is stamped with real time."""
        while True:
            now = time.monotonic()
            if self.working and now >= self.next_order:
                self.next_order = now + self.soak.rng.expovariate(1 / self.soak.orders_every)
                async with http.post(f"{self.simulator.url}/sim/orders", json={}) as response:
                    self.soak.orders.append((await response.json())["id"])
            if self.working and self.people is not None:
                self.people.tick(self.clock.now())
            self._stamp(now)
            await asyncio.sleep(TICK)

    def _stamp(self, now: float) -> None:
        calls = self.emulator.calls
        for method, params in calls[self.calls_seen :]:
            if method == "getUpdates":
                continue  # the long poll is always going on
            self.soak.activity.setdefault(_call_kind(method, params), []).append(now)
        self.calls_seen = len(calls)
        for route, count in self.simulator.stats.requests.items():
            if count > self.requests_seen[route]:
                kind = "CRM write" if route in CRM_WRITES else "sync (CRM read)"
                self.soak.activity.setdefault(kind, []).append(now)
        self.requests_seen = Counter(self.simulator.stats.requests)

    def moment(self, at: float) -> list[str]:
        return sorted(
            kind for kind, times in self.soak.activity.items() if any(at - RECENT <= t <= at for t in times)
        )


def _call_kind(method: str, params: dict[str, object]) -> str:
    if method == "answerCallbackQuery":
        return "button being handled"
    if method in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup"):
        markup = json.dumps(params.get("reply_markup") or "")
        return "checklist being filled" if '"cl:' in markup else "send"
    return "other Bot API calls"


# --- the run ----------------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> int:
    run = Soak(
        out=args.out,
        kills=args.kills,
        seed=args.seed,
        short=LIFE_SHORT if not args.small else (0.0, 4.0),
        long=LIFE_LONG,
        orders_every=args.orders_every,
    )
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / DATABASE_NAME).unlink(missing_ok=True)
    logs = run.out / "logs"
    logs.mkdir(exist_ok=True)
    for old in logs.glob("life-*.log"):
        old.unlink()
    policy = run.out / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    simulator = BikeWerkSimulator(seed=run.seed, orders=0, managers=6)
    emulator = BotAPIEmulator()
    port = _free_port()
    async with aiohttp.ClientSession() as http:
        simulator_url = await simulator.start()
        await emulator.start()
        world = World(run, simulator, emulator)
        try:
            world.meet(await populate_world(emulator, http, simulator_url))
            env = {
                "PATH": os.environ.get("PATH", ""),
                **world_env(emulator, simulator_url, run.out, SECRET),
                "POLICY_FILE": str(policy),
                "HTTP_PORT": str(port),
                "SYNC_INTERVAL_SECONDS": str(SYNC_INTERVAL),
                "BACKUP_KEEP": "0",
                "LOG_LEVEL": "INFO",
            }
            bot = BotProcess(env, logs, f"http://127.0.0.1:{port}/healthz")
            simulator.pusher.set_webhook(f"http://127.0.0.1:{port}{PUSH_PATH}", SECRET)
            ticking = asyncio.create_task(world.run(http))
            try:
                await _lives(run, bot, world, http)
                table = await _finish(run, bot, world, http)
            finally:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
        finally:
            world.transcript.close()
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()
            await emulator.stop()
            await simulator.stop()
    print(table.render())
    return 0 if table.ok else 1


async def _lives(run: Soak, bot: BotProcess, world: World, http: aiohttp.ClientSession) -> None:
    for number in range(1, run.kills + 1):
        draw = run.rng.random()
        await bot.start()
        born = time.monotonic()
        if draw < STARTUP_SHARE:  # killed while starting: importing, migrating, the first sync
            life = Life(number, run.rng.uniform(*STARTUP))
            await asyncio.sleep(life.planned)
        else:
            life = Life(
                number, run.rng.uniform(*(run.long if draw < STARTUP_SHARE + LONG_SHARE else run.short))
            )
            life.ready_after = await bot.ready(http)
            await asyncio.sleep(life.planned)
        death = time.monotonic()
        await bot.kill()
        life.lived = death - born
        life.moment = (
            world.moment(death) if life.ready_after is not None else ["start-up", *world.moment(death)]
        )
        run.lives.append(life)
        what = ", ".join(life.moment) or "idle"
        print(
            f"kill {number:>3}/{run.kills} after {life.lived:5.1f} s ({what}); "
            f"{len(run.orders)} orders in the CRM",
            flush=True,
        )


# --- the checks -------------------------------------------------------------------------------------------


@dataclass
class Table:
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def add(self, check: str, value: int | str, goal: str, ok: bool) -> None:
        self.rows.append((check, str(value), goal, ok))

    @property
    def ok(self) -> bool:
        return all(ok for *_, ok in self.rows)

    def render(self) -> str:
        body = [[check, value, goal, "PASS" if ok else "FAIL"] for check, value, goal, ok in self.rows]
        return text_table(["check", "found", "goal", ""], body)


async def _finish(run: Soak, bot: BotProcess, world: World, http: aiohttp.ClientSession) -> Table:
    """The last life: the people stop, the bot delivers what their work asked for and stops cleanly; then the
    checks. The bot keeps raising signals after the people left (nobody acknowledges any more), so "delivered"
    means everything asked for before the people stopped."""
    await bot.start()
    await bot.ready(http)
    await asyncio.sleep(5)  # the people finish what they were doing when the last kill came
    world.working = False
    stopped = ts(datetime.now(UTC))
    database = run.out / DATABASE_NAME
    drained = await _drain(database, world, stopped)
    code = await bot.stop()
    table = Table()
    table.add("kills (SIGKILL) survived", len(run.lives), str(run.kills), len(run.lives) == run.kills)
    table.add("clean stop at the end (exit code)", code, "0", code == 0)
    drain = "no" if drained is None else f"in {drained:.0f} s"
    table.add("drained what the people asked for", drain, "yes", drained is not None)
    _check_database(table, database, world, run, stopped)
    db = await Database.open(database, exclusive=False, run_migrations=False)
    try:
        problems = inconsistencies(await order_ledgers(db))
    finally:
        await db.close()
    table.add("orders inconsistent across the bot's tables", len(problems), "0", not problems)
    for problem in problems[:10]:
        print("  inconsistent:", problem)
    moments = Counter(kind for life in run.lives for kind in (life.moment or ["idle"]))
    stats = vars(world.people.stats) if world.people else {}
    people = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in stats.items())
    print(f"\n{len(run.orders)} orders created; the people: {people}")
    print("what was going on at the kills:", ", ".join(f"{k} {v}" for k, v in moments.most_common()))
    ready = sorted(life.ready_after for life in run.lives if life.ready_after is not None)
    if ready:
        print(
            f"restart to /healthz answering: median {ready[len(ready) // 2]:.2f} s, worst {ready[-1]:.2f} s"
        )
    return table


_UNDELIVERED = "sent_version < version AND dead = 0 AND updated_at <= ?"


async def _drain(database: Path, world: World, stopped: str) -> float | None:
    """Seconds until no update is pending, no CRM write waits, every message asked for before `stopped` is
    delivered and two syncs ran since; None if that did not happen within DRAIN_TIMEOUT."""
    started = time.monotonic()
    quiet_since: float | None = None
    while (now := time.monotonic()) - started < DRAIN_TIMEOUT:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            due = conn.execute(
                f"SELECT (SELECT count(*) FROM tg_messages WHERE {_UNDELIVERED})"
                " + (SELECT count(*) FROM crm_outbox WHERE acked_at IS NULL AND refused_at IS NULL)",
                (stopped,),
            ).fetchone()[0]
        if due or world.emulator.pending_updates:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since > 2.5 * SYNC_INTERVAL:
            return now - started
        await asyncio.sleep(0.5)
    return None


def _check_database(table: Table, database: Path, world: World, run: Soak, stopped: str) -> None:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        table.add("PRAGMA integrity_check", integrity, "ok", integrity == "ok")
        statuses = dict(conn.execute("SELECT id, status FROM orders").fetchall())
        differ = [o for o in run.orders if statuses.get(o) != world.simulator.order(o)["status"]]
        table.add("orders whose status differs bot vs CRM", len(differ), "0", not differ)
        for order in differ[:10]:
            print(
                f"  differs: {order} bot {statuses.get(order)} CRM {world.simulator.order(order)['status']}"
            )
        twice = _writes_applied_twice(world.simulator.writes)
        table.add("CRM writes applied more than once", twice, "0", twice == 0)
        live = conn.execute(
            "SELECT count(*) FROM (SELECT order_id FROM ai_assignments WHERE state IN ('offered', 'accepted')"
            " GROUP BY order_id HAVING count(*) > 1)"
        ).fetchone()[0]
        table.add("orders with more than one live assignment", live, "0", live == 0)
        signals = conn.execute(
            "SELECT count(*) - count(DISTINCT type || '|' || coalesce(order_id, '') || '|' || dedup_key"
            " || '|' || raised_at) FROM ai_signals"
        ).fetchone()[0]
        violations = conn.execute(
            "SELECT count(*) - count(DISTINCT order_id || '|' || status || '|' || kind || '|' || entered_at)"
            " FROM ai_sla_violations"
        ).fetchone()[0]
        table.add("signals duplicated", signals, "0", signals == 0)
        table.add("SLA violations duplicated", violations, "0", violations == 0)
        lost, twice_sent = _messages(conn, world.emulator, stopped)
        table.add("messages lost", lost, "0", lost == 0)
        table.add("messages sent twice (cut off on the wire by a kill)", twice_sent, "reported", True)
    pending = len(world.emulator.pending_updates)
    table.add("updates never confirmed", pending, "0", pending == 0)
    unhandled = _presses_never_handled(world.emulator)
    table.add("button presses never handled", unhandled, "0", unhandled == 0)


def _presses_never_handled(emulator: BotAPIEmulator) -> int:
    """A press the bot never tried to answer was never handled (every handler and the errors router answer);
    one answered too late because the bot was down when it came is handled all the same."""
    tried = {str(params.get("callback_query_id")) for params in emulator.calls_of("answerCallbackQuery")}
    return sum(1 for query in emulator.unanswered_callbacks() if query not in tried)


def _writes_applied_twice(writes: Iterable[dict[str, object]]) -> int:
    """The same change applied under two keys; an order assigned back to an earlier manager is not one."""
    applied: dict[tuple[str, str], list[str]] = {}
    for write in writes:
        if write.get("applied"):
            key = (str(write["kind"]), str(write["order_id"]))
            applied.setdefault(key, []).append(json.dumps(write.get("payload"), sort_keys=True))
    twice = 0
    for bodies in applied.values():
        twice += sum(1 for before, after in itertools.pairwise(bodies) if before == after)
    return twice


def _messages(conn: sqlite3.Connection, emulator: BotAPIEmulator, stopped: str) -> tuple[int, int]:
    """Lost: asked for before the people stopped and never delivered, given up on (no chat is blocked here),
    or recorded as sent but missing from the chat. Twice: a bot message that repeats one the bot keeps (same
    chat, same content) but is not the one it recorded."""
    undelivered = conn.execute(
        f"SELECT count(*) FROM tg_messages WHERE ({_UNDELIVERED}) OR dead = 1", (stopped,)
    ).fetchone()[0]
    kept: dict[int, set[int]] = {}
    for chat_id, message_id, extra in conn.execute(
        "SELECT chat_id, message_id, extra_message_ids FROM tg_messages WHERE message_id IS NOT NULL"
    ):
        ids = kept.setdefault(chat_id, set())
        ids.add(message_id)
        ids.update(json.loads(extra or "[]"))
    missing = 0
    twice = 0
    for chat_id, ids in kept.items():
        messages = {m.message_id: m for m in emulator.transcript(chat_id)}
        missing += len(ids - messages.keys())
        recorded = {_content(messages[i]) for i in ids if i in messages}
        twice += sum(1 for i, m in messages.items() if i not in ids and _content(m) in recorded)
    return undelivered + missing, twice


def _content(message: object) -> str:
    return json.dumps(
        [getattr(message, "kind", ""), getattr(message, "raw_text", None), getattr(message, "caption", None)]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--orders-every", type=float, default=8.0, help="mean real seconds between new orders"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the database, logs and transcript")
    parser.add_argument("--small", action="store_true", help="CI smoke: 5 kills, short lives")
    args = parser.parse_args()
    if args.small:
        args.kills = min(args.kills, 5)
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        args.out = args.out or Path(scratch)
        return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
