"""Hand-built histories for the KPI and digest tests: services over a real SQLite file, and a writer of
managers, orders with their status events and SLA visits, and signals with their decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.services import Services
from domain.statuses import FINAL_STATUSES, Status
from storage.db import Database, ts
from tests.support.services import services_on

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin, a Monday


def make_services(db: Database, tmp_path: Path, **overrides: Any) -> Services:
    """This history's preset of the one services builder: the shipped policy, at NOW."""
    return services_on(db, tmp_path, now=NOW, **overrides)


class History:
    """Writes a hand-built history: managers, orders with their status events, SLA visits and signals."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def manager(self, manager_id: str, name: str, telegram_id: int, capacity: int = 10) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO managers (id, name, telegram_id, capacity, updated_at) VALUES (?, ?, ?, ?, ?)",
                (manager_id, name, telegram_id, capacity, ts(NOW)),
            )

    async def order(
        self,
        order_id: str,
        steps: list[tuple[Status, datetime]],
        *,
        manager: str | None = None,
        breach_after: timedelta | None = None,
        timers: bool = True,
    ) -> None:
        """An order going through `steps` (status, entered at); each open status gets an SLA visit whose
        breach deadline is `breach_after` after entry (when given)."""
        status, since = steps[-1]
        async with self.db.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO orders (id, status, crm_status, created_at, updated_at, status_since,
                                    assigned_manager_id)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (order_id, status, status, ts(steps[0][1]), ts(since), ts(since), manager),
            )
            previous: Status | None = None
            for n, (step, at) in enumerate(steps):
                await conn.execute(
                    """
                    INSERT INTO order_status_events (order_id, from_status, to_status, actor, source, at)
                    VALUES (?, ?, ?, ?, 'crm', ?)
                    """,
                    (order_id, previous, step, manager or "crm", ts(at)),
                )
                left = steps[n + 1][1] if n + 1 < len(steps) else None
                if timers and step not in FINAL_STATUSES:
                    breach = at + (breach_after or timedelta(days=30))
                    await conn.execute(
                        """
                        INSERT INTO sla_timers (order_id, status, entered_at, policy_version, budget_minutes,
                                                clock, severity, reminder_at, breach_at, stuck_at, closed_at)
                        VALUES (?, ?, ?, 'test', 60, 'calendar', 'high', ?, ?, ?, ?)
                        """,
                        (
                            order_id,
                            step,
                            ts(at),
                            ts(breach),
                            ts(breach),
                            ts(at + timedelta(hours=72)),
                            None if left is None else ts(left),
                        ),
                    )
                previous = step

    async def signal(
        self,
        signal_id: int,
        *,
        raised: datetime,
        resolved: datetime | None = None,
        owner: int | None = None,
        resolution: str | None = None,
        type: str = "sla.breach",
        severity: str = "high",
        acked: bool = False,
        order_id: str | None = None,
        deadline: datetime | None = None,
    ) -> None:
        """A signal: open, acknowledged (`acked`) or resolved (`resolved` given)."""
        state = "resolved" if resolved else "acknowledged" if acked else "open"
        async with self.db.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO ai_signals (id, type, severity, circle, order_id, dedup_key, state, owner_person,
                                        deadline_at, raised_at, raised_by, resolved_at, resolution,
                                        last_seen_at, title)
                VALUES (?, ?, ?, 'sales_ops', ?, ?, ?, ?, ?, ?, 'test', ?, ?, ?, 'x')
                """,
                (
                    signal_id,
                    type,
                    severity,
                    order_id,
                    f"k{signal_id}",
                    state,
                    owner,
                    ts(deadline or raised + timedelta(hours=2)),
                    ts(raised),
                    None if resolved is None else ts(resolved),
                    resolution,
                    ts(raised),
                ),
            )

    async def decision(
        self,
        signal_id: int,
        *,
        action: str,
        at: datetime,
        effect: dict[str, Any] | None = None,
        kind: str = "auto",
    ) -> None:
        """An action taken on a signal, with its observed effect (backbone/decisions.py's shape), if given."""
        async with self.db.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO ai_decisions (signal_id, kind, action, actor, reason, effect, effect_at,
                                          created_at)
                VALUES (?, ?, ?, 'system', 'test', ?, ?, ?)
                """,
                (
                    signal_id,
                    kind,
                    action,
                    None if effect is None else json.dumps(effect),
                    None if effect is None else ts(at + timedelta(hours=1)),
                    ts(at),
                ),
            )
