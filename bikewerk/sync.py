"""The sync from the BikeWerk CRM into SQLite (SPEC §10), and `main.py sync [--once]`.

One run (`Syncer.sync_once`) reads managers, then the status events, then the changed orders, then the
changed leads, then a workspace snapshot. Events come before orders so that an order whose status changed
finds the instant it entered the new status among the stored events: its SLA visit starts then, not when the
sync noticed. New orders are screened against the sanctions list in force as they are stored
(circles/governance/sanctions.py); every run and the client's request latencies are stored (sync_runs,
api_latency) for the reliability circle.

Pages are fetched and validated by one task while another stores them, so network, JSON decoding and SQLite
overlap. Each store is one transaction: the records go in with a few batch statements, queued together, and
the feed's cursor moves in the same commit, so a run that stops half-way resumes after the last stored page
and nothing is stored twice. When the store is the slower side, the pages already waiting are stored together
in one transaction (up to `batch_records` records): with an index filled in random order (status events by
time, or by order), a commit per 5,000 rows rewrites most of that index into the WAL each time; grouping makes
a first sync of a million events several times faster. Requests are retried with backoff by the client.

A record that breaks the contract (bad shape, unknown status, a Telegram id claimed twice) is kept aside in
contract_violations with its reason and raises a `sync.contract_violation` signal; the rest is stored.

What the bot owns stays the bot's: the manager it assigned, and its status while a status write to the CRM
is still unacknowledged (the CRM shows the old status until then). A CRM event echoing a change made in the
bot is attached to the bot's event instead of being stored twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import aiosqlite

from bikewerk import contract
from bikewerk.client import BikeWerkClient, BikeWerkContractError, BikeWerkError, BikeWerkHTTPError
from bikewerk.contract import Page, Rejected
from bikewerk.leads import iter_leads, lead_row
from bikewerk.mapping import lists as money_lists
from bikewerk.mapping import manager, mirror, telegram_claims
from bikewerk.sync_health import SOURCES, record_sync_run
from bot.clock import Clock
from bot.config import Settings
from bot.logs import log_event
from circles.governance.sanctions import Screener, screen_orders
from domain.calendar import WorkingCalendar
from domain.policy import Policy
from domain.sla import VisitDeadlines, plan_visit
from domain.statuses import OPEN_STATUSES, Status, StatusMap, UnknownStatus
from storage import crm, money
from storage.db import Database, bulk_work
from storage.governance import Party
from storage.instants import ts_many
from storage.money import OrderLists
from storage.reliability import SyncRun, add_sync_run
from storage.revenue import upsert_leads
from storage.timers import open_visits_bulk

log = logging.getLogger(__name__)

ORDERS_CURSOR = "orders"
EVENTS_CURSOR = "order_status_events"
LEADS_CURSOR = "leads"
PAGE_SIZE = 5000
BATCH_RECORDS = 50_000  # status events stored in one transaction at most
ORDER_WEIGHT = 5  # an order holds about as much memory as five events: its batches are five times smaller

M = TypeVar("M")
R = TypeVar("R")


@dataclass
class SyncReport:
    started_at: datetime
    finished_at: datetime | None = None
    managers: int = 0  # manager records stored
    orders: int = 0  # order records stored (new or refreshed)
    events: int = 0  # CRM status events stored for the first time
    pages: int = 0
    violations: int = 0  # records kept aside
    new_order_ids: list[str] = field(default_factory=list)
    changed_order_ids: list[str] = field(default_factory=list)  # status changed in the CRM
    workspace: bool = False  # a workspace snapshot was stored
    leads: int = 0  # lead records stored (new or refreshed)
    error: str | None = None  # why the run stopped early; what was stored before stays

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def idle(self) -> bool:
        """Nothing changed: no order, event or record kept aside (such a run logs at DEBUG only)."""
        changed = self.orders or self.events or self.leads or self.violations
        return not (changed or self.new_order_ids or self.changed_order_ids)


@dataclass(frozen=True)
class SyncProgress:
    stage: str  # managers | order_status_events | orders | leads | workspace
    pages: int
    records: int  # records received in this stage so far
    seconds: float  # since the stage started
    done: bool = False  # the stage's last report


Progress = Callable[[SyncProgress], None]


@dataclass
class _Chunk(Generic[R]):
    """Pages ready to store: their rows, their rejected records and the feed position after the last one."""

    rows: list[R]
    rejected: list[Rejected]
    received: int
    position: str
    pages: int = 1
    lists: dict[str, OrderLists] = field(default_factory=dict)  # orders: compensations, disputes, payments

    def merge(self, later: _Chunk[R]) -> _Chunk[R]:
        return _Chunk(
            self.rows + later.rows,
            self.rejected + later.rejected,
            self.received + later.received,
            later.position,
            self.pages + later.pages,
            {**self.lists, **later.lists},
        )


async def _together(*steps: Awaitable[Any]) -> list[Any]:
    """Run storage steps of one transaction side by side; their results in order.

    aiosqlite runs a connection's statements one after another in its thread, in the order they were queued,
    and the steps start (and queue their first statement) in the order given. So the thread runs them back to
    back, without waiting, between statements, for the event loop (which may be validating a page for tens
    of milliseconds). The steps must not depend on each other. A failure is raised once every step is over,
    so that no statement of a later step runs after the transaction is rolled back.
    """
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class Syncer:
    """Pulls the CRM into the store. One run at a time; safe to call again after a failure."""

    def __init__(
        self,
        db: Database,
        client: BikeWerkClient,
        policy: Policy,
        calendar: WorkingCalendar,
        clock: Clock,
        *,
        settings: Settings | None = None,
        wake_sender: Callable[[], None] | None = None,
        page_size: int = PAGE_SIZE,
        batch_records: int = BATCH_RECORDS,
        progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.policy = policy
        self.calendar = calendar
        self.clock = clock
        self.settings = settings  # routes signals; without it the escalation sweep routes them
        self.page_size = page_size
        self.batch_records = batch_records
        self._wake = wake_sender or (lambda: None)
        self.last_report: SyncReport | None = None  # the last full run (health, metrics)
        self.last_ok_at: datetime | None = None  # when the last successful full run ended
        self.failures = 0  # full runs that stopped early
        self._progress = progress or (lambda _: None)
        self._status_map = StatusMap(policy.crm_status_aliases)
        self._known_statuses: dict[str, Status] = {}
        self._lock = asyncio.Lock()
        self.screener = Screener()  # the sanctions list's name index, rebuilt when a new list is in force
        self._dirty: set[str] = set()  # sources that kept records aside in the current run

    async def sync_once(self) -> SyncReport:
        async with self._lock:
            report = SyncReport(started_at=self.clock.now())
            with bulk_work():  # pages are validated while the ones before them are stored
                reached = await self._run_stages(
                    report,
                    ("managers", self._sync_managers),
                    ("order_status_events", self._sync_events),
                    ("orders", self._sync_orders),
                    ("leads", self._sync_leads),
                    ("workspace", self._snapshot_workspace),
                )
            self.last_report = report
            if report.ok:
                self.last_ok_at = report.finished_at
            else:
                self.failures += 1
            await self._record_run(report)
            await self._record_health(reached, () if report.error else set(SOURCES) - self._dirty)
            log_event(
                log,
                "sync.finished" if report.ok else "sync.failed",
                logging.WARNING if not report.ok else logging.DEBUG if report.idle else logging.INFO,
                managers=report.managers,
                orders=report.orders,
                new_orders=len(report.new_order_ids),
                changed_orders=len(report.changed_order_ids),
                events=report.events,
                violations=report.violations,
                pages=report.pages,
                error=report.error,
            )
            return report

    async def _record_run(self, report: SyncReport) -> None:
        """The run and the client's latency records, stored for the reliability circle."""
        assert report.finished_at is not None
        run = SyncRun(
            report.started_at,
            report.finished_at,
            report.ok,
            report.error,
            orders=report.orders,
            events=report.events,
            leads=report.leads,
            violations=report.violations,
        )
        timed = [(t.at, t.route, t.ms, t.ok) for t in self.client.take_latencies()]
        async with self.db.transaction() as conn:
            await add_sync_run(conn, run, timed)

    async def sync_order(self, order_id: str) -> SyncReport:
        """Read one order the CRM pushed (`POST /crm/events`) and store it through the same code as a sync
        page: the new status events first (so a changed status starts its SLA visit when it happened), then
        the order, validated, mapped and upserted like any other; the orders cursor stays where it is, so the
        periodic sync still reads the order again (and finds nothing to change). An order the CRM does not
        know, or one that breaks the contract, is kept aside and changes nothing."""
        async with self._lock:
            report = SyncReport(started_at=self.clock.now())
            await self._run_stages(
                report,
                ("order_status_events", self._sync_events),
                ("orders", lambda r: self._store_pushed_order(order_id, r)),
            )
            log_event(
                log,
                "sync.order" if report.ok else "sync.order_failed",
                logging.INFO if report.ok else logging.WARNING,
                order=order_id,
                new=bool(report.new_order_ids),
                changed=bool(report.changed_order_ids),
                violations=report.violations,
                error=report.error,
            )
            return report

    async def _run_stages(
        self, report: SyncReport, *stages: tuple[crm.ViolationSource, Callable[[SyncReport], Awaitable[None]]]
    ) -> bool:
        """Run the stages in order; the first failure ends the run (what was stored before stays). False when
        the CRM could not be reached."""
        self._dirty = set()
        reached = True
        for source, stage in stages:
            try:
                await stage(report)
            except BikeWerkContractError as exc:
                # A whole answer off the contract (not JSON, no page): kept aside; the next run retries.
                report.error = str(exc)
                await self._keep_aside_answer(source, exc, report)
                break
            except BikeWerkError as exc:
                report.error = str(exc)
                reached = False
                break
        report.finished_at = self.clock.now()
        return reached

    async def _store_pushed_order(self, order_id: str, report: SyncReport) -> None:
        try:
            page = await self.client.order(order_id)
        except BikeWerkHTTPError as exc:
            if exc.status != 404:
                raise
            report.error = str(exc)
            reason = f"pushed order {order_id} is unknown to the CRM"
            await self.keep_aside("crm_events", order_id, reason, json.dumps({"id": order_id}), report)
            return
        chunk = self._prepare_orders(page, set(await crm.manager_telegram_ids(self.db.reader)))
        await self._store_orders(chunk, report, move_cursor=False)

    async def keep_aside(
        self,
        source: crm.ViolationSource,
        record_id: str | None,
        reason: str,
        raw: str,
        report: SyncReport | None = None,
    ) -> None:
        """Keep one record aside (a push that breaks the contract, say) like a sync record."""
        report = report or SyncReport(started_at=self.clock.now())
        async with self.db.transaction() as conn:
            raised = await self._keep_aside(
                conn, source, [Rejected(record_id, reason, raw)], self.clock.now(), report
            )
        self._after_commit(raised)

    def _status(self, name: str) -> Status:
        """The canonical status of a CRM status name (UnknownStatus if none); names seen are remembered."""
        status = self._known_statuses.get(name)
        if status is None:
            status = self._known_statuses[name] = self._status_map(name)
        return status

    # --- managers ------------------------------------------------------------------------------------------

    async def _sync_managers(self, report: SyncReport) -> None:
        started = time.monotonic()
        page = await self.client.managers()
        latest = {m.id: m for m in page.records}  # the last record of a manager repeated in the list wins
        now = self.clock.now()
        async with self.db.transaction() as conn:
            stored = await crm.manager_telegram_ids(conn)
            accepted, claims = telegram_claims(latest.values(), stored)
            await crm.upsert_managers(conn, [manager(m) for m in accepted], now)
            raised = await self._keep_aside(conn, "managers", [*page.rejected, *claims], now, report)
        report.managers += len(accepted)
        report.pages += 1
        self._after_commit(raised)
        self._progress(SyncProgress("managers", 1, page.received, time.monotonic() - started, done=True))

    # --- status events -------------------------------------------------------------------------------------

    async def _sync_events(self, report: SyncReport) -> None:
        since = int(await crm.get_cursor(self.db.reader, EVENTS_CURSOR) or 0)
        async with self.db.transaction() as conn:
            first_load = await crm.prepare_event_load(conn)
        try:
            await self._pump(
                EVENTS_CURSOR,
                self.client.iter_events(since_id=since, limit=self.page_size),
                self._prepare_events,
                lambda chunk: self._store_events(chunk, report),
                report,
                batch=self.batch_records,
            )
        finally:
            if first_load:  # the orders stage reads the events by order: the indexes are back before it
                async with self.db.transaction() as conn:
                    await crm.finish_event_load(conn)

    def _prepare_events(self, page: Page[contract.StatusEvent]) -> _Chunk[str]:
        """A page's events as `crm.CrmEvent` rows encoded in JSON: encoded here, in the fetching task, while
        the store works on the pages before; as text, the pages waiting also take a third of the memory."""
        rows: list[crm.CrmEvent] = []
        rejected = list(page.rejected)
        known = self._known_statuses  # the hot loop of a first sync: a dict lookup before the full mapping
        for e, at in zip(page.records, ts_many([e.at for e in page.records]), strict=True):
            try:
                from_status = (
                    None if e.from_status is None else known.get(e.from_status) or self._status(e.from_status)
                )
                to_status = known.get(e.to_status) or self._status(e.to_status)
            except UnknownStatus as exc:
                rejected.append(Rejected.of(contract.as_json(e), str(exc)))
                continue
            rows.append((e.id, e.order_id, from_status, to_status, e.actor, at))
        return _Chunk([crm.encode_events(rows)], rejected, page.received, page.position)

    async def _store_events(self, chunk: _Chunk[str], report: SyncReport) -> None:
        now = self.clock.now()
        pages = chunk.rows
        async with self.db.transaction() as conn:
            waiting = await crm.unconfirmed_bot_events(conn)
            echoes: list[tuple[int, int]] = []
            if waiting:  # rare: read the rows back to find the echoes among them
                fresh: list[crm.CrmEvent] = []
                for page in pages:
                    for event in json.loads(page):
                        crm_event_id, order_id, _, to_status, _, _ = event
                        ours = waiting.get((order_id, to_status))
                        if ours:
                            echoes.append((crm_event_id, ours.pop(0)))
                        else:
                            fresh.append(event)
                pages = [crm.encode_events(fresh)]
            _, inserted, _ = await _together(
                crm.confirm_bot_events(conn, echoes),
                crm.insert_encoded_events(conn, pages),
                crm.set_cursor(conn, EVENTS_CURSOR, chunk.position, now),
            )
            report.events += inserted
            raised = await self._keep_aside(conn, "order_status_events", chunk.rejected, now, report)
        self._after_commit(raised)

    # --- orders --------------------------------------------------------------------------------------------

    async def _sync_orders(self, report: SyncReport) -> None:
        await self.screener.warm(self.db.reader)  # a new sanctions list is indexed before any transaction
        cursor = await crm.get_cursor(self.db.reader, ORDERS_CURSOR)
        known_managers = set(await crm.manager_telegram_ids(self.db.reader))
        await self._pump(
            ORDERS_CURSOR,
            self.client.iter_orders(cursor=cursor, limit=self.page_size),
            lambda page: self._prepare_orders(page, known_managers),
            lambda chunk: self._store_orders(chunk, report),
            report,
            batch=self.batch_records // ORDER_WEIGHT,
        )

    def _prepare_orders(
        self, page: Page[contract.Order], known_managers: set[str]
    ) -> _Chunk[crm.MirrorOrder]:
        """Orders as the CRM shows them; `_store_orders` settles status, status_since and the manager."""
        rows: list[crm.MirrorOrder] = []
        kept: list[contract.Order] = []
        rejected = list(page.rejected)
        for o in page.records:
            try:
                status = self._status(o.status)
            except UnknownStatus as exc:
                rejected.append(Rejected.of(contract.as_json(o), str(exc)))
                continue
            # The CRM's manager fills in ours (when we have none) only for an order someone took on.
            taken = o.manager_id in known_managers and status is not Status.PENDING_MANAGER
            rows.append(mirror(o, status, o.manager_id if taken else None))
            kept.append(o)
        return _Chunk(rows, rejected, page.received, page.position, lists=money_lists(kept))

    async def _store_orders(
        self, chunk: _Chunk[crm.MirrorOrder], report: SyncReport, *, move_cursor: bool = True
    ) -> None:
        """Store a chunk of orders; the orders cursor moves past it (not for one order read by id)."""
        latest = {row.id: row for row in chunk.rows}  # the last version of an order seen twice wins
        now = self.clock.now()
        async with self.db.transaction() as conn:
            # Read together (see `_together`): the entry times of every open status on the chunk, a superset
            # of the ones entered now (known only once the stored states are read).
            stored, held, entered_at = await _together(
                crm.order_states(conn, latest),
                crm.orders_with_pending_status_write(conn),
                crm.status_entry_times(
                    conn,
                    [
                        (order_id, row.status)
                        for order_id, row in latest.items()
                        if row.status in OPEN_STATUSES
                    ],
                ),
            )
            entering = {
                order_id: row.status
                for order_id, row in latest.items()
                if order_id not in stored or (stored[order_id].status != row.status and order_id not in held)
            }
            rows: list[crm.MirrorOrder] = []
            visits: list[tuple[str, VisitDeadlines | None, datetime]] = []
            for order_id, row in latest.items():
                state = stored.get(order_id)
                if order_id not in entering:
                    assert state is not None
                    # The same status (status_since stays), or the bot's, standing until its write lands.
                    rows.append(row if row.status is state.status else row._replace(status=state.status))
                    continue
                since = entered_at.get((order_id, row.status), row.updated_at)
                deadlines = plan_visit(row.status, since, self.policy, self.calendar)
                if state is None:
                    report.new_order_ids.append(order_id)
                else:
                    report.changed_order_ids.append(order_id)
                if deadlines is not None or state is not None:
                    visits.append((order_id, deadlines, since))
                rows.append(row if since == row.status_since else row._replace(status_since=since))
            new_parties = [
                Party(order_id, row.client_name, row.seller)
                for order_id, row in latest.items()
                if order_id not in stored
            ]
            steps = [
                crm.upsert_orders(conn, rows, now),
                money.replace_lists(conn, [(i, chunk.lists[i]) for i in latest if i in chunk.lists]),
                open_visits_bulk(conn, visits),
                # Screened in the transaction they are stored in (queued after the upsert: a hold finds its
                # order): a hit is held before any dispatch sees it.
                self._screen(conn, new_parties, now),
            ]
            if move_cursor:
                steps.append(crm.set_cursor(conn, ORDERS_CURSOR, chunk.position, now))
            raised_hits = (await _together(*steps))[3]
            raised = await self._keep_aside(conn, "orders", chunk.rejected, now, report) or raised_hits
        report.orders += len(rows)
        self._after_commit(raised)

    async def _screen(self, conn: aiosqlite.Connection, parties: list[Party], now: datetime) -> bool:
        """Screen new orders' parties against the sanctions list; True when a new hit was held."""
        if not parties:
            return False
        screened = await screen_orders(
            conn,
            parties,
            now,
            screener=self.screener,
            threshold=self.policy.governance.sanctions_threshold,
            settings=self.settings,
        )
        return bool(screened.hits)

    # --- leads (SPEC §14) ---------------------------------------------------------------------------------

    async def _sync_leads(self, report: SyncReport) -> None:
        """Leads page by page, each page and the cursor in one transaction. A CRM without the leads endpoint
        (404) has no funnel to sync: skipped, not a failed run."""
        cursor = await crm.get_cursor(self.db.reader, LEADS_CURSOR)
        started = time.monotonic()
        pages = received = 0
        try:
            async with aclosing(iter_leads(self.client, cursor=cursor, limit=self.page_size)) as feed:
                async for page in feed:
                    now = self.clock.now()
                    rows = [lead_row(lead) for lead in page.records]
                    async with self.db.transaction() as conn:
                        await upsert_leads(conn, rows, now)
                        raised = await self._keep_aside(conn, "leads", page.rejected, now, report)
                        await crm.set_cursor(conn, LEADS_CURSOR, page.position, now)
                    self._after_commit(raised)
                    report.leads += len(rows)
                    report.pages += 1
                    pages, received = pages + 1, received + page.received
        except BikeWerkHTTPError as exc:
            if exc.status != 404:
                raise
        self._progress(SyncProgress("leads", pages, received, time.monotonic() - started, done=True))

    # --- workspace -----------------------------------------------------------------------------------------

    async def _snapshot_workspace(self, report: SyncReport) -> None:
        started = time.monotonic()
        data = await self.client.workspace()
        async with self.db.transaction() as conn:
            await crm.add_workspace_snapshot(conn, json.dumps(data, ensure_ascii=False), self.clock.now())
        report.workspace = True
        self._progress(SyncProgress("workspace", 1, 1, time.monotonic() - started, done=True))

    # --- fetching and storing side by side -----------------------------------------------------------------

    async def _pump(
        self,
        stage: str,
        pages: AsyncGenerator[Page[M]],
        prepare: Callable[[Page[M]], _Chunk[R]],
        store: Callable[[_Chunk[R]], Awaitable[None]],
        report: SyncReport,
        *,
        batch: int,
    ) -> None:
        """Fetch and prepare pages in one task while this one stores them, in order, grouping the pages
        already waiting up to `batch` records (which also bounds the pages waiting, hence the memory: the
        page taken and the ones waiting make a batch). A failed fetch ends the stage once everything fetched
        before it is stored."""
        queue: asyncio.Queue[_Chunk[R] | Exception | None] = asyncio.Queue(
            maxsize=max(1, batch // self.page_size - 1)
        )

        async def produce() -> None:
            try:
                async with aclosing(pages) as feed:
                    async for page in feed:
                        # Validating a page took the event loop for a while: the store's next step goes first.
                        await asyncio.sleep(0)
                        await queue.put(prepare(page))
            except Exception as exc:  # handed over, so the pages before it are stored first
                await queue.put(exc)
                return
            await queue.put(None)

        started = time.monotonic()
        stored_pages = received = 0
        producer = asyncio.create_task(produce())
        try:
            finished = False
            end: Exception | None = None
            while not finished:
                item = await queue.get()
                if not isinstance(item, _Chunk):
                    end, finished = item, True
                    break
                chunk = item
                while chunk.received < batch and not queue.empty():
                    following = queue.get_nowait()
                    if not isinstance(following, _Chunk):
                        end, finished = following, True
                        break
                    chunk = chunk.merge(following)
                await store(chunk)
                report.pages += chunk.pages
                stored_pages += chunk.pages
                received += chunk.received
                self._progress(SyncProgress(stage, stored_pages, received, time.monotonic() - started))
            if end is not None:
                raise end
            self._progress(SyncProgress(stage, stored_pages, received, time.monotonic() - started, done=True))
        finally:
            producer.cancel()
            with suppress(asyncio.CancelledError):
                await producer

    # --- records kept aside --------------------------------------------------------------------------------

    async def _keep_aside(
        self,
        conn: aiosqlite.Connection,
        source: crm.ViolationSource,
        rejected: list[Rejected],
        now: datetime,
        report: SyncReport,
    ) -> bool:
        """Store rejected records with their reasons and raise (or repeat) the source's signal."""
        if not rejected:
            return False
        self._dirty.add(source)
        await crm.add_violations(
            conn, source, [crm.Violation(r.record_id, r.reason, r.raw) for r in rejected], now
        )
        # Imported here: the signal texts pull in aiogram (~120 MB, a second to import), which a sync process
        # (`main.py sync`, the benchmark) needs only once it has a violation to report.
        from backbone.signals import raise_signal

        first = rejected[0]
        await raise_signal(
            conn,
            type="sync.contract_violation",
            dedup_key=f"sync.contract_violation:{source}",
            now=now,
            details={
                "source": source,
                "records": len(rejected),
                "record": first.record_id or "-",
                "reason": first.reason,
            },
            raised_by="sync",
            settings=self.settings,
            policy=self.policy,
        )
        report.violations += len(rejected)
        log_event(
            log,
            "sync.contract_violation",
            logging.WARNING,
            source=source,
            records=len(rejected),
            first=first.record_id,
            reason=first.reason,
        )
        return True

    async def _keep_aside_answer(
        self, source: crm.ViolationSource, exc: BikeWerkContractError, report: SyncReport
    ) -> None:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            raised = await self._keep_aside(conn, source, [Rejected(None, str(exc), "")], now, report)
        self._after_commit(raised)

    async def _record_health(self, reached: bool, clean: Collection[str]) -> None:
        """Clear what this run proved fixed, or track the CRM outage (bikewerk/sync_health.py)."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await record_sync_run(
                conn,
                reached_crm=reached,
                clean_sources=clean,
                now=now,
                settings=self.settings,
                crisis=self.policy.crisis,
            )
        self._wake()

    def _after_commit(self, raised: bool) -> None:
        if raised:
            self._wake()
