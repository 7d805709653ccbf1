"""The fulfillment state machine, as a table."""

from __future__ import annotations

import pytest

from offerd.fulfillments import machine
from offerd.fulfillments.machine import IllegalTransition, Transition

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("current", "processing_type", "requested", "reason", "expected"),
    [
        # the merchant completes the types it fulfils
        ("in_progress", "url_redirect", "completed", None, Transition("completed", "fulfilled")),
        ("in_progress", "webhook", "completed", None, Transition("completed", "fulfilled")),
        ("in_progress", "email", "completed", None, Transition("completed", "fulfilled")),
        # a merchant-reported failure is external_fulfillment_failed with the reason as message
        (
            "in_progress",
            "email",
            "failed",
            "out of stock",
            Transition("failed", "failed", "external_fulfillment_failed", "out of stock"),
        ),
        # offerd itself completes billing_update and checkout: no update allowed
        ("in_progress", "billing_update", "completed", None, IllegalTransition),
        ("in_progress", "checkout", "failed", "x", IllegalTransition),
        # one way, once
        ("completed", "url_redirect", "completed", None, IllegalTransition),
        ("completed", "url_redirect", "failed", "x", IllegalTransition),
        ("failed", "webhook", "completed", None, IllegalTransition),
    ],
)
def test_merchant_update(
    current: machine.Status,
    processing_type: str,
    requested: str,
    reason: str | None,
    expected: Transition | type[Exception],
) -> None:
    if isinstance(expected, Transition):
        assert machine.merchant_update(current, processing_type, requested, reason) == expected  # type: ignore[arg-type]
    else:
        with pytest.raises(expected):
            machine.merchant_update(current, processing_type, requested, reason)  # type: ignore[arg-type]


@pytest.mark.parametrize("current", ["completed", "failed"])
def test_final_states_do_not_move(current: machine.Status) -> None:
    with pytest.raises(IllegalTransition):
        machine.complete(current)
    with pytest.raises(IllegalTransition):
        machine.fail(current, "internal_error", "x")


def test_error_messages_are_bounded() -> None:
    t = machine.fail("in_progress", "billing_update_failed", "x" * 500)
    # the spec bounds error.message at 200 characters
    assert t.error_message == "x" * 200
