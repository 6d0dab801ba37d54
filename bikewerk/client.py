"""HTTP client of the BikeWerk API (bikewerk/contract.py): bearer auth, timeouts, retries and paging.

Retries: 5xx, 429, timeouts and connection errors are retried with exponential backoff and jitter (a 429's or
503's Retry-After is honoured); any other 4xx is final at once. Writes are retried too, which is safe because
each carries its Idempotency-Key. The sleep between attempts is injectable, so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from bikewerk.contract import (
    MAX_PAGE_SIZE,
    ContractError,
    Envelope,
    EventsPage,
    M,
    Manager,
    ManagersPage,
    Order,
    OrdersPage,
    Page,
    StatusEvent,
    read_page,
    read_record,
)
from bot.clock import Clock, SystemClock

Sleep = Callable[[float], Awaitable[None]]


class BikeWerkError(Exception):
    """Any failure talking to the BikeWerk API."""


class BikeWerkHTTPError(BikeWerkError):
    """The API answered with an error status that retrying will not fix (4xx other than 429)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"BikeWerk API answered {status}: {message}")


class BikeWerkUnavailable(BikeWerkError):
    """The API was unreachable or kept failing after every retry; `retry_after` is its own hint, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BikeWerkContractError(BikeWerkError):
    """A 2xx answer that is not what the contract promises (not JSON, no page envelope)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # tries per request, the first one included
    base_delay: float = 0.5  # seconds before the second try; doubles each time
    max_delay: float = 20.0  # cap of one wait; a longer Retry-After gives up at once (callers reschedule)


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0


@dataclass(frozen=True)
class Latency:
    """One HTTP request as the client saw it: the reliability circle's raw data (stored by the sync)."""

    at: datetime  # when it was sent
    route: str  # method and path, without the query
    ms: float
    ok: bool  # a 2xx answer (False: an error status, a timeout, no connection)


_ORDER_PATH = re.compile(r"/orders/[^/]+/")
MAX_LATENCIES = 10_000  # records kept until the next sync stores them; older ones are dropped


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


def _message(body: bytes) -> str:
    """The error text of an answer: its JSON `error` field or the start of the body."""
    text = body.decode("utf-8", "replace")
    with suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])[:300]
    return text[:300] or "(empty body)"


class BikeWerkClient:
    """One client per process (it holds an aiohttp session); use `async with` or call `close()`."""

    def __init__(
        self,
        base_url: str,
        token: str = "",
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = session
        self._owns_session = session is None
        self._clock = clock or SystemClock()
        self._latencies: list[Latency] = []

    async def __aenter__(self) -> BikeWerkClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def take_latencies(self) -> list[Latency]:
        """The requests timed since the last call (the sync stores them in api_latency)."""
        taken, self._latencies = self._latencies, []
        return taken

    def _timed(self, route: str, at: datetime, started: float, ok: bool) -> None:
        if len(self._latencies) >= MAX_LATENCIES:
            del self._latencies[: MAX_LATENCIES // 10]
        self._latencies.append(Latency(at, route, (time.perf_counter() - started) * 1000, ok))

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of base * 2^(attempt-1), capped."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Send a request with retries; return the body of the 2xx answer."""
        session = self._open_session()
        url = self.base_url + path
        send_headers = {**self._headers, **(headers or {})}
        last_error = "no attempt made"
        route = f"{method} {_ORDER_PATH.sub('/orders/{id}/', path)}"
        for attempt in range(1, self.retry.attempts + 1):
            self.stats.requests += 1
            hint: float | None = None
            sent_at, started = self._clock.now(), time.perf_counter()
            try:
                async with session.request(
                    method, url, params=params, json=body, headers=send_headers, timeout=self._timeout
                ) as resp:
                    raw = await resp.read()
                    self._timed(route, sent_at, started, resp.status < 300)
                    if resp.status < 300:
                        return raw
                    if resp.status != 429 and resp.status < 500:
                        raise BikeWerkHTTPError(resp.status, _message(raw))
                    last_error = f"HTTP {resp.status}: {_message(raw)}"
                    # An HTTP-date Retry-After counts from the wall clock the server's clock is set to.
                    hint = _retry_after(resp.headers.get("Retry-After"), self._clock.now())
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._timed(route, sent_at, started, False)
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if hint is not None and hint > self.retry.max_delay:
                raise BikeWerkUnavailable(
                    f"{method} {path}: {last_error}; the API asks to retry in {hint:.0f} s", retry_after=hint
                )
            if attempt == self.retry.attempts:
                break
            self.stats.retries += 1
            await self._sleep(hint if hint is not None else self._backoff(attempt))
        raise BikeWerkUnavailable(f"{method} {path}: failed {self.retry.attempts} times, last: {last_error}")

    async def _page(
        self, envelope: type[Envelope], model: type[M], path: str, params: dict[str, str], limit: int
    ) -> Page[M]:
        raw = await self.send("GET", path, params=params)
        try:
            return read_page(envelope, model, raw, limit=limit)
        except ContractError as exc:
            raise BikeWerkContractError(f"GET {path}: {exc}") from None

    # --- reads ----------------------------------------------------------------------------------------------

    async def orders_page(
        self, *, cursor: str | None = None, updated_since: datetime | None = None, limit: int = 500
    ) -> Page[Order]:
        """Orders changed after `cursor` (or, without one, after `updated_since`; without both, all)."""
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        elif updated_since is not None:
            params["updated_since"] = updated_since.isoformat()
        return await self._page(OrdersPage, Order, "/api/crm/orders", params, limit)

    async def order(self, order_id: str) -> Page[Order]:
        """One order by id, as a page of one (the record rejected when it breaks the contract); an order the
        CRM does not know raises BikeWerkHTTPError with status 404."""
        path = f"/api/crm/orders/{quote(order_id, safe='')}"
        raw = await self.send("GET", path)
        try:
            return read_record(Order, raw)
        except ContractError as exc:
            raise BikeWerkContractError(f"GET {path}: {exc}") from None

    async def events_page(self, *, since_id: int = 0, limit: int = 500) -> Page[StatusEvent]:
        params = {"since_id": str(since_id), "limit": str(limit)}
        return await self._page(EventsPage, StatusEvent, "/api/crm/order_status_events", params, limit)

    async def managers(self) -> Page[Manager]:
        return await self._page(ManagersPage, Manager, "/api/crm/managers", {}, MAX_PAGE_SIZE)

    async def workspace(self) -> dict[str, Any]:
        raw = await self.send("GET", "/api/admin/workspace")
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BikeWerkContractError("GET /api/admin/workspace: the answer is not a JSON object")
        return data

    async def iter_orders(
        self, *, cursor: str | None = None, updated_since: datetime | None = None, limit: int = 500
    ) -> AsyncGenerator[Page[Order]]:
        """Every page of changed orders from `cursor` (or `updated_since`) on."""
        page = await self.orders_page(cursor=cursor, updated_since=updated_since, limit=limit)
        yield page
        while page.more:
            page = await self.orders_page(cursor=page.position, limit=limit)
            yield page

    async def iter_events(self, *, since_id: int = 0, limit: int = 500) -> AsyncGenerator[Page[StatusEvent]]:
        """Every page of status events after `since_id`."""
        page = await self.events_page(since_id=since_id, limit=limit)
        yield page
        while page.more:
            page = await self.events_page(since_id=int(page.position), limit=limit)
            yield page

    # --- writes ---------------------------------------------------------------------------------------------

    async def write(self, kind: str, order_id: str, payload: dict[str, Any], *, idempotency_key: str) -> Any:
        """POST an assign or status write (`kind`) for an order under its idempotency key; returns the CRM's
        JSON answer (None if it sent none: for a write only the status counts)."""
        if kind not in ("assign", "status"):
            raise ValueError(f"unknown CRM write {kind!r}")
        raw = await self.send(
            "POST",
            f"/api/crm/orders/{order_id}/{kind}",
            body=payload,
            headers={"Idempotency-Key": idempotency_key},
        )
        try:
            return json.loads(raw)
        except ValueError:
            return None
