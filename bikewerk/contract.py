"""The BikeWerk API contract (SPEC §10) as pydantic models: the project's assumption about the CRM, kept in
one place. The real API is not reachable from here; the adapter, the simulator and the tests agree on this.

Reads (bearer token, JSON):
- `GET /api/crm/orders?updated_since=ISO&cursor=C&limit=N`
  -> `{"items": [Order], "next_cursor": C, "has_more": bool}`. Orders come in change order (updated_at, then
  id); `updated_since` is exclusive and used only without a cursor. `next_cursor` is never null: it resumes
  right after the last order returned, now (when `has_more`) or at the next sync. It is the sync's stored
  position, so an order changed later comes again, once per change.
- `GET /api/crm/order_status_events?since_id=N&limit=N`
  -> `{"items": [StatusEvent], "next_since_id": M, "has_more": bool}`: events with id > N in id order;
  `next_since_id` is the id of the page's last event (N for an empty page), computed by the server, so a
  malformed event never stalls the feed.
- `GET /api/crm/orders/{id}` -> one Order (404 for an order the CRM does not know): what a push names.
- `GET /api/crm/managers` -> `{"items": [Manager]}`.
- An order also carries (SPEC §14) `channel`, `compensations` `[{id, amount_eur, reason, at}]`, `disputes`
  `[{id, opened_at, closed_at|null, outcome|null}]`, `payments`
  `[{id, amount_eur, kind: payment|refund, at}]`, and `client.country`, `seller_country` (the seller is a
  plain name; an object `{name, country}` is read too). A broken entry in any of them (a negative amount, a
  kind other than payment/refund, a dispute closed before it opened, two entries with one id) keeps the whole
  order aside, like any other contract violation.
- `GET /api/admin/workspace` -> a JSON object of workspace metrics, stored as it comes.
When `has_more` is missing, a full page (as many items as the limit) means there is more.

Writes (an `Idempotency-Key` header is required; one key always gets the same answer and is applied once):
- `POST /api/crm/orders/{id}/assign` with `{"manager_id": ...}`.
- `POST /api/crm/orders/{id}/status` with `{"status": canonical name, "actor": ..., "at": ISO}`, plus
  `"reason"` (a cancellation) and `"tracking_number"` (shipped) when there is one.
- `POST /api/crm/orders/{id}/compensation` with `{"amount_eur": "12.50", "reason": ..., "approved_by": ...}`:
  a compensation an admin approved (issue 12); allowed on closed orders too (it often follows a delivery).
Answers: 2xx applied (or applied before under that key); 409 a request with that key is still in progress;
422 the CRM refuses the change (unknown manager or status, an order in a final status, a key reused with
another body); 404 unknown order; 429 and 5xx: try again later.

Pushes (the CRM calls the bot, SPEC §13): `POST /crm/events` with `{"type": "order.created" |
"order.updated" | "lead.updated", "id": ...}` (a `PushEvent`), signed with HMAC-SHA256 of the body in
`X-BikeWerk-Signature` (hex).
A push only names a record; the bot reads the record itself through the reads above.

Reading is tolerant (unknown fields are ignored, numbers may arrive as numeric strings, timestamps with any
UTC offset); a record missing what the bot relies on is rejected with a one-line reason and kept aside.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import field
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

RecordId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]

M = TypeVar("M")

MAX_PAGE_SIZE = 10_000
_REASON_ERRORS = 3  # errors quoted in a rejection reason
_RAW_LIMIT = 4000  # characters of a rejected record kept for the record


# Records the CRM sends are pydantic dataclasses: validated in pydantic's core like models, but about twice
# as fast to build, which a first sync of a million events feels. Tolerant reader: unknown fields are
# ignored, ids and amounts may come as numbers or strings.
_READ = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


@dataclass(frozen=True, slots=True, config=_READ)
class Client:
    name: Name
    city: Text = ""
    country: Text | None = None  # ISO 3166 alpha-2 as the CRM sends it (SPEC §14)
    phone: Text | None = None
    email: Text | None = None


@dataclass(frozen=True, slots=True, config=_READ)
class Bike:
    brand: Name
    model: Name
    price_eur: Money
    is_ebike: bool = False


@dataclass(frozen=True, slots=True, config=_READ)
class Prices:
    sale_eur: Money | None = None
    purchase_eur: Money | None = None
    shipping_eur: Money | None = None
    fees_eur: Money | None = None


@dataclass(frozen=True, slots=True, config=_READ)
class Compensation:
    """Money given back to a client for a problem with the order (SPEC §14)."""

    id: RecordId
    amount_eur: Money
    at: AwareDatetime
    reason: Text = ""


@dataclass(frozen=True, slots=True, config=_READ)
class Dispute:
    id: RecordId
    opened_at: AwareDatetime
    closed_at: AwareDatetime | None = None
    outcome: Text | None = None

    @model_validator(mode="after")
    def _closed_after_opened(self) -> Self:
        if self.closed_at is not None and self.closed_at < self.opened_at:
            raise ValueError("closed_at is before opened_at")
        return self


@dataclass(frozen=True, slots=True, config=_READ)
class Payment:
    id: RecordId
    amount_eur: Money
    kind: Literal["payment", "refund"]
    at: AwareDatetime


@dataclass(frozen=True, slots=True, config=_READ)
class SellerObject:
    """A seller sent as `{name, country}`."""

    name: Text | None = None
    country: Text | None = None


# A seller is a name or a `SellerObject`, which the order's after-validator turns into the name (and its
# `seller_country`): code reading an order always finds a str. Not a before-validator: that one would make
# pydantic turn every order of a page into Python objects before validating it (a third of a page's time).
if TYPE_CHECKING:
    Seller = str
else:
    Seller = Text | SellerObject


def _unique_ids(entries: list[Any], what: str) -> None:
    if len(entries) < 2:  # the usual case, on every order of a first sync
        return
    ids = [entry.id for entry in entries]
    if len(ids) != len(set(ids)):
        raise ValueError(f"two {what} with one id")


@dataclass(frozen=True, slots=True, config=_READ)
class Order:
    id: RecordId
    status: Name  # the CRM's own name; the sync maps it onto a canonical status
    created_at: AwareDatetime
    updated_at: AwareDatetime
    client: Client
    bike: Bike
    seller: Seller = ""
    manager_id: RecordId | None = None
    prices: Prices = field(default_factory=Prices)
    channel: Text | None = None
    seller_country: Text | None = None
    compensations: list[Compensation] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)

    @model_validator(mode="after")
    def _updated_after_created(self) -> Self:
        if isinstance(self.seller, SellerObject):  # read as the name plus `seller_country`
            seller: SellerObject = self.seller
            object.__setattr__(self, "seller", seller.name or "")
            if self.seller_country is None and seller.country is not None:
                object.__setattr__(self, "seller_country", seller.country)
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        _unique_ids(self.compensations, "compensations")
        _unique_ids(self.disputes, "disputes")
        _unique_ids(self.payments, "payments")
        return self


@dataclass(frozen=True, slots=True, config=_READ)
class StatusEvent:
    id: Annotated[int, Field(gt=0)]
    order_id: RecordId
    to_status: Name
    at: AwareDatetime
    from_status: Name | None = None  # None: the order's first status
    actor: Name = "crm"


@dataclass(frozen=True, slots=True, config=_READ)
class Manager:
    id: RecordId
    name: Name
    telegram_id: Annotated[int, Field(gt=0)] | None = None
    active: bool = True
    capacity: Annotated[int, Field(ge=0, le=1000)] = 10
    timezone: Text | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


def validate(record_type: type[M], data: object) -> M:
    """One record checked against the contract (pydantic.ValidationError when it breaks it)."""
    return _adapter(record_type).validate_python(data)


def as_json(record: object) -> dict[str, Any]:
    """A record as the JSON object the API sends."""
    data: dict[str, Any] = _adapter(type(record)).dump_python(record, mode="json")
    return data


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(record_type: type[M]) -> TypeAdapter[M]:
    adapter = _ADAPTERS.get(record_type)
    if adapter is None:
        adapter = _ADAPTERS[record_type] = TypeAdapter(record_type)
    return adapter


class _Body(BaseModel):
    """A request body the bot sends (writes)."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class Envelope(BaseModel, ABC):
    """What every page answer holds around its records."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[Any]
    has_more: bool | None = None

    @abstractmethod
    def position(self) -> str:
        """Where the next page starts, as the sync stores it."""


class OrdersPage(Envelope):
    next_cursor: Annotated[str, StringConstraints(min_length=1)]

    def position(self) -> str:
        return self.next_cursor


class EventsPage(Envelope):
    next_since_id: int = Field(ge=0)

    def position(self) -> str:
        return str(self.next_since_id)


class ManagersPage(Envelope):
    def position(self) -> str:
        return ""


PushType = Literal["order.created", "order.updated", "lead.updated"]


class PushEvent(BaseModel):
    """What a CRM push says: which record changed. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    type: PushType
    id: RecordId


@dataclasses.dataclass(frozen=True)
class Page(Generic[M]):
    """One page as received: the records keeping the contract, the ones breaking it, and where to go on."""

    records: list[M]
    rejected: list[Rejected]
    received: int  # records on the page, good and bad
    more: bool  # another page is ready now
    position: str  # the next page starts here (orders: the cursor; events: the since_id)


class AssignWrite(_Body):
    manager_id: RecordId


class CompensationWrite(_Body):
    amount_eur: Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2)]
    reason: Text
    approved_by: Name


class StatusWrite(_Body):
    status: Name
    actor: Name
    at: AwareDatetime | None = None
    reason: Text | None = None  # why an order was cancelled
    tracking_number: Text | None = None  # set when the order is shipped


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A record that breaks the contract: kept aside with the reason instead of stored."""

    record_id: str | None
    reason: str
    raw: str  # the record as received (JSON, shortened)

    @classmethod
    def of(cls, raw: object, reason: str) -> Rejected:
        record_id = raw.get("id") if isinstance(raw, dict) else None
        text = json.dumps(raw, ensure_ascii=False, default=str)
        return cls(
            None if record_id is None else str(record_id)[:64],
            reason,
            text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "…",
        )


def describe(error: ValidationError) -> str:
    """A validation error as one line: `bike.price_eur: Input should be greater than or equal to 0; ...`."""
    parts = []
    for item in error.errors()[:_REASON_ERRORS]:
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = error.error_count() - _REASON_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_records(model: type[M], items: list[Any]) -> tuple[list[M], list[Rejected]]:
    """Validate records one by one: the good ones come back parsed, the bad ones rejected with the reason."""
    good: list[M] = []
    bad: list[Rejected] = []
    for raw in items:
        if not isinstance(raw, dict):
            bad.append(Rejected.of(raw, "not a JSON object"))
            continue
        try:
            good.append(validate(model, raw))
        except ValidationError as exc:
            bad.append(Rejected.of(raw, describe(exc)))
    return good, bad


class ContractError(ValueError):
    """An answer that is not what the contract promises (not JSON, no page envelope)."""


def read_page(envelope: type[Envelope], model: type[M], body: bytes, *, limit: int) -> Page[M]:
    """Decode and validate a page of `model` records.

    The common, all-good page is decoded and validated in one call inside pydantic's core; a page with a bad
    record is validated record by record. A body that is not a page at all raises ContractError.
    """
    try:
        typed = _typed_envelope(envelope, model).model_validate_json(body)
        records: list[M] = typed.items
        rejected: list[Rejected] = []
        page: Envelope = typed
    except ValidationError:
        try:
            page = envelope.model_validate_json(body)
        except ValidationError as exc:
            raise ContractError(f"not a page of the contract: {describe(exc)}") from None
        records, rejected = parse_records(model, page.items)
    received = len(records) + len(rejected)
    more = page.has_more if page.has_more is not None else received >= limit
    return Page(records, rejected, received, more and received > 0, page.position())


def read_record(model: type[M], body: bytes) -> Page[M]:
    """One record answered on its own (`GET /api/crm/orders/{id}`), as a page of one: kept or rejected with
    the reason, like a record of a page. A body that is not a JSON object raises ContractError."""
    try:
        return Page([_adapter(model).validate_json(body)], [], 1, False, "")
    except ValidationError:
        pass
    try:
        raw = json.loads(body)
    except ValueError:
        raise ContractError("not JSON") from None
    if not isinstance(raw, dict):
        raise ContractError("not a JSON object")
    records, rejected = parse_records(model, [raw])
    return Page(records, rejected, 1, False, "")


_TYPED: dict[tuple[type[Envelope], type[Any]], type[Envelope]] = {}


def _typed_envelope(envelope: type[Envelope], model: type[Any]) -> type[Envelope]:
    """The envelope with its items typed as `model` records (built once per pair)."""
    key = (envelope, model)
    if key not in _TYPED:
        _TYPED[key] = create_model(
            f"{envelope.__name__}Of{model.__name__}",
            __base__=envelope,
            items=(list[model], ...),  # type: ignore[valid-type]
        )
    return _TYPED[key]
