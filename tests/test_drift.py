"""Process drift: status changes made in the CRM (POST /sim/orders/{id}/status) that our process forbids are
each seen once, stored with the rule, raised to the admins naming the order and the rule, and counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from circles.governance.drift import detect_drift
from circles.governance.kpi import governance_kpis
from domain.governance import Change, drift_rules
from domain.statuses import Status
from tests.support.crm_world import crm_world
from tests.support.order_world import ADMIN, rows


def test_the_rules_of_the_documented_process() -> None:
    def rules(
        before: Status | None, after: Status, *, complete: bool = False, approved: bool = False
    ) -> list[str]:
        return list(drift_rules(Change(before, after, complete, approved)))

    assert rules(Status.PENDING_MANAGER, Status.ACCEPTED) == []
    assert rules(Status.PENDING_MANAGER, Status.INSPECTION) == ["forbidden_transition"]
    assert rules(Status.AWAITING_CLIENT, Status.ACCEPTED) == ["status_back"]
    assert rules(Status.DELIVERED, Status.IN_TRANSIT) == ["forbidden_transition"]
    assert rules(Status.INSPECTION, Status.AWAITING_CLIENT) == ["checklist_incomplete"]
    assert rules(Status.INSPECTION, Status.AWAITING_CLIENT, complete=True) == []
    assert rules(Status.ACCEPTED, Status.CANCELLED) == ["cancel_unapproved"]
    assert rules(Status.ACCEPTED, Status.CANCELLED, approved=True) == []
    assert rules(None, Status.PENDING_MANAGER) == []


async def test_forbidden_moves_in_the_crm_are_drift_signalled_to_the_admins(tmp_path: Path) -> None:
    async with crm_world(tmp_path) as world:
        start = world.clock.now()
        order = (await world.post("/sim/orders", {}))["id"]
        await world.sync()
        assert (await detect_drift(world.services, world.clock.now())).drift == []

        for status in ("inspection", "awaiting_client", "accepted", "cancelled"):
            world.clock.advance(timedelta(minutes=5))
            await world.post(f"/sim/orders/{order}/status", {"status": status, "actor": "crm-user-7"})
        await world.sync()
        report = await detect_drift(world.services, world.clock.now())
        assert report.drift == [
            (order, "forbidden_transition"),  # pending_manager -> inspection skips accepted
            (order, "checklist_incomplete"),  # inspection -> awaiting_client with no checklist
            (order, "status_back"),  # awaiting_client -> accepted
            (order, "cancel_unapproved"),  # accepted -> cancelled, nobody approved
        ]
        again = await detect_drift(world.services, world.clock.now())
        assert again.drift == [] and again.seen == 0

        signals = await rows(
            world.services, "SELECT * FROM ai_signals WHERE type = 'governance.process_drift' ORDER BY id"
        )
        assert len(signals) == 4 and {s["order_id"] for s in signals} == {order}
        assert all(str(ADMIN) in s["ping_chats"] and s["owner_person"] == ADMIN for s in signals)
        assert '"rule": "status_back"' in signals[2]["details"]
        kpis = await governance_kpis(
            world.services.db.conn, (start, world.clock.now() + timedelta(seconds=1))
        )
        assert kpis["doc_to_process_drift_count"] == 4
        assert kpis["compliance_risk_count"] == 4  # open compliance signals
