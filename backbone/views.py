"""What the admin commands show of signals: a filtered page of live signals, one signal with its history."""

from __future__ import annotations

import logging

from bot.services import Services
from domain.signals import (
    Signal,
    SignalFilter,
)
from storage import signals as store

log = logging.getLogger(__name__)


async def signal_page(
    services: Services, where: SignalFilter, *, limit: int, offset: int
) -> tuple[list[Signal], int]:
    """Live signals matching the filter, worst and oldest first, and how many there are in all."""
    return await store.list_signals(services.db, where, limit=limit, offset=offset)


async def signal_with_history(
    services: Services, signal_id: int
) -> tuple[Signal, list[store.Decision], dict[int, str]] | None:
    """A signal, every decision taken on it, and the names of the people involved."""
    signal = await store.get_signal(services.db, signal_id)
    if signal is None:
        return None
    decisions = await store.decisions_of_signal(services.db, signal_id)
    people = [signal.acked_by, signal.resolved_by, signal.owner_person]
    people += [int(d.actor) for d in decisions if d.actor.isdigit()]
    return signal, decisions, await store.person_names(services.db, people)
