"""Carrying out what waited for an admin (SPEC §6): once `/decide ID approve|reject` (or the ping's button)
settles a request, the settler registered for the request's action does what was approved, or puts things
back after a reject, inside the same transaction. Circles register their settlers (`register_settler`); the
backbone's commands call `settle`. The cancel's settler lives with the orders (circles/sales_ops/orders.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import aiosqlite

from bot.logs import log_event
from bot.services import Services
from storage import signals as store

log = logging.getLogger(__name__)

Note = Literal["carried_out", "rejected", "moved_on"]


@dataclass(frozen=True)
class Verdict:
    """The admin's answer to a request."""

    approved: bool
    by: int  # the admin's Telegram id
    comment: str


@dataclass(frozen=True)
class Settled:
    """What settling did: the signal's resolution, a note for the admin's answer, and the people already told
    (so the generic "your signal was resolved" notice does not reach them twice)."""

    resolution: str
    note: Note
    told: frozenset[int] = field(default_factory=frozenset)


def coded(code: Literal["approved", "rejected", "moot"], comment: str = "") -> str:
    """A settled request's resolution: a code the texts translate, then the admin's own words if any."""
    return f"{code}: {comment}" if comment else code


Settler = Callable[[aiosqlite.Connection, Services, store.Decision, Verdict, datetime], Awaitable[Settled]]


async def settle(
    conn: aiosqlite.Connection, services: Services, request: store.Decision, verdict: Verdict, now: datetime
) -> Settled | None:
    """Carry out (or put back after a reject) the request; None for an action with no settler here."""
    settler = _SETTLERS.get(request.action)
    if settler is None:
        return None
    settled = await settler(conn, services, request, verdict, now)
    log_event(log, "approval.settled", request=request.id, action=request.action, note=settled.note)
    return settled


def register_settler(action: str, settler: Settler) -> None:
    """A circle declares how an approved (or rejected) request of `action` is carried out. The circle's module
    that creates such requests registers it at import, so a request can never exist without its settler."""
    _SETTLERS[action] = settler


_SETTLERS: dict[str, Settler] = {}
