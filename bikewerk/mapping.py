"""From the CRM's records (bikewerk/contract.py) to the store's rows: managers, order mirrors, the order's
money lists, and which Telegram ids a page of managers claims."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from bikewerk import contract
from bikewerk.contract import Rejected
from domain.models import Manager
from domain.statuses import Status
from storage import crm
from storage.instants import ts_many
from storage.money import OrderLists


def telegram_claims(
    managers: Iterable[contract.Manager], stored: dict[str, int | None]
) -> tuple[list[contract.Manager], list[Rejected]]:
    """Split managers into the ones to store and the ones claiming a Telegram id another manager has (or
    claims in the same list): a Telegram id identifies one person, so no new claim on it is taken."""
    managers = list(managers)
    final = dict(stored)
    for m in managers:
        if m.telegram_id is not None:
            final[m.id] = m.telegram_id
    holders: dict[int, list[str]] = {}
    for manager_id, telegram_id in final.items():
        if telegram_id is not None:
            holders.setdefault(telegram_id, []).append(manager_id)
    accepted: list[contract.Manager] = []
    rejected: list[Rejected] = []
    for m in managers:
        others = [h for h in holders.get(m.telegram_id, []) if h != m.id] if m.telegram_id is not None else []
        if others and m.telegram_id != stored.get(m.id):
            reason = f"telegram_id {m.telegram_id} also belongs to manager {', '.join(sorted(others))}"
            rejected.append(Rejected.of(contract.as_json(m), reason))
        else:
            accepted.append(m)
    return accepted, rejected


def manager(m: contract.Manager) -> Manager:
    return Manager(
        id=m.id,
        name=m.name,
        telegram_id=m.telegram_id,
        active=m.active,
        capacity=m.capacity,
        timezone=m.timezone,
    )


def mirror(o: contract.Order, status: Status, manager: str | None) -> crm.MirrorOrder:
    return crm.MirrorOrder(
        id=o.id,
        status=status,
        crm_status=o.status,
        created_at=o.created_at,
        updated_at=o.updated_at,
        status_since=o.updated_at,
        client_name=o.client.name,
        client_city=o.client.city,
        bike_brand=o.bike.brand,
        bike_model=o.bike.model,
        price_eur=o.bike.price_eur,
        is_ebike=o.bike.is_ebike,
        seller=o.seller,
        crm_manager_id=o.manager_id,
        assigned_manager_id=manager,
        sale_eur=o.prices.sale_eur,
        purchase_eur=o.prices.purchase_eur,
        shipping_eur=o.prices.shipping_eur,
        fees_eur=o.prices.fees_eur,
        channel=o.channel,
        client_country=o.client.country,
        seller_country=o.seller_country,
    )


def lists(orders: Sequence[contract.Order]) -> dict[str, OrderLists]:
    """Each order's compensations, disputes and payments by order id (the last of an id repeated wins)."""
    # The page's instants are encoded in one call, then read back in the order `_instants` lists them.
    text = iter(ts_many([at for o in orders for at in _instants(o)]))
    return {
        o.id: OrderLists(
            [(c.id, c.amount_eur, c.reason, next(text)) for c in o.compensations],
            [(d.id, next(text), None if d.closed_at is None else next(text), d.outcome) for d in o.disputes],
            [(p.id, p.amount_eur, p.kind, next(text)) for p in o.payments],
        )
        for o in orders
    }


def _instants(o: contract.Order) -> list[datetime]:
    return [
        *(c.at for c in o.compensations),
        *(at for d in o.disputes for at in (d.opened_at, d.closed_at) if at is not None),
        *(p.at for p in o.payments),
    ]


# --- main.py sync -----------------------------------------------------------------------------------------
