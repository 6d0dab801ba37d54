"""Rules in domain/, texts in keyboards/ (issue 11): every step and reason code the domain knows has its text,
and the keyboards show no code the domain would refuse."""

from __future__ import annotations

from domain.orders import CANCEL_REASONS, CLIENT_SAID_NO, DECLINE_REASONS, STEP_ACTIONS
from domain.statuses import Status
from keyboards.orders import CANCEL_REASON_LABELS, DECLINE_REASON_LABELS


def test_every_reason_code_has_a_label_in_the_domains_order() -> None:
    assert tuple(DECLINE_REASON_LABELS) == DECLINE_REASONS
    assert tuple(CANCEL_REASON_LABELS) == CANCEL_REASONS
    assert CLIENT_SAID_NO in CANCEL_REASONS


def test_step_actions_move_an_order_to_an_open_or_final_status() -> None:
    assert STEP_ACTIONS == {
        "insp": Status.INSPECTION,
        "yes": Status.READY_FOR_SHIPMENT,
        "dlv": Status.DELIVERED,
    }
