"""Who is talking to the bot: the roles of a Telegram user and the `Caller` every handler receives.

Admin, owner and lead ids come from configuration; managers come from the synced managers table (by their
Telegram id, set by the CRM or linked with a one-time code). A person may hold several roles (an admin who is
also a lead).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bot.config import Settings


class Role(StrEnum):
    ADMIN = "admin"
    OWNER = "owner"
    LEAD = "lead"
    MANAGER = "manager"


@dataclass(frozen=True)
class Caller:
    user_id: int
    roles: frozenset[Role]
    manager_id: str | None
    lang: str

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def is_owner(self) -> bool:
        return Role.OWNER in self.roles

    @property
    def is_lead(self) -> bool:
        return Role.LEAD in self.roles

    @property
    def is_manager(self) -> bool:
        return Role.MANAGER in self.roles

    @property
    def is_known(self) -> bool:
        return bool(self.roles)


class _Row(Protocol):
    """A database row or a dict: anything indexable by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


def resolve_roles(settings: Settings, user_id: int, manager_row: _Row | None) -> frozenset[Role]:
    """The roles of `user_id`; `manager_row` is the managers row with this Telegram id (None: there is none).

    A deactivated manager keeps no manager role: the CRM has taken them off orders.
    """
    roles: set[Role] = set()
    if user_id in settings.admin_ids:
        roles.add(Role.ADMIN)
    if settings.owner_id is not None and user_id == settings.owner_id:
        roles.add(Role.OWNER)
    if user_id in settings.lead_ids:
        roles.add(Role.LEAD)
    if manager_row is not None and manager_row["active"]:
        roles.add(Role.MANAGER)
    return frozenset(roles)


def configured_groups(settings: Settings) -> frozenset[int]:
    """The group chats the bot works in (leads, crisis, admin); it leaves any other group."""
    ids = (settings.leads_chat_id, settings.crisis_chat_id, settings.admin_chat_id)
    return frozenset(chat_id for chat_id in ids if chat_id is not None)
