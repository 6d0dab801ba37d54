"""Reassigning a signal about an order moves the order too (issue 12). The sales operations circle registers
how an order is handed over (`register_order_mover`, circles/sales_ops/handover.py); the backbone's
reassign command calls `move_order` inside its transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import aiosqlite

from bot.services import Services

# (conn, services, order id, manager id, actor, reason, now) -> whether the order moved
OrderMover = Callable[[aiosqlite.Connection, Services, str, str, str, str, datetime], Awaitable[bool]]

_MOVERS: list[OrderMover] = []


def register_order_mover(mover: OrderMover) -> None:
    """The circle that owns orders declares how one is handed over; registered at import, once."""
    if mover not in _MOVERS:
        _MOVERS.append(mover)


async def move_order(
    conn: aiosqlite.Connection,
    services: Services,
    order_id: str,
    manager_id: str,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> bool:
    """Hand the order over to `manager_id`; False when nothing moved (no mover, or the order cannot move)."""
    for mover in _MOVERS:
        if await mover(conn, services, order_id, manager_id, actor, reason, now):
            return True
    return False
