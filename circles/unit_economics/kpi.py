"""The unit-economics KPIs of SPEC §14 over a window, and the net margin per day for the owner's chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from circles.unit_economics.cfo import rules_of
from domain.economics import EconomicsRules, Finding, MoneyOrder, UnitEconomics, top_leaks, unit_economics
from domain.kpi import Window
from domain.policy import Policy
from storage import money
from storage.db import Database


async def delivered(db: Database, window: Window) -> list[MoneyOrder]:
    return await money.delivered_orders(db, window)


async def unit_economics_report(db: Database, policy: Policy, window: Window) -> UnitEconomics:
    return unit_economics(await delivered(db, window), rules_of(policy))


async def unit_economics_json(db: Database, policy: Policy, window: Window) -> dict[str, object]:
    return dict((await unit_economics_report(db, policy, window)).as_json())


@dataclass(frozen=True)
class MarginDay:
    day: date
    net_margin_eur: float | None  # None: nothing priced was delivered that day


def margin_days(
    orders: Sequence[MoneyOrder], ends: Sequence[tuple[date, datetime]], rules: EconomicsRules
) -> list[MarginDay]:
    """Net margin per day, each day being the 24 h ending at its digest time (`ends`, in order)."""
    result = []
    for day, end in ends:
        window = Window(end - timedelta(days=1), end)
        inside = [o for o in orders if o.delivered_at in window]
        result.append(MarginDay(day, unit_economics(inside, rules).net_margin_eur))
    return result


@dataclass(frozen=True)
class MoneySection:
    """What the owner's morning digest says about money."""

    today: UnitEconomics
    yesterday: UnitEconomics
    baseline_per_day: float | None  # mean net margin of the baseline days (None: no such days)
    leaks: list[Finding]  # the top three leaks of the last 24 h
    days: list[MarginDay]  # the chart: net margin per day


async def money_section(
    db: Database, policy: Policy, ends: Sequence[tuple[date, datetime]], baseline_ends: Sequence[datetime]
) -> MoneySection:
    """`ends`: (day, digest instant) of the chart's days, the last being today; `baseline_ends`: the digest
    instants of the baseline days (read apart only when they lie before the chart's days)."""
    rules = rules_of(policy)
    last = ends[-1][1]
    orders = await delivered(db, Window(ends[0][1] - timedelta(days=1), last))
    days = margin_days(orders, ends, rules)
    base_orders = orders
    if baseline_ends and (baseline_ends[0] - timedelta(days=1) < ends[0][1] - timedelta(days=1)):
        base_orders = await delivered(db, Window(baseline_ends[0] - timedelta(days=1), baseline_ends[-1]))
    base = margin_days(base_orders, [(end.date(), end) for end in baseline_ends], rules)
    known = [d.net_margin_eur for d in base if d.net_margin_eur is not None]
    today_window = Window(last - timedelta(days=1), last)
    yesterday_window = Window(last - timedelta(days=2), last - timedelta(days=1))
    today = [o for o in orders if o.delivered_at in today_window]
    yesterday = [o for o in orders if o.delivered_at in yesterday_window]
    return MoneySection(
        today=unit_economics(today, rules),
        yesterday=unit_economics(yesterday, rules),
        baseline_per_day=sum(known) / len(known) if known else None,
        leaks=top_leaks(today, rules),
        days=days,
    )
