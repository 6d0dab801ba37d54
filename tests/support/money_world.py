"""A small hand-computed world for the circles' KPIs: five delivered orders with their prices, payments and
refunds, compensations (one order with two), a dispute, forecasts booked at acceptance and two checklists.

Figures over the 24 h ending at `now` (usual shipping 150, floor 8 %), computed by hand:

| order | sale | purchase | shipping | fees | compensations | net | collected | forecast |
|---|---|---|---|---|---|---|---|---|
| O1 | 1000 | 700 | 100 | 30 | — | 170 | 1000 | 120 |
| O2 | 2000 | 1500 | 200 | 60 | 100 + 150 | −10 | 2000 | 290 |
| O3 | 1500 | 1100 | 150 | 45 | — | 205 | 1500 − 150 refund = 1350 | — |
| O4 | 1200 | (unknown) | 100 | 35 | — | — | 1200 | — |
| O5 | 900 | 600 | 100 | 25 | 50 (10 days ago) | delivered 3 days ago: outside the window |

net margin 170 − 10 + 205 = 365; sales 4500; margin_pct 0.081111; one leak (O2, negative): 0.08 × 2000 + 10 =
170 with two causes (compensation 250, shipping 50); realized_vs_booked 4350 / 4500 = 0.966667;
forecast_accuracy 1 − (50 + 300) / (170 + 10) = −0.944444. Quality: 2 compensations (250 €), 1 dispute (O3) of
4 delivered (0.25), 2 checklists with one frame crack (0.5), repeat incidents: O2's two compensations (same
seller as O5's, 10 days before) of 3 incidents = 0.666667.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.statuses import Status
from storage.db import Database, ts
from tests.support.kpi_history import History

S = Status
EXPECTED_UNIT_ECONOMICS = {
    "net_margin_eur": 365.0,
    "margin_pct": 0.0811,
    "margin_leak_count": 1,
    "margin_leak_eur": 170.0,
    "realized_vs_booked": 0.9667,
    "forecast_accuracy": -0.9444,
    "delivered_orders": 4,
}
EXPECTED_QUALITY = {
    "compensation_count": 2,
    "compensation_eur": 250.0,
    "disputes_opened": 1,
    "dispute_rate": 0.25,
    "severe_defect_share": 0.5,
    "repeat_incident_rate": 0.6667,
}

_ORDERS = {
    # id: (sale, purchase, shipping, fees, seller, model, delivered hours ago)
    "O1": (1000, 700, 100, 30, "Shop A", "Canyon Grizl", 5),
    "O2": (2000, 1500, 200, 60, "Shop B", "Trek Rail", 3),
    "O3": (1500, 1100, 150, 45, "Shop C", "Cube Attain", 2),
    "O4": (1200, None, 100, 35, "Shop D", "Giant Trance", 1),
    "O5": (900, 600, 100, 25, "Shop B", "YT Capra", 72),
}


async def build(db: Database, now: datetime) -> None:
    history = History(db)
    await history.manager("m1", "Anna Petrova", 1001)
    h = timedelta(hours=1)
    for order_id, (sale, purchase, shipping, fees, seller, model, ago) in _ORDERS.items():
        delivered = now - ago * h
        steps = [(S.PENDING_MANAGER, delivered - 30 * h), (S.ACCEPTED, delivered - 29 * h)]
        await history.order(order_id, [*steps, (S.DELIVERED, delivered)], manager="m1")
        brand, _, name = model.partition(" ")
        async with db.transaction() as conn:
            await conn.execute(
                "UPDATE orders SET sale_eur = ?, purchase_eur = ?, shipping_eur = ?, fees_eur = ?,"
                " seller = ?, bike_brand = ?, bike_model = ?, channel = 'website', synced_at = ?"
                " WHERE id = ?",
                (sale, purchase, shipping, fees, seller, brand, name, ts(now), order_id),
            )
            await conn.execute(
                "INSERT INTO order_payments VALUES (?, 'p1', ?, 'payment', ?)",
                (order_id, sale, ts(delivered - 28 * h)),
            )
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO order_compensations VALUES (?, ?, ?, ?, ?)",
            [
                ("O2", "c1", 100, "scratch", ts(now - 2 * h)),
                ("O2", "c2", 150, "late", ts(now - h)),
                ("O5", "c1", 50, "scratch", ts(now - 240 * h)),
            ],
        )
        await conn.execute("INSERT INTO order_payments VALUES ('O3', 'r1', 150, 'refund', ?)", (ts(now - h),))
        await conn.execute(
            "INSERT INTO order_disputes VALUES ('O3', 'd1', ?, NULL, NULL)",
            (ts(now - timedelta(minutes=30)),),
        )
        for order_id, forecast, purchase in (("O1", 120, 700), ("O2", 290, 1500)):
            await conn.execute(
                "INSERT INTO margin_forecasts VALUES (?, ?, 'accepted', 0, ?, 150, 0, ?)",
                (order_id, ts(now - 20 * h), purchase, forecast),
            )
        for order_id, fail in (("O1", False), ("O2", True)):
            await conn.execute(
                "INSERT INTO checklist_sessions (order_id, telegram_id, opened_at, submitted_at)"
                " VALUES (?, 1001, ?, ?)",
                (order_id, ts(now - 10 * h), ts(now - 9 * h)),
            )
            await conn.execute(
                "INSERT INTO checklist_answers VALUES (?, 4, ?, 'crack', 1001, ?)",
                (order_id, "fail" if fail else "pass", ts(now - 9 * h)),
            )
