"""The revenue funnel's KPIs on a hand-computed world of seven leads, and the normal band of a daily rate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from circles.revenue.kpi import revenue_kpis
from domain.funnel import Daily, judge, learn_band
from domain.statuses import Status
from storage.revenue import LeadRow, upsert_leads
from tests.support.order_world import add_order, make_services

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def _lead(
    lead_id: str,
    channel: str,
    created_h: float,
    *,
    checkout_h: float | None = None,
    booking_h: float | None = None,
    order: str | None = None,
    cost: float = 0.0,
) -> LeadRow:
    def at(hours: float | None) -> datetime | None:
        return None if hours is None else MONDAY + timedelta(hours=hours)

    created = MONDAY + timedelta(hours=created_h)
    return LeadRow(lead_id, created, created, channel, at(checkout_h), at(booking_h), order, None, cost)


async def test_funnel_kpis_on_a_hand_computed_world(tmp_path: Path) -> None:
    services = await make_services(tmp_path, now=MONDAY + timedelta(days=1))
    try:
        leads = [
            _lead("L1", "website", 9, checkout_h=10, booking_h=11, order="BW-1", cost=2),
            _lead("L2", "website", 9, checkout_h=10, booking_h=12, cost=2),
            _lead("L3", "website", 10, checkout_h=12, cost=2),
            _lead("L4", "website", 11, cost=2),
            _lead("L5", "instagram", 12, checkout_h=13, booking_h=14, order="BW-5", cost=5),
            _lead("L6", "instagram", 13, cost=5),
            _lead("L7", "referral", -5, checkout_h=2, booking_h=3, order="BW-7"),  # created the day before
        ]
        async with services.db.transaction() as conn:
            await upsert_leads(conn, leads, services.clock.now())
        await add_order(services, "BW-1", status=Status.DELIVERED)
        await services.db.write(
            "UPDATE orders SET sale_eur = 1000, purchase_eur = 700, shipping_eur = 50, fees_eur = 30 "
            "WHERE id = 'BW-1'"
        )
        await services.db.write(
            "INSERT INTO order_status_events (order_id, from_status, to_status, actor, source, at) "
            "VALUES ('BW-1', 'in_transit', 'delivered', 'crm', 'crm', ?)",
            ("2026-11-23T15:00:00.000000Z",),
        )
        kpis = await revenue_kpis(services.db.conn, (MONDAY, MONDAY + timedelta(days=1)))
    finally:
        await services.db.close()

    assert kpis["lead_count"] == 6
    assert kpis["lead_to_order_conversion"] == pytest.approx(2 / 6, abs=1e-4)  # L1, L5 of L1..L6
    assert kpis["checkout_to_booking_conversion"] == 0.8  # L1 L2 L5 L7 booked of L1 L2 L3 L5 L7
    assert kpis["funnel_drop_off"] == {
        "lead_to_checkout": pytest.approx(1 - 4 / 6, abs=1e-4),
        "checkout_to_booking": 0.25,  # 3 of 4 booked
        "booking_to_order": pytest.approx(1 - 2 / 3, abs=1e-4),
    }
    assert kpis["channel_quality_score"] == {"instagram": 150.0, "website": 75.0}  # 1/2 and 1/4 vs 1/3
    assert kpis["cost_per_order_eur"] == {"instagram": 10.0, "website": 8.0}
    assert kpis["gross_margin_by_channel_eur"] == {"website": 220.0}  # 1000 - 700 - 50 - 30


async def test_an_empty_window_gives_none_not_zero(tmp_path: Path) -> None:
    services = await make_services(tmp_path)
    try:
        kpis = await revenue_kpis(services.db.conn, (MONDAY, MONDAY + timedelta(days=1)))
    finally:
        await services.db.close()
    assert kpis["lead_to_order_conversion"] is None and kpis["checkout_to_booking_conversion"] is None
    assert set(kpis["funnel_drop_off"].values()) == {None}


def test_the_band_and_a_day_outside_it() -> None:
    history = [Daily(40, 0.2), Daily(60, 0.25), Daily(100, 0.18)]  # pooled: (8 + 15 + 18) / 200 = 0.205
    band = learn_band(history, 100, sigmas=3, min_width=0.05, min_days=3)
    assert band is not None and band.mean == 0.205
    assert (band.low, band.high) == (round(0.205 - 3 * (0.205 * 0.795 / 100) ** 0.5, 4), 0.3261)
    narrow = learn_band(history, 100_000, sigmas=3, min_width=0.05, min_days=3)
    assert narrow is not None and (narrow.low, narrow.high) == (0.155, 0.255)  # the minimum width wins
    assert learn_band(history[:2], 100, sigmas=3, min_width=0.05, min_days=3) is None

    start = date(2026, 11, 1)
    series = {start + timedelta(days=k): Daily(400, 0.2 + (0.025 if k % 2 else -0.025)) for k in range(20)}
    series[date(2026, 11, 21)] = Daily(400, 0.025)
    series[date(2026, 11, 22)] = Daily(400, 0.0)
    rules = {"history_days": 28, "sigmas": 3.0, "min_width": 0.05, "min_days": 7}
    found = judge(series, date(2026, 11, 22), min_leads=20, **rules)  # type: ignore[arg-type]
    assert found is not None and found.value == 0.0 and found.since == date(2026, 11, 21)
    assert found.by < 0 and found.band.low > 0
    assert judge(series, date(2026, 11, 20), min_leads=20, **rules) is None  # type: ignore[arg-type]
    assert judge(series, date(2026, 11, 22), min_leads=401, **rules) is None  # type: ignore[arg-type]
    assert judge(series, date(2026, 11, 22), min_leads=20, bad="above", **rules) is None  # type: ignore[arg-type]
