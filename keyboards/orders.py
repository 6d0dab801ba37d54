"""The order card a manager works an order from (offer, Accept / Decline, status buttons), its callback data,
and the texts of /my, /order ID, /shift and the answers to presses and refused actions.

Texts are HTML (the bot's default parse mode); every value that comes from data is escaped. Render inside the
chat's locale (`with in_locale(lang):`) or inside a handler, where the middleware set the caller's locale.
Label tables hold lazy texts, so rendering translates only the labels it shows. Keyboards are built as the
dict storage.messages.put_message stores (the Bot API's InlineKeyboardMarkup as JSON): a dispatch pass renders
thousands of cards, and aiogram's builder would cost more than everything else in the pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n.lazy_proxy import LazyProxy

from bot.i18n import _, __
from domain.checklist import Missing
from domain.models import Order
from domain.orders import CLIENT_SAID_NO
from domain.statuses import FINAL_STATUSES, Status, next_steps
from storage.assignments import Assignment, AssignmentState, StoredCandidate
from storage.messages import encode_markup
from storage.orders import HistoryEntry

CardMode = Literal["normal", "decline", "cancel", "tracking"]
Button = dict[str, str]
Markup = dict[str, Any]  # {"inline_keyboard": [[Button, ...], ...]}


class OfferCallback(CallbackData, prefix="of"):
    """An offer's buttons: `a` is the assignment id; act is acc (accept), dec (decline: show reasons), why
    (decline with reason code `r`) or back (show the offer again)."""

    act: str
    a: int
    r: str | None = None


class StepCallback(CallbackData, prefix="st"):
    """A status button on an accepted order's card: `h` is the order's handle (storage.orders.order_handle),
    act a code of domain.orders.STEP_ACTIONS, chk (open the checklist), cxl (show cancel reasons), cx (cancel
    with reason `r`), ship (ask for the tracking number) or back."""

    act: str
    h: int
    r: str | None = None


def offer_data(act: str, offer_id: int | str) -> str:
    """`OfferCallback(act=act, a=offer_id).pack()` spelled out for the two buttons of every fresh offer: a
    dispatch pass makes thousands, and pydantic's checks in pack() cost more than the rest of the card.
    tests/test_dispatch.py checks that both spellings agree."""
    sep = OfferCallback.__separator__
    return f"{OfferCallback.__prefix__}{sep}{act}{sep}{offer_id}{sep}"


def button(text: str, data: CallbackData) -> Button:
    return {"text": text, "callback_data": data.pack()}


def keyboard(rows: Sequence[Sequence[Button]]) -> Markup | None:
    rows = [list(row) for row in rows if row]
    return {"inline_keyboard": rows} if rows else None


# The texts of the reason codes of domain/orders.py (tests/test_order_rules.py checks every code has one).
DECLINE_REASON_LABELS: dict[str, LazyProxy] = {
    "busy": __("Too many orders right now"),
    "away": __("Not available (off shift, away)"),
    "skill": __("Not my brand or bike type"),
    "other": __("Other reason"),
}
CANCEL_REASON_LABELS: dict[str, LazyProxy] = {
    "client": __("Client cancelled"),
    "seller": __("Seller withdrew the bike"),
    "defect": __("Failed inspection"),
    "other": __("Other reason"),
    CLIENT_SAID_NO: __("Client answered no"),
}
RELEASE_REASONS: dict[str, LazyProxy] = {
    "crm": __("the order changed in the CRM"),
    "leave": __("you are on leave"),
    "shift": __("you went off shift"),
}
_STATUS_LABELS: dict[Status, LazyProxy] = {
    Status.PENDING_MANAGER: __("Waiting for a manager"),
    Status.ACCEPTED: __("Accepted"),
    Status.INSPECTION: __("Inspection"),
    Status.AWAITING_CLIENT: __("Waiting for the client"),
    Status.READY_FOR_SHIPMENT: __("Ready for shipment"),
    Status.IN_TRANSIT: __("In transit"),
    Status.DELIVERED: __("Delivered"),
    Status.CANCELLED: __("Cancelled"),
}
_NEXT_STEPS: dict[Status, LazyProxy] = {
    Status.PENDING_MANAGER: __("Accept or decline the order"),
    Status.ACCEPTED: __("Contact the seller and start the inspection"),
    Status.INSPECTION: __("Fill in and submit the 28-point checklist"),
    Status.AWAITING_CLIENT: __("Get the client's answer to the inspection"),
    Status.READY_FOR_SHIPMENT: __("Ship the bike and enter the tracking number"),
    Status.IN_TRANSIT: __("Confirm the delivery"),
}


def label(table: Mapping[Any, LazyProxy], key: object) -> str:
    """A label from a table, or the escaped key itself when the table has none (an unknown stored code)."""
    found = table.get(key)
    return str(found) if found is not None else escape(str(key or "—"))


def status_label(status: Status) -> str:
    return label(_STATUS_LABELS, status)


def next_step_label(status: Status) -> str:
    """What the order's owner must do next in `status` (SPEC §2 "next step")."""
    return label(_NEXT_STEPS, status)


def when(instant: datetime | None, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%d.%m %H:%M") if instant is not None else "—"


def _price(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


class Headed(Protocol):
    """What a card's first lines show of an order (an `Order`, or a `QueuedOrder` of a dispatch pass)."""

    @property
    def id(self) -> str: ...
    @property
    def bike_brand(self) -> str: ...
    @property
    def bike_model(self) -> str: ...
    @property
    def is_ebike(self) -> bool: ...
    @property
    def price_eur(self) -> float: ...
    @property
    def client_city(self) -> str: ...


@dataclass(frozen=True)
class _Header:
    """The order lines every card and /order start with, translated once for the current locale."""

    title: str
    bike: str
    price: str
    city: str
    ebike: str

    @classmethod
    def current(cls) -> _Header:
        return cls(
            _("<b>Order {order}</b> · {status}"),
            _("🚲 {bike}"),
            _("💶 {price} €"),
            _("📍 {city}"),
            _("e-bike"),
        )

    def lines(self, order: Headed, status: str) -> list[str]:
        bike = escape(f"{order.bike_brand} {order.bike_model}".strip() or "—")
        if order.is_ebike:
            bike += " · " + self.ebike
        return [
            self.title.format(order=escape(order.id), status=status),
            self.bike.format(bike=bike),
            self.price.format(price=_price(order.price_eur)),
            self.city.format(city=escape(order.client_city or "—")),
        ]


def _order_lines(order: Order) -> list[str]:
    return _Header.current().lines(order, status_label(order.status))


class OfferCards:
    """Cards of fresh offers (Accept / Decline), their texts translated once: build it inside the chat's
    locale. A dispatch pass over a backlog renders thousands of these."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.header = _Header.current()
        self.status = status_label(Status.PENDING_MANAGER)
        self.deadline = _("⏳ Accept by {deadline}")
        self.accept = _("✅ Accept")
        self.decline = _("✖ Decline")

    def render(self, order: Headed, offer_id: int, expires_at: datetime | None) -> tuple[str, Markup | None]:
        lines = self.header.lines(order, self.status)
        lines.append(self.deadline.format(deadline=when(expires_at, self.tz)))
        return "\n".join(lines), self._markup(str(offer_id))

    def _markup(self, offer_id: str) -> Markup | None:
        accept = {"text": self.accept, "callback_data": offer_data("acc", offer_id)}
        decline = {"text": self.decline, "callback_data": offer_data("dec", offer_id)}
        return keyboard([[accept, decline]])

    def encoded(self, expires_at: datetime | None) -> Callable[[Headed, int], tuple[str, str | None]]:
        """`render` for offers that share a deadline (a dispatch pass), with the markup encoded as
        storage.messages keeps it: the same text and bytes, but the deadline is formatted and the keyboard
        encoded once, and each card only fills in its offer id (tests/test_dispatch.py compares the two)."""
        deadline = self.deadline.format(deadline=when(expires_at, self.tz))
        slot = "\ue000"  # a private-use character, in no label: marks where the offer id goes
        encoded = encode_markup(self._markup(slot))
        parts = encoded.split(slot) if encoded is not None else None
        header, status = self.header, self.status

        def render(order: Headed, offer_id: int) -> tuple[str, str | None]:
            lines = header.lines(order, status)
            lines.append(deadline)
            return "\n".join(lines), str(offer_id).join(parts) if parts is not None else None

        return render


# --- the card


@dataclass(frozen=True)
class CardView:
    """Everything the card shows. `offer_*` describe the assignment the card belongs to (None: an order the
    CRM assigned, with no offer); `deadline` is the current step's SLA deadline."""

    order: Order
    tz: ZoneInfo
    handle: int | None = None  # the order's handle for status buttons (None: no status buttons)
    offer_id: int | None = None
    offer_state: AssignmentState | None = None
    offer_expires_at: datetime | None = None
    answer_reason: str | None = None  # decline reason code, or release reason code
    deadline: datetime | None = None
    cancel_reason: str | None = None
    cancel_requested: bool = False  # a manager's cancel waits for an admin's approval
    mode: CardMode = "normal"


def order_card(view: CardView) -> tuple[str, Markup | None]:
    """The card's text and buttons for the state in `view`."""
    order = view.order
    state = view.offer_state
    fresh_offer = state == "offered" and order.status is Status.PENDING_MANAGER
    if fresh_offer and view.mode != "decline":
        assert view.offer_id is not None
        return OfferCards(view.tz).render(order, view.offer_id, view.offer_expires_at)
    lines = _order_lines(order)
    rows: list[list[Button]] = []
    if fresh_offer:
        assert view.offer_id is not None
        lines.append(_("Why do you decline? Choose a reason:"))
        rows.extend(
            [button(str(text), OfferCallback(act="why", a=view.offer_id, r=code))]
            for code, text in DECLINE_REASON_LABELS.items()
        )
        rows.append([button(_("« Back"), OfferCallback(act="back", a=view.offer_id))])
    elif state == "expired":
        lines.append(
            _("⌛ Not accepted by {deadline}: the order went to another manager.").format(
                deadline=when(view.offer_expires_at, view.tz)
            )
        )
    elif state == "declined":
        reason = label(DECLINE_REASON_LABELS, view.answer_reason)
        lines.append(_("You declined this order: {reason}.").format(reason=reason))
    elif state == "released" and view.answer_reason == "handover":
        lines.append(_("↪ This order was handed over to another manager; it is off your list now."))
    elif state in ("released", "offered"):
        why = label(RELEASE_REASONS, view.answer_reason or "crm")
        lines.append(_("This offer was withdrawn: {why}.").format(why=why))
    else:
        _progress_part(view, lines, rows)
    return "\n".join(lines), keyboard(rows)


def _progress_part(view: CardView, lines: list[str], rows: list[list[Button]]) -> None:
    order = view.order
    if order.tracking_number:
        lines.append(_("📦 Tracking: {number}").format(number=escape(order.tracking_number)))
    if order.status is Status.DELIVERED:
        lines.append(_("✅ Delivered. Thank you!"))
        return
    if order.status is Status.CANCELLED:
        lines.append(_("Cancelled: {reason}").format(reason=label(CANCEL_REASON_LABELS, view.cancel_reason)))
        return
    lines.append(
        _("Next step: {step}, by {deadline}").format(
            step=next_step_label(order.status), deadline=when(view.deadline, view.tz)
        )
    )
    if view.cancel_requested:
        lines.append(_("⏳ Cancellation requested — waiting for an admin's approval."))
    if view.handle is None:
        return
    handle = view.handle
    if view.mode == "cancel" and not view.cancel_requested:
        lines.append(_("Cancel the order? Choose a reason:"))
        rows.extend(
            [button(str(text), StepCallback(act="cx", h=handle, r=code))]
            for code, text in CANCEL_REASON_LABELS.items()
            if code != CLIENT_SAID_NO
        )
        rows.append([button(_("« Back"), StepCallback(act="back", h=handle))])
    elif view.mode == "tracking":
        lines.append(_("✏️ Send the tracking number as your next message."))
        rows.append([button(_("« Back"), StepCallback(act="back", h=handle))])
    else:
        for target in next_steps(order.status):
            # One cancel request at a time: no cancel buttons while one waits for an admin.
            rows.extend([b] for b in _step_buttons(target, handle, cancel=not view.cancel_requested))


def _step_buttons(target: Status, handle: int, *, cancel: bool) -> list[Button]:
    """The buttons for one legal transition (domain.statuses.next_steps decides which transitions exist);
    without `cancel`, none that cancel the order."""
    if target is Status.CANCELLED:
        return [button(_("Cancel the order"), StepCallback(act="cxl", h=handle))] if cancel else []
    if target is Status.INSPECTION:
        return [button(_("🔍 Start inspection"), StepCallback(act="insp", h=handle))]
    if target is Status.AWAITING_CLIENT:
        return [button(_("📋 Open checklist"), StepCallback(act="chk", h=handle))]
    if target is Status.READY_FOR_SHIPMENT:
        yes = button(_("👍 Client answered yes"), StepCallback(act="yes", h=handle))
        no = button(_("👎 Client answered no"), StepCallback(act="cx", h=handle, r=CLIENT_SAID_NO))
        return [yes, no] if cancel else [yes]
    if target is Status.IN_TRANSIT:
        return [button(_("🚚 Shipped (enter tracking number)"), StepCallback(act="ship", h=handle))]
    if target is Status.DELIVERED:
        return [button(_("🏁 Delivered"), StepCallback(act="dlv", h=handle))]
    return []


# --- /my


@dataclass(frozen=True)
class MyOrder:
    order: Order
    deadline: datetime | None  # the step's deadline; for an offer, the acceptance deadline
    offered: bool


def my_orders_text(items: Sequence[MyOrder], tz: ZoneInfo) -> str:
    if not items:
        return _("You have no open orders.")
    lines = [_("<b>Your open orders ({count})</b>").format(count=len(items))]
    for item in items:
        order = item.order
        lines.append(
            _("• <b>{order}</b> {bike} · {status}\n   → {step}, by {deadline}").format(
                order=escape(order.id),
                bike=escape(f"{order.bike_brand} {order.bike_model}".strip()),
                status=status_label(order.status),
                step=_("Accept or decline") if item.offered else next_step_label(order.status),
                deadline=when(item.deadline, tz),
            )
        )
    lines.append(_("Details: /order ID"))
    return "\n".join(lines)


# --- /order ID


@dataclass(frozen=True)
class OrderDetails:
    order: Order
    tz: ZoneInfo
    deadline: datetime | None
    history: Sequence[HistoryEntry]
    assignments: Sequence[tuple[Assignment, list[StoredCandidate]]]
    checklist_answered: int | None  # None: no checklist started
    checklist_missing: Sequence[Missing]
    checklist_submitted_at: datetime | None
    files: int


_SHOWN_CANDIDATES = 5
_MISSING_SHOWN = 12
_INELIGIBLE: dict[str, LazyProxy] = {
    "inactive": __("inactive"),
    "on_leave": __("on leave"),
    "off_shift": __("off shift"),
    "at_capacity": __("at capacity"),
    "excluded": __("declined or missed it before"),
    "no_telegram": __("no Telegram chat (not linked, or the bot is blocked)"),
}
_PICK_REASONS: dict[str, LazyProxy] = {
    "lowest_load": __("the lowest load of the eligible managers (ties: the longest since an assignment)"),
}
_ASSIGNMENT_STATES: dict[str, LazyProxy] = {
    "offered": __("offered"),
    "accepted": __("accepted"),
    "declined": __("declined"),
    "expired": __("expired"),
    "released": __("withdrawn"),
}
_MISSING: dict[str, LazyProxy] = {
    "unanswered": __("not answered"),
    "na_not_allowed": __("N/A is not allowed here"),
    "fail_needs_note": __("a failed item needs a note"),
    "fail_needs_photo": __("a failed item needs a photo"),
    "photo_required": __("needs a photo"),
    "battery_report_required": __("needs the battery report"),
}


def _assignment_block(a: Assignment, candidates: Sequence[StoredCandidate], tz: ZoneInfo) -> list[str]:
    head = _("#{id} {manager}: {state} (offered {offered})").format(
        id=a.id,
        manager=escape(a.manager_id),
        state=label(_ASSIGNMENT_STATES, a.state),
        offered=when(a.offered_at, tz),
    )
    if a.state == "declined":
        head += " — " + label(DECLINE_REASON_LABELS, a.decline_reason)
    lines = [head, "   " + _("Why: {reason}").format(reason=label(_PICK_REASONS, a.reason))]
    eligible = sorted((c for c in candidates if c.eligible), key=lambda c: (c.load or 0.0, c.manager_id))
    for c in eligible[:_SHOWN_CANDIDATES]:
        lines.append(
            "   "
            + _("{manager}: load {load:.2f} ({open}/{capacity} orders)").format(
                manager=escape(c.manager_id), load=c.load or 0.0, open=c.open_orders, capacity=c.capacity
            )
        )
    if len(eligible) > _SHOWN_CANDIDATES:
        lines.append("   " + _("… and {count} more eligible").format(count=len(eligible) - _SHOWN_CANDIDATES))
    skipped = Counter(c.reason for c in candidates if not c.eligible)
    if skipped:
        parts = ", ".join(f"{label(_INELIGIBLE, reason)}: {n}" for reason, n in sorted(skipped.items()))
        lines.append("   " + _("Not eligible: {parts}").format(parts=parts))
    return lines


def missing_label(missing: Missing) -> str:
    return _("{item}: {reason}").format(item=missing.item, reason=label(_MISSING, missing.reason))


def missing_text(missing: Sequence[Missing]) -> str:
    shown = "; ".join(missing_label(m) for m in missing[:_MISSING_SHOWN])
    if len(missing) > _MISSING_SHOWN:
        shown += " " + _("… and {count} more").format(count=len(missing) - _MISSING_SHOWN)
    return _("Missing: {items}").format(items=shown)


def order_details_text(d: OrderDetails) -> str:
    order = d.order
    lines = _order_lines(order)
    if order.status not in FINAL_STATUSES:
        lines.append(
            _("Next step: {step}, by {deadline}").format(
                step=next_step_label(order.status), deadline=when(d.deadline, d.tz)
            )
        )
    lines += ["", _("<b>History</b>")]
    for h in d.history:
        line = _("{at} {status} · {actor} ({source})").format(
            at=when(h.at, d.tz),
            status=status_label(h.to_status),
            actor=escape(h.actor),
            source=_("CRM") if h.source == "crm" else _("bot"),
        )
        lines.append(line + (" — " + label(CANCEL_REASON_LABELS, h.reason) if h.reason else ""))
    if not d.history:
        lines.append("—")
    lines += ["", _("<b>Assignments</b>")]
    for assignment, candidates in d.assignments:
        lines += _assignment_block(assignment, candidates, d.tz)
    if not d.assignments:
        lines.append(_("none made by the bot"))
    lines += ["", _("<b>Checklist</b>")]
    if d.checklist_answered is None:
        lines.append(_("not started"))
    else:
        lines.append(
            _("{answered}/28 answered, {files} files").format(answered=d.checklist_answered, files=d.files)
        )
        if d.checklist_submitted_at is not None:
            lines.append(_("Submitted {at}").format(at=when(d.checklist_submitted_at, d.tz)))
        elif d.checklist_missing:
            lines.append(missing_text(d.checklist_missing))
    return "\n".join(lines)


def shift_text(on_shift: bool, override: str | None) -> str:
    if on_shift:
        text = _("You are on shift: new orders can come to you.")
    else:
        text = _("You are off shift: no new orders will come to you.")
    if override is None:
        text += " " + _("(following the working hours)")
    return text


# --- answers: one line each; a refusal says what is wrong

_REFUSALS: dict[str, LazyProxy] = {
    "not_found": __("Order {order} not found."),
    "forbidden": __("Only the order's manager or an admin can do this."),
    "not_your_offer": __("This offer is not for you."),
    "offer_gone": __("This offer is no longer open."),
    "already_accepted": __("You have already accepted this order."),
    "final_status": __("Order {order} is closed; its status cannot change."),
    "not_allowed": __("This step is not possible now: the order is {status}."),
    "same_status": __("The order is already {status}."),
    "checklist_incomplete": __("Submit the complete checklist first."),
    "tracking_required": __("A tracking number is needed to mark the order shipped."),
    "bad_tracking": __(
        "A tracking number is 3 to 64 letters, digits, spaces or dashes; please send it again."
    ),
    "reason_required": __("Choose a reason first."),
    "bad_reason": __("Unknown reason; please use the buttons."),
    "no_manager": __("Unknown manager {manager}."),
    "not_a_manager": __("Only managers have shifts."),
    "bad_capacity": __("Capacity is a whole number from 0 to {max}, or 'reset'."),
    "stale_button": __("This button is out of date; open the order again with /order ID."),
    "no_checklist": __("No checklist is open: press “Open checklist” on the order card first."),
    "checklist_closed": __("The checklist of order {order} can only be filled during the inspection."),
    "checklist_submitted": __("The checklist of order {order} was already submitted."),
    "choose_item": __("First tap 📎 next to the item the file belongs to."),
    "bad_answer": __("Item {item} cannot take this answer (N/A only on optional items)."),
    "bad_item": __("The checklist has no item {item}."),
    "bad_page": __("The checklist has no page {page}."),
    "empty_note": __("The note for item {item} is empty."),
    "answer_first": __("Answer item {item} first, then send its note."),
    "no_note_target": __("To add a note, tap 📎 next to the item first (or reply to the checklist)."),
}
_DONE: dict[str, LazyProxy] = {
    "accepted": __("Accepted: order {order} is yours."),
    "accepted_before": __("You have already accepted order {order}."),
    "declined": __("Declined. The order goes to another manager."),
    "status": __("Order {order}: {status}."),
    "cancel_requested": __("Cancellation of order {order} requested: an admin will approve or reject it."),
    "cancel_approved": __("Order {order} is cancelled: an admin approved your request."),
    "cancel_rejected": __("Cancellation rejected: order {order} stays as it was. Admin's comment: {comment}"),
    "cancel_moot": __("Your cancellation of order {order} was not carried out: the order is {status} now."),
    "checklist_opened": __("The checklist of order {order} is open (in the checklist message)."),
    "answered": __("Item {item}: saved."),
    "item_chosen": __("Item {item}: send its photos, documents or note now."),
    "note_saved": __("Note saved for item {item}."),
    "file_saved": __("Attached to item {item}."),
    "file_known": __("This file is already attached to item {item}."),
    "file_kept_id": __("Attached to item {item}; the download failed, the file stays in Telegram."),
    "submit_refused": __("Not complete yet: {count} things missing (listed in the checklist)."),
    "submitted": __("Checklist submitted. Order {order} now waits for the client."),
    "shipped": __("Order {order} is in transit, tracking number {tracking}."),
    "capacity": __("Capacity of {manager}: {capacity}."),
    "capacity_reset": __("Capacity of {manager} follows the CRM again ({capacity})."),
    "leave_on": __("{manager} is on leave; {released} open offers went to others."),
    "leave_off": __("{manager} is back from leave."),
}
_USAGES: dict[str, LazyProxy] = {
    "order": __("Usage: /order ID"),
    "shift": __("Usage: /shift on or /shift off"),
    "capacity": __("Usage: /capacity MANAGER N (0-{max}) or /capacity MANAGER reset"),
    "leave": __("Usage: /leave MANAGER on or /leave MANAGER off"),
    "managers_only": __("This command is for managers."),
    "admins_only": __("This command is for admins."),
}


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "—"  # a fact the caller did not give must not turn an answer into a crash


def _fill(text: str, facts: Mapping[str, object]) -> str:
    values = {k: status_label(v) if isinstance(v, Status) else escape(str(v)) for k, v in facts.items()}
    return text.format_map(_Facts(values))


def refusal_text(code: str, **facts: object) -> str:
    found = _REFUSALS.get(code)
    return _fill(str(found), facts) if found is not None else _("This cannot be done now.")


def done_text(code: str, **facts: object) -> str:
    """The short answer to a press or a command that worked."""
    return _fill(str(_DONE[code]), facts)


def usage_text(command: str, **facts: object) -> str:
    return _fill(str(_USAGES[command]), facts)
