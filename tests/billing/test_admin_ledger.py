"""Admin API: the built-in billing ledger's plans, coupons, customers and subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.app import TestApp

PLAN = {"name": "Basic", "price": 1500, "currency": "USD", "period_unit": "month"}
SUB = {
    "customer_id": "cus_1",
    "plan_id": "basic",
    "status": "active",
    "current_term_end": 1_800_000_000,
}


async def setup(app: TestApp) -> None:
    await app.create_site()
    await app.put("acme", "plans/basic", PLAN)
    await app.put("acme", "customers/cus_1", {"email": "ada@example.com"})
    await app.put(
        "acme",
        "coupons/C10",
        {
            "name": "10",
            "discount_type": "fixed_amount",
            "discount_amount": 1000,
            "currency": "USD",
            "duration_type": "one_time",
        },
    )


async def test_ledger_round_trip(app: TestApp) -> None:
    await setup(app)
    r = await app.admin("PUT", "/sites/acme/subscriptions/sub_1", {**SUB, "coupon_ids": ["C10"]})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["status"] == "active"
    assert sub["coupon_ids"] == ["C10"]
    assert sub["current_term_end"] == 1_800_000_000
    assert sub["quantity"] == 1
    got = (await app.admin("GET", "/sites/acme/subscriptions/sub_1")).json()
    assert got["id"] == "sub_1" and got["object"] == "subscription"
    r = await app.admin("PUT", "/sites/acme/subscriptions/sub_1", {**SUB, "status": "cancelled"})
    assert r.status_code == 200
    assert r.json()["cancelled_at"] is not None
    assert (await app.admin("GET", "/sites/acme/plans/basic")).json()["price"] == 1500
    assert (await app.admin("GET", "/sites/acme/customers/cus_1")).json()[
        "email"
    ] == "ada@example.com"
    assert [c["id"] for c in (await app.admin("GET", "/sites/acme/coupons")).json()["coupons"]] == [
        "C10"
    ]
    assert [p["id"] for p in (await app.admin("GET", "/sites/acme/plans")).json()["plans"]] == [
        "basic"
    ]
    assert (await app.admin("GET", "/sites/acme/subscriptions/nope")).status_code == 404


@pytest.mark.parametrize(
    ("changes", "status", "param"),
    [
        ({"customer_id": "nobody"}, 404, "customer_id"),
        ({"plan_id": "nothing"}, 404, "plan_id"),
        ({"coupon_ids": ["C10", "GHOST"]}, 404, "coupon_ids[1]"),
        ({"status": "in_trial"}, 400, "body"),
        ({"status": "zombie"}, 400, "status"),
        ({"quantity": 0}, 400, "quantity"),
        # year 10000 on: a datetime cannot hold it (each was a 500)
        ({"status": "in_trial", "trial_end": 253_402_300_800}, 400, "trial_end"),
        ({"current_term_start": 253_402_300_800}, 400, "current_term_start"),
        ({"current_term_end": 253_402_300_800}, 400, "current_term_end"),
        ({"current_term_end": 10**20}, 400, "current_term_end"),
        ({"status": "paused", "pause_until": 253_402_300_800}, 400, "pause_until"),
        ({"status": "non_renewing", "cancel_at": 253_402_300_800}, 400, "cancel_at"),
        ({"cancel_at": -1}, 400, "cancel_at"),
    ],
)
async def test_subscription_validation(
    app: TestApp, changes: dict[str, Any], status: int, param: str
) -> None:
    await setup(app)
    r = await app.admin("PUT", "/sites/acme/subscriptions/sub_1", {**SUB, **changes})
    assert r.status_code == status, r.text
    assert r.json()["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "discount_type": "percentage", "duration_type": "forever"}, "body"),
        (
            {
                "name": "x",
                "discount_type": "percentage",
                "discount_percentage": 120,
                "duration_type": "forever",
            },
            "discount_percentage",
        ),
        (
            {
                "name": "x",
                "discount_type": "fixed_amount",
                "discount_amount": 5,
                "duration_type": "limited_period",
            },
            "body",
        ),
    ],
)
async def test_coupon_validation(app: TestApp, body: dict[str, Any], param: str) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/coupons/X", body)
    assert r.status_code == 400
    assert r.json()["param"] == param


def percentage(value: Any) -> dict[str, Any]:
    return {
        "name": "x",
        "discount_type": "percentage",
        "discount_percentage": value,
        "duration_type": "forever",
    }


@pytest.mark.parametrize(
    "value",
    [
        0.001,  # rounds to 0.00 in numeric(5, 2): was a CheckViolation 500
        0.004,
        0.0,
        12.345,  # was silently stored as 12.35
        99.999,  # was silently stored as 100.00
        "12.345",  # a form body sends text
        100.01,
    ],
)
async def test_coupon_percentage_is_0_01_to_100_with_2_decimals(app: TestApp, value: Any) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/coupons/X", percentage(value))
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["param"] == "discount_percentage"
    assert error["api_error_code"] == "param_wrong_value"
    assert (await app.admin("GET", "/sites/acme/coupons/X")).status_code == 404


@pytest.mark.parametrize("value", [0.01, 12.34, 12.3, 100, 99.99])
async def test_coupon_percentage_is_stored_as_given(app: TestApp, value: float) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/coupons/X", percentage(value))
    assert r.status_code == 201, r.text
    assert r.json()["discount_percentage"] == value


async def test_the_last_second_of_9999_is_a_valid_term_end(app: TestApp) -> None:
    await setup(app)
    body = {**SUB, "current_term_end": 253_402_300_799}
    r = await app.admin("PUT", "/sites/acme/subscriptions/sub_1", body)
    assert r.status_code == 201, r.text
    assert r.json()["current_term_end"] == 253_402_300_799


async def test_plan_validation(app: TestApp) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/plans/p", {**PLAN, "currency": "usd"})
    assert (r.status_code, r.json()["param"]) == (400, "currency")
    r = await app.admin("PUT", "/sites/acme/plans/p", {**PLAN, "price": -1})
    assert (r.status_code, r.json()["param"]) == (400, "price")
