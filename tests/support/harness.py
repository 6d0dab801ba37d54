"""The one bot harness of the test suite: the real bot (BotApp) against the Bot API emulator over HTTP, a
manual clock, a SQLite file under tmp_path and, on request, the BikeWerk simulator. Two ways to wait:
`settle()` (every update handled, every due message sent) and `say`/`shown`/`press` (until the chat shows the
answer). tests/support/admin_bot.py is a preset of it (other people and chats, English).

harness = await start_harness(tmp_path) # or the `harness` fixture (tests/conftest.py)
harness.emulator.send_text(ADMIN_ID, "/start") await harness.settle() # every update handled, every due
message sent assert "admin" in harness.emulator.last_message(ADMIN_ID).text

The fixed world: admin 100, owner 200, leads 301 and 302, the leads (-1001), crisis (-1002) and admin (-1003)
groups; managers come with `add_manager`. Time is a ManualClock at Monday 2026-11-23 09:00 Europe/Berlin
unless `now` says otherwise; the scheduler is not running (tests call the jobs' use cases themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import BotApp
from bot.config import Settings, load_settings
from bot.limits import SendLimits
from bot.services import Services
from circles.sales_ops.sla import sweep
from domain.models import Manager
from storage import crm
from testkit.clocks import ManualClock
from testkit.emulator import BotAPIEmulator, BotMessage, RateLimits
from testkit.settle import settle
from testkit.simulator import BikeWerkSimulator
from tests.support.sla_world import World

DEFAULT_NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
ADMIN_ID = 100
OWNER_ID = 200
LEAD_IDS = (301, 302)
LEADS_CHAT_ID = -1001
CRISIS_CHAT_ID = -1002
ADMIN_CHAT_ID = -1003
PEOPLE = {ADMIN_ID: "Alina Admin", OWNER_ID: "Oleg Owner", LEAD_IDS[0]: "Lena Lead", LEAD_IDS[1]: "Lev Lead"}
GROUPS = {
    LEADS_CHAT_ID: "BikeWerk leads",
    CRISIS_CHAT_ID: "BikeWerk crisis",
    ADMIN_CHAT_ID: "BikeWerk admins",
}
WAIT = 10.0  # seconds `until` waits for the bot


@dataclass
class Harness:
    tmp_path: Path
    emulator: BotAPIEmulator
    clock: ManualClock
    settings: Settings
    app: BotApp
    polling: bool
    send_limits: SendLimits | None = None
    simulator: BikeWerkSimulator | None = None
    simulator_url: str | None = None
    _apps: list[BotApp] = field(default_factory=list)
    _world: World | None = None

    @property
    def services(self) -> Services:
        return self.app.services

    @property
    def tg(self) -> BotAPIEmulator:
        return self.emulator

    @property
    def world(self) -> World:
        """Store helpers (orders put into statuses, signal rows) over the running bot's services."""
        if self._world is None or self._world.services is not self.services:
            self._world = World(self.services, self.clock)
        return self._world

    # -- waiting for what a chat shows

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.emulator.wait_for(predicate, WAIT, recheck_every=0.05)

    def latest(self, chat_id: int, needle: str) -> BotMessage | None:
        return next((m for m in reversed(self.tg.transcript(chat_id)) if needle in (m.text or "")), None)

    async def shown(self, chat_id: int, needle: str) -> BotMessage:
        """Wait until the chat shows a bot message containing `needle`."""
        await self.until(lambda: self.latest(chat_id, needle) is not None)
        found = self.latest(chat_id, needle)
        assert found is not None
        return found

    async def say(self, user_id: int, text: str, chat_id: int | None = None) -> str:
        """The user writes `text`; returns the bot's reply in that chat."""
        chat = user_id if chat_id is None else chat_id
        before = len(self.tg.transcript(chat))
        self.tg.send_text(user_id, text, chat_id=chat_id)
        await self.until(lambda: len(self.tg.transcript(chat)) > before)
        return self.tg.transcript(chat)[before].text or ""

    async def press(self, user_id: int, chat_id: int, button: str) -> dict[str, Any]:
        return await self.answer_of(self.tg.press(user_id, chat_id, button))

    async def press_data(self, user_id: int, chat_id: int, message_id: int, data: str) -> dict[str, Any]:
        return await self.answer_of(self.tg.press_button(user_id, chat_id, message_id, data))

    async def answer_of(self, query_id: str) -> dict[str, Any]:
        await self.until(lambda: query_id in self.tg.callback_answers)
        return self.tg.callback_answers[query_id]

    async def sweep_at(self, at: datetime) -> None:
        """The SLA sweep job at `at` (the clock moves there first)."""
        self.clock.set(at)
        await sweep(self.services, at)

    async def add_manager(self, manager_id: str, name: str, telegram_id: int, *, capacity: int = 10) -> None:
        """A manager as the CRM sync would store them, and their Telegram user in the emulator."""
        self.emulator.add_user(telegram_id, name.split()[0])
        async with self.services.db.transaction() as conn:
            record = Manager(id=manager_id, name=name, telegram_id=telegram_id, capacity=capacity)
            await crm.upsert_managers(conn, [record], self.clock.now())

    async def settle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - the harness API every test uses
        """Return when every update the emulator has queued was handled by the bot and the sender has
        delivered every message that is due; raise TimeoutError (with the emulator's report) otherwise."""
        await settle(self.app, self.emulator, polling=self.polling, timeout=timeout)

    async def restart(self, **start_kwargs: Any) -> BotApp:
        """Stop the bot; start a new BotApp on the same database, emulator and clock (a process restart)."""
        await self.app.stop()
        self.app = await _start_app(
            self.settings, self.clock, self.send_limits, polling=self.polling, **start_kwargs
        )
        self._apps.append(self.app)
        return self.app

    async def stop(self) -> None:
        for app in self._apps:
            await app.stop()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.emulator.stop()


async def _start_app(
    settings: Settings,
    clock: ManualClock,
    send_limits: SendLimits | None,
    *,
    polling: bool,
    session_timeout: float = 10.0,
    **kwargs: Any,
) -> BotApp:
    app = BotApp(
        settings,
        clock=clock,
        send_limits=send_limits,
        session_timeout=session_timeout,
        stop_grace=1.0,
        **kwargs,
    )
    await app.start(polling=polling, scheduler=False)
    return app


async def start_harness(
    tmp_path: Path,
    *,
    now: datetime | None = None,
    simulator: bool = False,
    polling: bool = True,
    rate_limits: RateLimits | None = None,
    send_limits: SendLimits | None = None,
    people: Mapping[int, str] = PEOPLE,
    language_code: str | None = "ru",
    groups: Mapping[int, str] = GROUPS,
    session_timeout: float = 10.0,
    **settings_overrides: Any,
) -> Harness:
    """Start the emulator (and the simulator), then the real bot against them.

    Settings keys are the environment names (`TIMEZONE="UTC"`, `WEBHOOK_URL=...`); `rate_limits` sets the
    emulator's flood limits, `send_limits` the sender's; `people` (with their Telegram `language_code`) and
    `groups` are who the emulator knows.
    """
    clock = ManualClock(now or DEFAULT_NOW)
    emulator = BotAPIEmulator(rate_limits=rate_limits)
    api_url = await emulator.start()
    for user_id, name in people.items():
        emulator.add_user(user_id, name.split()[0], language_code=language_code)
    for chat_id, title in groups.items():
        emulator.add_group(chat_id, title)
    sim: BikeWerkSimulator | None = None
    sim_url: str | None = None
    try:
        if simulator:
            sim = BikeWerkSimulator(seed=1, orders=0, managers=0, clock=clock)
            sim_url = await sim.start()
        values: dict[str, Any] = {
            "_env_file": None,  # a developer's .env must not leak into tests
            "BOT_TOKEN": emulator.token,
            "TELEGRAM_API_URL": api_url,
            "DATABASE_PATH": tmp_path / "bot.db",
            "ARTIFACTS_DIR": tmp_path / "artifacts",
            "ADMIN_IDS": str(ADMIN_ID),
            "OWNER_ID": OWNER_ID,
            "LEAD_IDS": ",".join(map(str, LEAD_IDS)),
            "LEADS_CHAT_ID": LEADS_CHAT_ID,
            "CRISIS_CHAT_ID": CRISIS_CHAT_ID,
            "ADMIN_CHAT_ID": ADMIN_CHAT_ID,
            "BIKEWERK_API_URL": sim_url or "http://127.0.0.1:9",
            "TIMEZONE": "Europe/Berlin",
            "DEFAULT_LANGUAGE": "ru",
            "POLICY_FILE": None,
            "WEBHOOK_URL": None,
            "WEBHOOK_SECRET": None,
        }
        values.update(settings_overrides)
        settings = load_settings(**values)
        app = await _start_app(settings, clock, send_limits, polling=polling, session_timeout=session_timeout)
    except BaseException:
        if sim is not None:
            await sim.stop()
        await emulator.stop()
        raise
    return Harness(
        tmp_path=tmp_path,
        emulator=emulator,
        clock=clock,
        settings=settings,
        app=app,
        polling=polling,
        send_limits=send_limits,
        simulator=sim,
        simulator_url=sim_url,
        _apps=[app],
    )
