"""Signals raised in a batch (`raise_signals`, what the SLA sweep uses for its breaches) end up exactly as if
they were raised one at a time: the same rows, routing, pings and arbitration decisions; a dedup key that is
live already, or twice in the batch, updates that signal instead of opening a second one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backbone.signals import SignalRequest, raise_signal, raise_signals
from tests.support.sla_world import LEADS_CHAT, MANAGER_TG, World, local

REQUESTS = [
    SignalRequest("sla.breach", "sla.breach:1", "O1", {"status": "inspection"}, owner_person=MANAGER_TG),
    SignalRequest(
        "sla.breach", "sla.breach:2", "O2", {"status": "accepted"}, owner_person=MANAGER_TG, severity="medium"
    ),
    SignalRequest("order.stuck_72h", "order.stuck_72h:O1", "O1", {"status": "inspection"}),
    SignalRequest("sla.breach", "live", "O3", {"attempt": 2}),  # raised before the batch
    SignalRequest(  # the same key twice
        "sla.breach", "sla.breach:2", "O2", {"again": True}, owner_person=MANAGER_TG, severity="medium"
    ),
]


@pytest.fixture
async def worlds(tmp_path: Path) -> AsyncIterator[tuple[World, World]]:
    made = []
    for name in ("batch", "one_by_one"):
        (tmp_path / name).mkdir()
        w = await World.create(tmp_path / name, local(2, 10))
        await w.add_manager()
        async with w.db.transaction() as conn:
            await raise_signal(
                conn,
                type="sla.breach",
                dedup_key="live",
                now=w.now,
                order_id="O3",
                settings=w.services.settings,
            )
        made.append(w)
    yield made[0], made[1]
    for w in made:
        await w.db.close()


def _signal(row: Any) -> tuple[object, ...]:
    return (
        row.type,
        row.severity,
        row.order_id,
        row.dedup_key,
        row.state,
        row.owner_person,
        row.escalation_level,
        row.deadline_at,
        row.repeats,
        row.details,
        row.ping_chats,
    )


async def test_a_batch_is_stored_and_pinged_as_one_signal_at_a_time(worlds: tuple[World, World]) -> None:
    batch, single = worlds
    async with batch.db.transaction() as conn:
        batch_ids = await raise_signals(conn, REQUESTS, now=batch.now, settings=batch.services.settings)
    single_ids = []
    async with single.db.transaction() as conn:
        for r in REQUESTS:
            single_ids.append(
                await raise_signal(
                    conn,
                    type=r.type,
                    dedup_key=r.dedup_key,
                    now=single.now,
                    order_id=r.order_id,
                    details=r.details,
                    owner_person=r.owner_person,
                    settings=single.services.settings,
                    severity=r.severity,
                )
            )
    assert batch_ids == single_ids
    assert batch_ids[1] == batch_ids[4]  # the key twice in the batch: one signal, repeated
    assert [_signal(s) for s in await batch.signals()] == [_signal(s) for s in await single.signals()]
    for chat in (LEADS_CHAT, MANAGER_TG):
        batch_pings = [(m["ref"], m["body"], m["markup"]) for m in await batch.messages(chat)]
        single_pings = [(m["ref"], m["body"], m["markup"]) for m in await single.messages(chat)]
        assert sorted(batch_pings) == sorted(single_pings) and batch_pings
    # O1 has a breach and a stuck signal: one arbitration decision either way.
    assert [d["signal_id"] for d in await batch.decisions("arbitrate")] == [
        d["signal_id"] for d in await single.decisions("arbitrate")
    ]
