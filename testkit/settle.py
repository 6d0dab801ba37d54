"""Waiting for a running bot (BotApp) against the Bot API emulator to be quiet: every update the emulator has
queued handled, and every message that is due delivered. The test harness and the benchmarks wait with it."""

from __future__ import annotations

import asyncio

from bot.app import BotApp
from storage import messages as outbox
from testkit.emulator import BotAPIEmulator


async def settle(
    app: BotApp,
    emulator: BotAPIEmulator,
    *,
    polling: bool = True,
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline for the whole wait, not for one call
) -> None:
    """Return when the bot is quiet; raise TimeoutError (with what is still going on) otherwise. `polling`:
    the bot takes the emulator's updates (else only what is already in flight counts)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def updates_handled() -> bool:
        taken = not polling or not emulator.pending_updates
        return taken and app.tracker.in_flight == 0

    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(
                f"settle: not quiet after {timeout}s; updates pending in the emulator: "
                f"{len(emulator.pending_updates)}, updates in flight: {app.tracker.in_flight}, "
                f"sender busy: {app.sender.busy}"
            )
        # Wakes on every Bot API call; the short recheck covers the tracker the emulator cannot see.
        await emulator.wait_for(updates_handled, timeout=remaining, recheck_every=0.01)
        await asyncio.wait_for(app.sender.flush(), max(deadline - loop.time(), 0.001))
        due = await outbox.chats_with_due_messages(app.services.db, app.clock.now(), limit=1)
        if updates_handled() and not app.sender.busy and not due:
            return
