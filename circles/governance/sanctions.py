"""Sanctions screening (AI-GRC): `main.py sanctions import FILE`, screening of new orders when they are
synced, the hold that keeps a hit from dispatch, and the critical signal that asks a human to decide.

- Import: the file is read and checked completely before anything is stored; a malformed list is refused with
  the line and the reason, and the list in force stays. A new list goes in force in one transaction that also
  re-screens every open order against it.
- Screening: the client's and the seller's name of each order, against every name and alias of the list in
  force (domain/sanctions.py). Every screening is stored (order, list version, scores): the coverage KPI.
- A hit at or above the policy's threshold (`[governance] sanctions_threshold`) holds the order (the
  dispatcher skips held orders), is logged with the list entry, the score and the list version, and raises
  `compliance.sanctions_hit` (critical: the crisis chat, the owner and the admins) waiting for a decision:
  approve = a false positive, the order is released to dispatch; reject = the order is cancelled. The same
  order and list entry never hold twice (a cleared false positive stays cleared after a re-import).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bot.config import Settings
from bot.logs import log_event
from circles.governance import review  # noqa: F401 - registers the settler of the requests made here
from domain.sanctions import ListError, Match, NameIndex, parse_list
from storage import governance as store
from storage.db import Database

log = logging.getLogger(__name__)


class Screener:
    """The name index of the list in force, built once per list version and kept while it stays in force."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.index: NameIndex | None = None

    async def current(self, conn: aiosqlite.Connection) -> tuple[str, NameIndex] | None:
        """The index of the list in force (built now if the list changed: seconds for 50,000 entries, so
        callers warm it up outside their write transaction with `warm`)."""
        info = await store.list_in_force(conn)
        if info is None:
            return None
        if info.version != self.version or self.index is None:
            names = await store.list_names(conn, info.version)
            self.index = await asyncio.to_thread(NameIndex.build, names)
            self.version = info.version
        return info.version, self.index

    async def warm(self, conn: aiosqlite.Connection) -> None:
        await self.current(conn)

    def preload(self, version: str, index: NameIndex) -> None:
        self.version, self.index = version, index


@dataclass
class ScreenReport:
    screened: int = 0
    hits: list[tuple[str, str, Match]] = field(default_factory=list)  # (order, party, match) newly held
    list_version: str | None = None


async def screen_orders(
    conn: aiosqlite.Connection,
    parties: Sequence[store.Party],
    now: datetime,
    *,
    screener: Screener,
    threshold: float,
    settings: Settings | None,
) -> ScreenReport:
    """Screen orders' clients and sellers inside the caller's transaction; hold and signal new hits.
    Without a list in force nothing is screened (coverage shows it)."""
    report = ScreenReport()
    loaded = await screener.current(conn) if parties else None
    if loaded is None:
        return report
    version, index = loaded
    report.list_version = version
    rows: list[tuple[str, str, datetime, float | None, float | None, bool]] = []
    found: list[tuple[store.Party, str, str, Match]] = []
    for party in parties:
        client = index.best(party.client, threshold) if party.client else None
        seller = index.best(party.seller, threshold) if party.seller else None
        rows.append(
            (
                party.order_id,
                version,
                now,
                client.score if client else None,
                seller.score if seller else None,
                bool(client or seller),
            )
        )
        for role, name, match in (("client", party.client, client), ("seller", party.seller, seller)):
            if match is not None:
                found.append((party, role, name, match))
    await store.add_screenings(conn, rows)
    report.screened = len(rows)
    if found:
        known = await store.known_holds(conn, sorted({p.order_id for p, _, _, _ in found}))
        for party, role, name, match in found:
            if (party.order_id, match.entry_id) in known:
                continue
            known.add((party.order_id, match.entry_id))
            await _hold(conn, party.order_id, role, name, match, version, now, settings)
            report.hits.append((party.order_id, role, match))
    return report


async def _hold(
    conn: aiosqlite.Connection,
    order_id: str,
    party: str,
    name: str,
    match: Match,
    version: str,
    now: datetime,
    settings: Settings | None,
) -> None:
    # Imported here: the signal texts pull in aiogram (~120 MB), which a sync process needs only for a hit.
    from backbone.signals import request_approval

    hold_id = await store.add_hold(
        conn,
        order_id=order_id,
        party=party,
        name=name,
        entry_id=match.entry_id,
        entry_name=match.entry_name,
        matched_name=match.matched_name,
        score=match.score,
        list_version=version,
        now=now,
    )
    facts = await store.entry_facts(conn, version, match.entry_id)
    signal_id, _ = await request_approval(
        conn,
        action="sanctions_review",
        reason=f"{party} {name!r} matches {match.entry_name!r} ({match.entry_id}) with score {match.score:g}",
        now=now,
        settings=settings,
        order_id=order_id,
        details={
            "party": party,
            "name": name,
            "entry_id": match.entry_id,
            "entry_name": match.entry_name,
            "matched_name": match.matched_name,
            "score": match.score,
            "list_version": version,
            "dataset": facts.get("dataset", ""),
            "sanctions": facts.get("sanctions", ""),
        },
        signal_type="compliance.sanctions_hit",
    )
    await store.set_hold_signal(conn, hold_id, signal_id)
    log_event(
        log,
        "sanctions.hit",
        logging.WARNING,
        order=order_id,
        party=party,
        entry=match.entry_id,
        score=match.score,
        list_version=version,
        signal=signal_id,
    )


# --- import -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    version: str
    entries: int
    changed: bool  # False: this very list was already in force
    screened: int  # open orders re-screened
    hits: int  # new holds


class ListRefused(Exception):
    """A list that was not imported; the list in force stays."""


async def import_list(
    db: Database,
    path: Path,
    now: datetime,
    *,
    threshold: float,
    settings: Settings | None,
    screener: Screener | None = None,
) -> ImportReport:
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise ListRefused(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        parsed = parse_list(data)
    except ListError as exc:
        raise ListRefused(f"{path}: {exc}; the list in force stays") from None
    published = _published(parsed.published)
    screener = screener or Screener()
    # Indexed before the write transaction: the bot's writes wait for it only while the list is stored.
    index = await asyncio.to_thread(NameIndex.build, [(e.id, e.name, e.names) for e in parsed.entries])
    screener.preload(parsed.version, index)
    async with db.transaction() as conn:
        changed = await store.store_list(
            conn,
            version=parsed.version,
            source=path.name,
            datasets=parsed.datasets,
            entries=parsed.entries,
            published=published,
            now=now,
        )
        report = ScreenReport()
        if changed:
            report = await screen_orders(
                conn,
                await store.open_orders_to_screen(conn),
                now,
                screener=screener,
                threshold=threshold,
                settings=settings,
            )
    log_event(
        log,
        "sanctions.imported",
        version=parsed.version,
        entries=len(parsed.entries),
        changed=changed,
        screened=report.screened,
        hits=len(report.hits),
    )
    return ImportReport(parsed.version, len(parsed.entries), changed, report.screened, len(report.hits))


def _published(value: str | None) -> datetime | None:
    """The list's own date (an ISO date or date-time); None when it has none or it is not readable."""
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


async def run_import_command(settings: Settings, path: Path) -> int:
    """`main.py sanctions import FILE`: 0 imported, 2 refused (the message says the line and the reason)."""
    import sys

    from domain.policy import load_policy

    policy = load_policy(settings.policy_file)
    # Not exclusive: an operator imports a list while `run` is running (WAL; one short write transaction).
    db = await Database.open(settings.database_path, exclusive=False)
    try:
        report = await import_list(
            db,
            path,
            datetime.now(UTC),
            threshold=policy.governance.sanctions_threshold,
            settings=settings,
        )
    except ListRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    if not report.changed:
        print(f"sanctions list {report.version} ({report.entries} entries) is already in force")
        return 0
    print(
        f"sanctions list {report.version} in force: {report.entries} entries; "
        f"{report.screened} open orders re-screened, {report.hits} new hits held"
    )
    return 0
