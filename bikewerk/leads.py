"""Leads (SPEC §14): `GET /api/crm/leads?updated_since=&cursor=&limit=` -> `{items, next_cursor, has_more}`,
in change order like orders. A lead: `id, created_at, updated_at, channel, checkout_at|null,
booking_at|null, order_id|null, lost_at|null, cost_eur|null`. The record type and the paged read live here,
next to the contract (bikewerk/contract.py) they follow; the sync stores them (bikewerk/sync.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Self

from pydantic import AwareDatetime, ConfigDict, StringConstraints, model_validator
from pydantic.dataclasses import dataclass

from bikewerk.client import BikeWerkClient, BikeWerkContractError
from bikewerk.contract import ContractError, Money, OrdersPage, Page, RecordId, read_page
from storage.revenue import LeadRow

Channel = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=40)]
PATH = "/api/crm/leads"
_READ = ConfigDict(extra="ignore", coerce_numbers_to_str=True)  # tolerant, as every record the CRM sends


@dataclass(frozen=True, slots=True, config=_READ)
class Lead:
    id: RecordId
    created_at: AwareDatetime
    updated_at: AwareDatetime
    channel: Channel
    checkout_at: AwareDatetime | None = None
    booking_at: AwareDatetime | None = None
    order_id: RecordId | None = None
    lost_at: AwareDatetime | None = None
    cost_eur: Money | None = None

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        if self.checkout_at is not None and self.checkout_at < self.created_at:
            raise ValueError("checkout_at is before created_at")
        if self.booking_at is not None and self.checkout_at is None:
            raise ValueError("booking_at without checkout_at")
        return self


class LeadsPage(OrdersPage):
    """Same envelope as orders: the items and the cursor to resume after them."""


async def leads_page(client: BikeWerkClient, *, cursor: str | None, limit: int) -> Page[Lead]:
    params = {"limit": str(limit)}
    if cursor is not None:
        params["cursor"] = cursor
    raw = await client.send("GET", PATH, params=params)
    try:
        return read_page(LeadsPage, Lead, raw, limit=limit)
    except ContractError as exc:
        raise BikeWerkContractError(f"GET {PATH}: {exc}") from None


async def iter_leads(
    client: BikeWerkClient, *, cursor: str | None, limit: int = 1000
) -> AsyncGenerator[Page[Lead]]:
    page = await leads_page(client, cursor=cursor, limit=limit)
    yield page
    while page.more:
        page = await leads_page(client, cursor=page.position, limit=limit)
        yield page


def lead_row(lead: Lead) -> LeadRow:
    """A lead as stored."""
    return LeadRow(
        lead.id,
        lead.created_at,
        lead.updated_at,
        lead.channel,
        lead.checkout_at,
        lead.booking_at,
        lead.order_id,
        lead.lost_at,
        lead.cost_eur,
    )
