"""Who acts through the bot, as the rights rules see them: one type for a button press, a command, a step on
an order or a signal (`domain.signals.permitted`, `circles.sales_ops.orders.authorise`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """A person: their Telegram user id, their roles, and their manager id when they act on an order as its
    manager."""

    user_id: int
    staff: bool = False  # lead, admin or owner: may act on any signal
    approver: bool = False  # admin or owner: may approve or reject what waits for a human decision
    manager_id: str | None = None  # set when they act on an order as its assigned manager

    @property
    def name(self) -> str:
        """How the order's history names them: the manager id, or admin:<user id>."""
        return self.manager_id if self.manager_id is not None else f"admin:{self.user_id}"
