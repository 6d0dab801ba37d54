"""The unit-economics KPIs of SPEC §14 over a window, and the net margin per day for the owner's chart."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from circles.unit_economics.cfo import rules_of
from domain.economics import Finding, MoneyOrder, UnitEconomics, top_leaks, unit_economics
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
    nets: Sequence[tuple[datetime, float]], ends: Sequence[tuple[date, datetime]]
) -> list[MarginDay]:
    """Net margin per day, each day being the 24 h ending at its digest time (`ends`, in order); `nets` =
    (delivered at, net) of the priced orders, oldest first. A day without one is None, not 0."""
    instants = [at for at, _ in nets]
    result = []
    for day, end in ends:
        first = bisect.bisect_left(instants, end - timedelta(days=1))
        last = bisect.bisect_left(instants, end)
        result.append(MarginDay(day, sum(net for _, net in nets[first:last]) if last > first else None))
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
    instants of the baseline days. Per-day margins read only (delivered at, net) pairs; the full orders are
    read for the last two days alone."""
    rules = rules_of(policy)
    last = ends[-1][1]
    nets = await money.delivered_nets(db, Window(ends[0][1] - timedelta(days=1), last))
    days = margin_days(nets, ends)
    base_nets = nets
    if baseline_ends and baseline_ends[0] < ends[0][1]:
        base_nets = await money.delivered_nets(
            db, Window(baseline_ends[0] - timedelta(days=1), baseline_ends[-1])
        )
    base = margin_days(base_nets, [(end.date(), end) for end in baseline_ends])
    known = [d.net_margin_eur for d in base if d.net_margin_eur is not None]
    orders = await delivered(db, Window(last - timedelta(days=2), last))
    today_window = Window(last - timedelta(days=1), last)
    today = [o for o in orders if o.delivered_at in today_window]
    yesterday = [o for o in orders if o.delivered_at not in today_window]
    return MoneySection(
        today=unit_economics(today, rules),
        yesterday=unit_economics(yesterday, rules),
        baseline_per_day=sum(known) / len(known) if known else None,
        leaks=top_leaks(today, rules),
        days=days,
    )
