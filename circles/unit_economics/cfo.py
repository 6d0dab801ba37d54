"""The AI-CFO at work: books each order's margin forecast when it is accepted, checks delivered orders against
the leak rules of the policy after every sync, and tells the owner about each leak — the order, the rule that
fired, the EUR, the causes and a recommended correction. A negative margin is high.

A finding is signalled once per order and rule; a later sync with the same figures raises nothing, a larger
leak (say a second compensation) repeats the signal with the new figures. Leaks on orders delivered before
`signal_days` ago are recorded for the KPIs and /margin without pinging anyone (a first sync of the CRM's
history would otherwise flood the owner).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta

import aiosqlite

from backbone.signals import Routing, raise_signal, render_pings
from bot.logs import log_event
from bot.services import Services
from domain.economics import EconomicsRules, Finding, MoneyOrder, findings
from domain.policy import Policy
from storage import money
from storage import signals as signal_store
from storage.db import Database, ts

log = logging.getLogger(__name__)

SIGNAL_DAYS = 2  # leaks on orders delivered longer ago than this are recorded, not signalled
_CHECKED_KEY = "unit_economics.checked_until"
_SIGNAL_TYPE = {
    "negative_margin": "unit_economics.margin_leak",
    "margin_floor": "unit_economics.margin_leak",
    "under_collection": "unit_economics.under_collection",
}


def rules_of(policy: Policy) -> EconomicsRules:
    p = policy.unit_economics
    return EconomicsRules(
        margin_floor_pct=p.margin_floor_pct,
        usual_shipping_eur=p.usual_shipping_eur,
        shipping_tolerance_eur=p.shipping_tolerance_eur,
        purchase_tolerance_pct=p.purchase_tolerance_pct,
        under_collection_tolerance_eur=p.under_collection_tolerance_eur,
    )


def finding_details(finding: Finding, rules: EconomicsRules) -> dict[str, object]:
    """The facts a leak signal is rendered from (keyboards/circles.py), in any language."""
    return {
        "rule": finding.rule,
        "eur": finding.eur,
        "net": None if finding.net is None else round(finding.net, 2),
        "sale": finding.sale,
        "floor_pct": rules.margin_floor_pct,
        "causes": [asdict(cause) for cause in finding.causes],
        "correction": finding.correction,
    }


async def book_forecasts(services: Services, now: datetime) -> int:
    """Book the forecast of every order accepted since the last run (and of history seen the first time)."""
    async with services.db.transaction() as conn:
        booked = await money.book_forecasts(
            conn, now, usual_shipping_eur=services.policy.unit_economics.usual_shipping_eur
        )
    if booked:
        log_event(log, "unit_economics.forecasts", booked=booked)
    return booked


async def _signal(
    conn: aiosqlite.Connection, services: Services, finding: Finding, rules: EconomicsRules, now: datetime
) -> int:
    settings = services.settings
    high = finding.high
    signal_id = await raise_signal(
        conn,
        type=_SIGNAL_TYPE[finding.rule],
        dedup_key=f"{_SIGNAL_TYPE[finding.rule]}:{finding.order_id}",
        now=now,
        order_id=finding.order_id,
        details=finding_details(finding, rules),
        raised_by="cfo",
        owner_person=settings.owner_id,
        settings=settings,
        policy=services.policy,
        severity="high" if high else "medium",
    )
    routing = Routing.from_settings(settings)
    signal = await signal_store.get_signal(conn, signal_id)
    if signal is not None and routing.contacts.owner_id is not None and high:
        # A high signal goes up to the leads; the money is the owner's: the owner's chat shows it too.
        await render_pings(conn, signal, routing, now, add=routing.contacts.owner())
    return signal_id


async def check_delivered(services: Services, now: datetime) -> list[Finding]:
    """Check every delivered order that changed since the last run against the leak rules; signal what is new
    or got worse. Returns the findings signalled."""
    db = services.db
    rules = rules_of(services.policy)
    watch = timedelta(days=services.policy.unit_economics.watch_days)
    checked = await money.kv_get(db, _CHECKED_KEY)
    since = None if checked is None else datetime.fromisoformat(checked)
    orders = await money.delivered_changed_since(db, since, now - watch)
    found = [(o, f) for o in orders for f in findings(o, rules)]
    known = await money.findings_of(db, {o.order_id for o, _ in found})
    signalled: list[Finding] = []
    async with db.transaction() as conn:
        for order, finding in found:
            before = known.get((finding.order_id, finding.rule))
            if before is not None and round(before, 2) >= finding.eur:
                continue
            fresh = order.delivered_at >= now - timedelta(days=SIGNAL_DAYS)
            signal_id = None
            if fresh or before is not None:
                signal_id = await _signal(conn, services, finding, rules, now)
                signalled.append(finding)
            causes = [asdict(cause) for cause in finding.causes]
            await money.save_finding(
                conn, finding.order_id, finding.rule, finding.eur, causes, now, signal_id
            )
        await money.kv_set(conn, _CHECKED_KEY, ts(now))
    if signalled:
        services.wake_sender()
        log_event(log, "unit_economics.leaks", signalled=len(signalled), checked=len(orders))
    return signalled


async def after_sync(services: Services, now: datetime) -> list[Finding]:
    """What the CFO does after each sync: book new forecasts, then check what was delivered or changed."""
    await book_forecasts(services, now)
    return await check_delivered(services, now)


async def explain(db: Database, order_id: str) -> MoneyOrder | None:
    """The order's margin facts for /margin ORDER."""
    return await money.money_order(db, order_id)
