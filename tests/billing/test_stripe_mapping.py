"""Stripe subscription objects → SubscriptionState: the status table and the fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from offerd.billing.stripe.mapping import NotMappable, subscription_state

T0, DAY = 1_790_000_000, 86400


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _sub(**fields: Any) -> dict[str, Any]:
    item = {
        "id": "si_1",
        "price": {"id": "price_basic"},
        "quantity": 3,
        "current_period_start": T0,
        "current_period_end": T0 + 30 * DAY,
    }
    sub: dict[str, Any] = {
        "id": "sub_1",
        "status": "active",
        "items": {"data": [item]},
        "discounts": [],
        "trial_end": None,
        "pause_collection": None,
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
    }
    sub.update(fields)
    return sub


@pytest.mark.parametrize(
    ("fields", "status", "extra"),
    [
        ({}, "active", {}),
        (
            {"status": "trialing", "trial_end": T0 + 30 * DAY},
            "in_trial",
            {"trial_end": _at(T0 + 30 * DAY)},
        ),
        ({"status": "past_due"}, "active", {}),
        ({"status": "unpaid"}, "active", {}),
        (
            {"cancel_at_period_end": True, "cancel_at": T0 + 30 * DAY},
            "non_renewing",
            {"cancel_at": _at(T0 + 30 * DAY)},
        ),
        ({"cancel_at_period_end": True}, "non_renewing", {"cancel_at": _at(T0 + 30 * DAY)}),
        (
            {"status": "trialing", "trial_end": T0 + DAY, "cancel_at_period_end": True},
            "non_renewing",
            {"cancel_at": _at(T0 + 30 * DAY), "trial_end": _at(T0 + DAY)},
        ),
        (
            {"pause_collection": {"behavior": "void", "resumes_at": T0 + 60 * DAY}},
            "paused",
            {"pause_until": _at(T0 + 60 * DAY)},
        ),
        ({"pause_collection": {"behavior": "void", "resumes_at": None}}, "paused", {}),
        ({"status": "paused"}, "paused", {}),
        (
            {"status": "canceled", "canceled_at": T0 + DAY},
            "cancelled",
            {"cancelled_at": _at(T0 + DAY)},
        ),
        ({"status": "incomplete_expired", "ended_at": T0}, "cancelled", {"cancelled_at": _at(T0)}),
    ],
)
def test_status_table(fields: dict[str, Any], status: str, extra: dict[str, Any]) -> None:
    state = subscription_state(_sub(**fields))
    assert state.status == status
    assert (state.plan_id, state.quantity) == ("price_basic", 3)
    assert (state.current_term_start, state.current_term_end) == (_at(T0), _at(T0 + 30 * DAY))
    for name in ("trial_end", "pause_until", "cancel_at", "cancelled_at"):
        assert getattr(state, name) == extra.get(name), name


def test_discounts_name_their_coupons_in_order() -> None:
    discounts = [
        {"id": "di_1", "source": {"coupon": "SAVE10", "type": "coupon"}},
        {"id": "di_2", "coupon": {"id": "LEGACY"}},  # before the 2025 API: discount.coupon
    ]
    assert subscription_state(_sub(discounts=discounts)).coupon_ids == ("SAVE10", "LEGACY")


def test_periods_on_the_subscription_are_used_when_the_item_has_none() -> None:
    sub = _sub(current_period_start=T0 - DAY, current_period_end=T0 + DAY)
    for key in ("current_period_start", "current_period_end"):
        del sub["items"]["data"][0][key]
    state = subscription_state(sub)
    assert (state.current_term_start, state.current_term_end) == (_at(T0 - DAY), _at(T0 + DAY))


@pytest.mark.parametrize(
    "sub",
    [
        _sub(status="incomplete"),
        _sub(discounts=["di_unexpanded"]),
        _sub(items={"data": []}),
        _sub(items={"data": [_sub()["items"]["data"][0]] * 2}),
    ],
)
def test_what_has_no_offerd_equivalent_is_refused(sub: dict[str, Any]) -> None:
    with pytest.raises(NotMappable):
        subscription_state(sub)
