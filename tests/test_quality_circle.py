"""The Head of Quality on the hand-computed world: a dispute opened and the repeat incidents are signals to
the leads, each once; a compensation the team wants to pay waits for an admin's approval and changes
nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.services import Services
from circles.quality.watch import request_compensation, watch
from storage.db import Database
from tests.support.kpi_history import NOW, make_services
from tests.support.money_world import build

LEADS_CHAT, ADMIN = -1001, 100


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    db = await Database.open(tmp_path / "bot.db")
    await build(db, NOW)
    yield make_services(db, tmp_path, LEADS_CHAT_ID=LEADS_CHAT, ADMIN_IDS=str(ADMIN))
    await db.close()


async def test_a_dispute_and_repeat_incidents_are_signals_to_the_leads_once(services: Services) -> None:
    raised = await watch(services, NOW)
    assert sorted((rule, i.order_id, i.id) for rule, i in raised) == [
        ("dispute_opened", "O3", "d1"),
        ("repeat_incident", "O2", "c1"),  # Shop B had O5's compensation ten days before
        ("repeat_incident", "O2", "c2"),
    ]
    rows = await services.db.fetchall(
        "SELECT type, order_id, ping_chats, details FROM ai_signals ORDER BY id"
    )
    assert {(r["type"], r["order_id"]) for r in rows} == {
        ("quality.dispute_opened", "O3"),
        ("quality.repeat_incident", "O2"),
    }
    assert all(json.loads(r["ping_chats"]) == [LEADS_CHAT] for r in rows)
    assert json.loads(rows[0]["details"])["seller"] in ("Shop B", "Shop C")
    assert await watch(services, NOW) == []  # the next minute: nothing new


async def test_a_compensation_waits_for_an_admin(services: Services) -> None:
    signal_id, decision_id = await request_compensation(
        services, order_id="O2", amount_eur=80, reason="scratch on the top tube", requested_by="m1", now=NOW
    )
    (signal,) = await services.db.fetchall("SELECT type, needs_decision, ping_chats FROM ai_signals")
    assert (signal["type"], signal["needs_decision"]) == ("decision.approval_needed", 1)
    assert ADMIN in json.loads(signal["ping_chats"])
    (decision,) = await services.db.fetchall("SELECT id, action, state, details FROM ai_decisions")
    assert (decision["id"], decision["action"], decision["state"]) == (
        decision_id,
        "compensation",
        "pending_approval",
    )
    assert json.loads(decision["details"])["amount_eur"] == 80
    # Nothing was paid or written: the order's compensations and the CRM outbox are as they were.
    assert len(await services.db.fetchall("SELECT 1 FROM order_compensations WHERE order_id = 'O2'")) == 2
    assert await services.db.fetchall("SELECT 1 FROM crm_outbox") == []
    assert signal_id > 0
