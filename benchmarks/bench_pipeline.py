"""Updates per second through the whole bot pipeline, against a bare aiogram echo bot on the same emulator.

Pipeline: the real BotApp polling the Bot API emulator; each update is `/lang en|ru` from one of M managers,
so it goes update in -> caller middleware (role lookup in SQLite, person recorded) -> locale -> handler ->
language written in a transaction -> answer sent through the rate limiter. Echo: a Dispatcher whose one
handler answers the text back. Both warm up on one update per manager, then take the same N updates queued in
an emulator with flood limits disabled; the sender's limits are lifted too (with Telegram's 30/s the answer
rate would be the limit, not the pipeline). Targets: >= 500 updates/s and a pipeline/echo time ratio <= 1.5.

    python benchmarks/bench_pipeline.py [--updates 5000 --managers 500] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Message

from bot.app import BotApp
from bot.clock import ManualClock
from bot.config import load_settings
from bot.emulator import BotAPIEmulator, RateLimits
from bot.sender import SendLimits
from domain.models import Manager
from storage import crm
from storage.db import Database

FIRST_USER = 70_001
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
UNLIMITED = SendLimits(global_per_s=10**9, private_per_s=1e9, private_burst=10**9, group_per_min=10**9)


class AnswerCounter(BaseRequestMiddleware):
    """Counts the bot's answers as they come back; `reached(n)` waits for the n-th."""

    def __init__(self) -> None:
        self.answered = 0
        self._target = 0
        self._reached = asyncio.Event()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        response = await make_request(bot, method)
        if method.__api_method__ == "sendMessage":
            self.answered += 1
            if self.answered >= self._target:
                self._reached.set()
        return response

    async def reached(self, target: int) -> None:
        self._target, self._reached = target, asyncio.Event()
        if self.answered >= target:
            return
        await asyncio.wait_for(self._reached.wait(), timeout=300)


def new_emulator(users: int) -> BotAPIEmulator:
    emulator = BotAPIEmulator(rate_limits=RateLimits(enabled=False))
    for n in range(users):
        emulator.add_user(FIRST_USER + n, f"M{n}")
    return emulator


def queue_updates(emulator: BotAPIEmulator, updates: int, users: int, *, first: int = 0) -> None:
    for n in range(first, first + updates):
        emulator.send_text(FIRST_USER + n % users, "/lang en" if (n // users) % 2 == 0 else "/lang ru")


async def timed(
    emulator: BotAPIEmulator, bot: Bot, updates: int, users: int, start: Callable[[], Awaitable[None]]
) -> float:
    """Warm up with one update per user (first sight of each person, code paths loaded), then time N more
    updates from the moment they are queued until their last answer came back: the steady state."""
    counter = AnswerCounter()
    bot.session.middleware(counter)
    queue_updates(emulator, users, users)
    await start()
    await counter.reached(users)
    queue_updates(emulator, updates, users, first=users)
    started = time.perf_counter()
    await counter.reached(users + updates)
    return time.perf_counter() - started


async def run_echo(updates: int, users: int) -> float:
    emulator = new_emulator(users)
    await emulator.start()
    bot = emulator.make_bot()
    router = Router()

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling: asyncio.Task[None] | None = None

    async def start() -> None:
        nonlocal polling
        polling = asyncio.create_task(
            dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
        )

    try:
        return await timed(emulator, bot, updates, users, start)
    finally:
        await dispatcher.stop_polling()
        if polling is not None:
            await polling
        await bot.session.close()
        await emulator.stop()


async def run_pipeline(updates: int, users: int, folder: Path) -> float:
    emulator = new_emulator(users)
    api = await emulator.start()
    db_path = folder / "pipeline.db"
    db = await Database.open(db_path)
    async with db.transaction() as conn:
        managers = [
            Manager(id=f"M{n}", name=f"Manager {n}", telegram_id=FIRST_USER + n) for n in range(users)
        ]
        await crm.upsert_managers(conn, managers, NOW)
    await db.close()
    settings = load_settings(
        _env_file=None,
        BOT_TOKEN=emulator.token,
        TELEGRAM_API_URL=api,
        DATABASE_PATH=db_path,
        BIKEWERK_API_URL="http://127.0.0.1:9",
        WEBHOOK_URL=None,
        POLICY_FILE=None,
    )
    app = BotApp(settings, clock=ManualClock(NOW), send_limits=UNLIMITED)
    await app.start(polling=False, scheduler=False)  # intake starts inside the timed part

    try:
        return await timed(emulator, app.bot, updates, users, app.start_intake)
    finally:
        await app.stop()
        await emulator.stop()


async def run(updates: int, users: int, repeat: int) -> bool:
    pipeline_times, echo_times = [], []
    for _ in range(repeat):  # alternated, best of each: other load on the machine only ever slows a run down
        with tempfile.TemporaryDirectory() as folder:
            pipeline_times.append(await run_pipeline(updates, users, Path(folder)))
        echo_times.append(await run_echo(updates, users))
    pipeline, echo = min(pipeline_times), min(echo_times)
    pipeline_rate, echo_rate = updates / pipeline, updates / echo
    ratio = pipeline / echo
    ok = pipeline_rate >= 500 and ratio <= 1.5
    print(f"updates: {updates} from {users} managers, best of {repeat} runs each")
    print(f"echo bot:      {echo:6.2f} s  {echo_rate:7.0f} updates/s")
    print(f"full pipeline: {pipeline:6.2f} s  {pipeline_rate:7.0f} updates/s (target >= 500)")
    print(f"pipeline / echo time: {ratio:.2f} (target <= 1.5)")
    print(f"{'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--managers", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each bot; the best counts")
    parser.add_argument("--small", action="store_true", help="a quick run: 500 updates from 100 managers")
    args = parser.parse_args()
    updates, users = (500, 100) if args.small else (args.updates, args.managers)
    return 0 if asyncio.run(run(updates, users, args.repeat)) else 1


if __name__ == "__main__":
    sys.exit(main())
