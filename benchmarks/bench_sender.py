"""The sender against the Bot API emulator with Telegram's real flood limits, in real time.

N notifications to C private chats are queued in the outbox, then one `Sender.flush()` delivers them. Targets:
zero 429 answers from the emulator, and a total time within 10 % of the minimum the limits allow (a private
chat takes a burst of 3, then 1 message/s; all chats together 30/s).

    python benchmarks/bench_sender.py [--notifications 300 --chats 10] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram.client.default import DefaultBotProperties

from bot.sender import Sender
from storage import messages as outbox
from storage.db import Database
from testkit.clocks import ManualClock
from testkit.emulator import BotAPIEmulator, RateLimits

FIRST_CHAT = 50_001


def minimum_seconds(per_chat: list[int], limits: RateLimits) -> float:
    """The shortest time the limits allow: each chat's burst then its pace; the global rate over all chats."""
    chat_bound = max(max(0, n - limits.private_burst) / limits.per_private_chat_per_s for n in per_chat)
    total = sum(per_chat)
    global_bound = max(0, math.ceil(total / limits.global_per_s) - 1)
    return max(chat_bound, float(global_bound))


async def run(notifications: int, chats: int) -> bool:
    limits = (
        RateLimits()
    )  # Telegram's: 1/s per private chat after a burst of 3, 20/min per group, 30/s overall
    emulator = BotAPIEmulator(rate_limits=limits)
    await emulator.start()
    chat_ids = [FIRST_CHAT + n for n in range(chats)]
    for chat_id in chat_ids:
        emulator.add_user(chat_id, f"Manager{chat_id}")
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        bot = emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
        clock = ManualClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
        sender = Sender(bot, db, clock)
        try:
            async with db.transaction() as conn:
                for n in range(notifications):
                    chat_id = chat_ids[n % chats]
                    await outbox.put_message(
                        conn, chat_id=chat_id, ref=f"bench:{n}", body=f"Order card {n}", now=clock.now()
                    )
            started = time.perf_counter()
            delivered = await sender.flush()
            elapsed = time.perf_counter() - started
        finally:
            await bot.session.close()
            await db.close()
            await emulator.stop()

    per_chat = [len(range(i, notifications, chats)) for i in range(chats)]
    minimum = minimum_seconds(per_chat, limits)
    over = (elapsed - minimum) / minimum * 100 if minimum > 0 else 0.0
    ok = delivered == notifications and emulator.count_429 == 0 and elapsed <= minimum * 1.10 + 0.05
    print(f"notifications delivered: {delivered} of {notifications} to {chats} private chats")
    print(f"429 answers from the emulator: {emulator.count_429} (target 0)")
    print(f"total time: {elapsed:.2f} s; minimum the limits allow: {minimum:.2f} s ({over:+.1f} %)")
    print(f"{'PASS' if ok else 'FAIL'}: zero 429s and within 10 % of the minimum")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notifications", type=int, default=300)
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="a quick smoke run: 60 notifications")
    args = parser.parse_args()
    notifications = 60 if args.small else args.notifications
    return 0 if asyncio.run(run(notifications, args.chats)) else 1


if __name__ == "__main__":
    sys.exit(main())
