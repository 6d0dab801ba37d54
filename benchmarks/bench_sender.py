"""The sender against the Bot API emulator with Telegram's real flood limits, in real time.

Two runs, each queueing notifications in the outbox and timing one `Sender.flush()` that delivers them:

- "private chats": N notifications spread over C private chats, enough chats that all of them together reach
  the global 30 messages/s (a private chat takes a burst of 3, then 1 message/s);
- "groups": G group chats get M messages each (20 per rolling minute per group) while the private chats get
  some too.

Targets: zero 429 answers from the emulator, and each run's total time within 10 % of the minimum the limits
allow. `--small` is a CI smoke run (fewer messages, groups within one minute's budget): it fails on a 429 or a
lost message, not on the time.

    python benchmarks/bench_sender.py [--notifications 900 --chats 60 --groups 2 --group-messages 25]
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


FIRST_GROUP = -100_001


def minimum_seconds(per_chat: list[int], per_group: list[int], limits: RateLimits) -> float:
    """The shortest time the limits allow: each private chat's burst then its pace; each group's 20 in any
    rolling minute; the global rate over all chats in any rolling second."""
    chat_bound = max(
        (max(0, n - limits.private_burst) / limits.per_private_chat_per_s for n in per_chat), default=0.0
    )
    group_bound = max(((n - 1) // limits.per_group_per_min * 60.0 for n in per_group if n), default=0.0)
    total = sum(per_chat) + sum(per_group)
    global_bound = max(0, math.ceil(total / limits.global_per_s) - 1)
    return max(chat_bound, group_bound, float(global_bound))


async def one_run(
    name: str, notifications: int, chats: int, groups: int, group_messages: int, *, gate_time: bool
) -> bool:
    limits = (
        RateLimits()
    )  # Telegram's: 1/s per private chat after a burst of 3, 20/min per group, 30/s overall
    emulator = BotAPIEmulator(rate_limits=limits)
    await emulator.start()
    chat_ids = [FIRST_CHAT + n for n in range(chats)]
    group_ids = [FIRST_GROUP - n for n in range(groups)]
    for chat_id in chat_ids:
        emulator.add_user(chat_id, f"Manager{chat_id}")
    for group_id in group_ids:
        emulator.add_group(group_id, f"Group {group_id}")
    queued = [(chat_ids[n % chats], f"bench:{n}") for n in range(notifications)]
    queued += [(g, f"group:{k}") for k in range(group_messages) for g in group_ids]
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        bot = emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
        clock = ManualClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
        sender = Sender(bot, db, clock)
        try:
            async with db.transaction() as conn:
                for chat_id, ref in queued:
                    await outbox.put_message(
                        conn, chat_id=chat_id, ref=ref, body=f"Card {ref}", now=clock.now()
                    )
            started = time.perf_counter()
            delivered = await sender.flush()
            elapsed = time.perf_counter() - started
        finally:
            await bot.session.close()
            await db.close()
            await emulator.stop()

    per_chat = [len(range(i, notifications, chats)) for i in range(chats)]
    minimum = minimum_seconds(per_chat, [group_messages] * groups, limits)
    over = (elapsed - minimum) / minimum * 100 if minimum > 0 else 0.0
    timely = elapsed <= minimum * 1.10 + 0.05
    ok = delivered == len(queued) and emulator.count_429 == 0
    print(
        f"{name}: {delivered} of {len(queued)} delivered ({notifications} to {chats} private chats, "
        f"{group_messages} to each of {groups} groups); 429 answers: {emulator.count_429} (target 0); "
        f"{elapsed:.2f} s vs the minimum {minimum:.2f} s ({over:+.1f} %)"
    )
    return ok and (timely or not gate_time)


async def run(notifications: int, chats: int, groups: int, group_messages: int, *, gate_time: bool) -> bool:
    private = await one_run("private chats", notifications, chats, 0, 0, gate_time=gate_time)
    grouped = await one_run("groups", notifications // 3, chats, groups, group_messages, gate_time=gate_time)
    ok = private and grouped
    print(f"{'PASS' if ok else 'FAIL'}: zero 429s and within 10 % of the minimum the limits allow")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notifications", type=int, default=900)
    parser.add_argument("--chats", type=int, default=60)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--group-messages", type=int, default=25, help="per group; over 20 takes a minute")
    parser.add_argument("--small", action="store_true", help="a quick smoke run: 60 notifications")
    args = parser.parse_args()
    if args.small:
        args.notifications, args.chats, args.group_messages = 60, 30, 10
    ok = asyncio.run(
        run(args.notifications, args.chats, args.groups, args.group_messages, gate_time=not args.small)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
