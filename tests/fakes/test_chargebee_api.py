"""The fake Chargebee Billing API, driven through the unmodified ``chargebee`` SDK.

A fake that accepts anything tests nothing: most tests here show it refusing what Chargebee
refuses (bad key, missing or wrong parameters, unknown objects, wrong state, an idempotency key
reused with other parameters) as well as doing what it documents.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from chargebee import Chargebee
from chargebee.api_error import APIError, InvalidRequestError, OperationFailedError

from tests.fakes.chargebee_api import (  # noqa: F401  (fixtures registered by import)
    FakeChargebee,
    chargebee_fake,
    chargebee_sdk,
    localhost_dns,
)
from tests.support.receiver import Receiver

DAY = 86_400
KEY = "chargebee-idempotency-key"


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeChargebee:
    """Site acme: monthly plans at 10.00 and 30.00 (and one in EUR), an addon, three coupons
    (one expired), customer cus_1 with an active monthly subscription sub_1."""
    running: FakeChargebee = request.getfixturevalue("chargebee_fake")
    running.seed_item_price("basic-USD-monthly", 1000, item_id="basic")
    running.seed_item_price("pro-USD-monthly", 3000, item_id="pro")
    running.seed_item_price("basic-EUR-monthly", 900, item_id="basic", currency_code="EUR")
    running.seed_item_price("seats-USD-monthly", 200, item_type="addon")
    running.seed_coupon("TEN", discount_percentage=10.0)
    running.seed_coupon("FIVE_OFF", discount_type="fixed_amount", discount_amount=500)
    running.seed_coupon("OLD", status="expired")
    running.seed_customer("cus_1", email="ada@example.com")
    running.seed_subscription("sub_1", customer_id="cus_1", items="basic-USD-monthly")
    return running


@pytest.fixture
def cb(request: pytest.FixtureRequest, fake: FakeChargebee) -> Chargebee:
    """The SDK pointed at the fake (``Chargebee.verify_ca_certs`` restored after the test)."""
    sdk: Chargebee = request.getfixturevalue("chargebee_sdk")
    return sdk


def refused(call: Any) -> APIError:
    with pytest.raises(APIError) as info:
        call()
    return info.value


# --- objects and reads ------------------------------------------------------------------------


def test_retrieve_returns_chargebees_shapes(cb: Chargebee, fake: FakeChargebee) -> None:
    got = cb.Subscription.retrieve("sub_1")
    sub = got.subscription
    assert (sub.id, sub.customer_id, sub.status, sub.currency_code) == (
        "sub_1",
        "cus_1",
        "active",
        "USD",
    )
    (item,) = sub.subscription_items
    assert (item.item_price_id, item.item_type, item.quantity, item.unit_price, item.amount) == (
        "basic-USD-monthly",
        "plan",
        1,
        1000,
        1000,
    )
    assert sub.current_term_end - sub.current_term_start == 30 * DAY
    assert sub.mrr == 1000 and sub.resource_version > 0 and sub.updated_at == fake.clock.now
    assert got.customer.email == "ada@example.com"
    price = cb.ItemPrice.retrieve("pro-USD-monthly").item_price
    assert (price.item_id, price.price, price.period, price.period_unit, price.status) == (
        "pro",
        3000,
        1,
        "month",
        "active",
    )
    coupon = cb.Coupon.retrieve("FIVE_OFF").coupon
    assert (coupon.discount_type, coupon.discount_amount, coupon.currency_code) == (
        "fixed_amount",
        500,
        "USD",
    )
    assert cb.Coupon.retrieve("TEN").coupon.discount_percentage == 10.0
    assert cb.Customer.retrieve("cus_1").customer.id == "cus_1"


@pytest.mark.parametrize(
    "read",
    [
        lambda cb: cb.Subscription.retrieve("sub_nope"),
        lambda cb: cb.Customer.retrieve("cus_nope"),
        lambda cb: cb.Coupon.retrieve("NOPE"),
        lambda cb: cb.ItemPrice.retrieve("nope"),
    ],
)
def test_unknown_objects_are_404(cb: Chargebee, read: Any) -> None:
    error = refused(lambda: read(cb))
    assert isinstance(error, InvalidRequestError)
    assert (error.http_status_code, error.api_error_code) == (404, "resource_not_found")


def test_wrong_or_revoked_api_key_is_401(fake: FakeChargebee, cb: Chargebee) -> None:
    error = refused(lambda: fake.sdk("not_the_key").Subscription.retrieve("sub_1"))
    assert (error.http_status_code, error.api_error_code) == (401, "api_authentication_failed")
    assert error.json_obj["http_status_code"] == 401 and error.json_obj["message"]
    fake.revoke_key()
    error = refused(lambda: cb.Subscription.retrieve("sub_1"))
    assert error.api_error_code == "api_authentication_failed"


def test_another_sites_host_is_refused(fake: FakeChargebee, cb: Chargebee) -> None:
    other = Chargebee(
        api_key=fake.api_key or "", site="other", chargebee_domain=fake.domain, protocol="http"
    )
    error = refused(lambda: other.Subscription.retrieve("sub_1"))
    assert (error.http_status_code, error.api_error_code) == (404, "site_not_found")


def test_the_sdk_can_be_pointed_at_api_base(fake: FakeChargebee, cb: Chargebee) -> None:
    # What offerd does with a site's api_base: the SDK's endpoint set directly, no DNS needed.
    cb.env.api_endpoint = f"{fake.api_base}/api/v2"
    assert cb.Subscription.retrieve("sub_1").subscription.id == "sub_1"
    assert fake.calls[-1].path == "/api/v2/subscriptions/sub_1"


def test_lists_paginate_with_next_offset(fake: FakeChargebee, cb: Chargebee) -> None:
    ids = fake.seed_many(10_000)
    seen: list[str] = []
    offset = None
    while True:
        params: dict[str, Any] = {
            "limit": 100,
            "status": {"is": "active"},
            "sort_by": {"asc": "created_at"},
        }
        if offset:
            params["offset"] = offset
        page = cb.Subscription.list(params)
        assert all(row.customer.id == row.subscription.customer_id for row in page.list)
        seen += [row.subscription.id for row in page.list]
        offset = page.next_offset
        if not offset:
            break
    assert seen[:10_000] == ids and seen[10_000:] == ["sub_1"]  # oldest first, each once
    newest = cb.Subscription.list({"limit": 2})
    assert [r.subscription.id for r in newest.list] == ["sub_1", ids[-1]] and newest.next_offset
    fake.clock.advance(10)
    fake.seed_subscription("sub_p", items="basic-USD-monthly", status="paused")
    fake.update("subscription", "sub_1", auto_collection="off")
    recent = cb.Subscription.list({"updated_at": {"after": fake.clock.now - 1}})
    assert {r.subscription.id for r in recent.list} == {"sub_1", "sub_p"}
    stopped = cb.Subscription.list({"status": {"in": ["paused", "cancelled"]}})
    assert [r.subscription.id for r in stopped.list] == ["sub_p"]
    only = cb.Subscription.list({"customer_id": {"is": "cus_1"}})
    assert [r.subscription.id for r in only.list] == ["sub_1"] and only.next_offset is None
    assert refused(lambda: cb.Subscription.list({"limit": 101})).param == "limit"
    assert refused(lambda: cb.Subscription.list({"offset": "garbage"})).param == "offset"
    prices = cb.ItemPrice.list({"limit": 100, "item_id": {"is": "basic"}})
    assert {r.item_price.id for r in prices.list} == {"basic-USD-monthly", "basic-EUR-monthly"}
    assert len(cb.Coupon.list({"limit": 100}).list) == 3
    assert len(cb.Customer.list({"limit": 100}).list) == 100


# --- update_for_items ----------------------------------------------------------------------------


def test_update_for_items_applies_coupon_and_plan_once(fake: FakeChargebee, cb: Chargebee) -> None:
    before = fake.subscription("sub_1")
    fake.clock.advance(60)
    got = cb.Subscription.update_for_items(
        "sub_1",
        {
            "subscription_items": [
                {"item_price_id": "pro-USD-monthly", "quantity": 1},
                {"item_price_id": "seats-USD-monthly", "quantity": 3},
            ],
            "coupon_ids": ["TEN"],
            "change_option": "immediately",
        },
        headers={KEY: "fulfillment-1"},
    )
    sub = got.subscription
    assert [(i.item_price_id, i.quantity, i.amount) for i in sub.subscription_items] == [
        ("pro-USD-monthly", 1, 3000),
        ("seats-USD-monthly", 3, 600),
    ]
    assert [(c.coupon_id, c.applied_count) for c in sub.coupons] == [("TEN", 0)]
    assert sub.mrr == 3240  # (3000 + 600) less 10 %
    assert sub.resource_version > before["resource_version"]
    assert sub.updated_at == before["updated_at"] + 60
    assert got.is_idempotency_replayed is False
    (change,) = fake.history("sub_1")
    assert change["op"] == "update_for_items" and change["idempotency_key"] == "fulfillment-1"
    assert change["subscription"] == fake.subscription("sub_1")


def test_replace_coupon_list_replaces_and_end_of_term_waits(
    fake: FakeChargebee, cb: Chargebee
) -> None:
    cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]})
    sub = cb.Subscription.update_for_items(
        "sub_1", {"coupon_ids": ["FIVE_OFF"], "replace_coupon_list": True}
    ).subscription
    assert [c.coupon_id for c in sub.coupons] == ["FIVE_OFF"] and sub.mrr == 500
    later = cb.Subscription.update_for_items(
        "sub_1",
        {
            "subscription_items": [{"item_price_id": "pro-USD-monthly"}],
            "change_option": "end_of_term",
        },
    ).subscription
    assert later.has_scheduled_changes is True
    assert later.subscription_items[0].item_price_id == "basic-USD-monthly"


@pytest.mark.parametrize(
    ("params", "status", "code", "param"),
    [
        # the coupon does not exist
        ({"coupon_ids": ["NOPE"]}, 404, "resource_not_found", "coupon_ids[0]"),
        # an expired coupon cannot be applied
        ({"coupon_ids": ["TEN", "OLD"]}, 400, "param_wrong_value", "coupon_ids[1]"),
        # the item price does not exist
        (
            {"subscription_items": [{"item_price_id": "gold"}]},
            404,
            "resource_not_found",
            "subscription_items[item_price_id][0]",
        ),
        # a EUR price on a USD subscription
        (
            {"subscription_items": [{"item_price_id": "basic-EUR-monthly"}]},
            400,
            "param_wrong_value",
            "subscription_items[item_price_id][0]",
        ),
        # a quantity without its item price
        (
            {"subscription_items": [{"quantity": 2}]},
            400,
            "param_wrong_value",
            "subscription_items[item_price_id][0]",
        ),
        # not a change option Chargebee knows
        ({"change_option": "whenever"}, 400, "param_wrong_value", "change_option"),
        # a specific date needs the date
        ({"change_option": "specific_date"}, 400, "param_wrong_value", "changes_scheduled_at"),
    ],
)
def test_update_for_items_refuses_bad_params(
    fake: FakeChargebee, cb: Chargebee, params: dict[str, Any], status: int, code: str, param: str
) -> None:
    error = refused(lambda: cb.Subscription.update_for_items("sub_1", params))
    assert (error.http_status_code, error.api_error_code, error.param) == (status, code, param)
    assert fake.history("sub_1") == []


# --- the other subscription operations -------------------------------------------------------


def test_pause_resume_cancel_and_remove_cancellation(fake: FakeChargebee, cb: Chargebee) -> None:
    now = fake.clock.now
    sub = cb.Subscription.pause(
        "sub_1", {"pause_option": "immediately", "resume_date": now + 10 * DAY}
    ).subscription
    assert (sub.status, sub.pause_date, sub.resume_date) == ("paused", now, now + 10 * DAY)
    sub = cb.Subscription.resume("sub_1", {"resume_option": "immediately"}).subscription
    assert sub.status == "active" and sub.pause_date is None and sub.resume_date is None
    term_end = sub.current_term_end
    sub = cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}).subscription
    assert (sub.status, sub.cancelled_at) == ("non_renewing", term_end)
    sub = cb.Subscription.remove_scheduled_cancellation("sub_1").subscription
    assert sub.status == "active" and sub.cancelled_at is None
    scheduled = cb.Subscription.pause("sub_1", {"pause_option": "end_of_term"}).subscription
    assert (scheduled.status, scheduled.pause_date) == ("active", term_end)
    sub = cb.Subscription.cancel_for_items("sub_1", {"end_of_term": False}).subscription
    assert (sub.status, sub.cancelled_at) == ("cancelled", now)
    assert [h["op"] for h in fake.history("sub_1")] == [
        "pause",
        "resume",
        "cancel_for_items",
        "remove_scheduled_cancellation",
        "pause",
        "cancel_for_items",
    ]
    versions = [h["resource_version"] for h in fake.history("sub_1")]
    assert versions == sorted(set(versions))


def test_change_term_end_moves_the_trial_or_the_term(fake: FakeChargebee, cb: Chargebee) -> None:
    now = fake.clock.now
    fake.seed_subscription(
        "sub_trial", items="basic-USD-monthly", status="in_trial", trial_end=now + 7 * DAY
    )
    sub = cb.Subscription.change_term_end(
        "sub_trial", {"term_ends_at": now + 21 * DAY}
    ).subscription
    assert (sub.status, sub.trial_end, sub.current_term_end) == (
        "in_trial",
        now + 21 * DAY,
        now + 21 * DAY,
    )
    sub = cb.Subscription.change_term_end("sub_1", {"term_ends_at": now + 40 * DAY}).subscription
    assert sub.current_term_end == sub.next_billing_at == now + 40 * DAY
    error = refused(lambda: cb.Subscription.change_term_end("sub_1", {"term_ends_at": now}))
    assert (error.api_error_code, error.param) == ("param_wrong_value", "term_ends_at")


def test_a_backdated_trial_end_converts_the_trial_now(fake: FakeChargebee, cb: Chargebee) -> None:
    now = fake.clock.now
    fake.seed_subscription(
        "sub_trial", items="pro-USD-monthly", status="in_trial", trial_end=now + 7 * DAY
    )
    sub = cb.Subscription.update_for_items("sub_trial", {"trial_end": 0}).subscription
    assert (sub.status, sub.trial_end, sub.current_term_start) == ("active", now, now)
    assert sub.current_term_end == now + 30 * DAY and sub.mrr == 3000
    error = refused(lambda: cb.Subscription.update_for_items("sub_1", {"trial_end": 0}))
    assert (error.http_status_code, error.api_error_code) == (409, "invalid_state_for_request")


@pytest.mark.parametrize(
    ("status", "call"),
    [
        # a cancelled subscription cannot be paused, resumed, moved, cancelled or updated
        ("cancelled", lambda cb: cb.Subscription.pause("s", {"pause_option": "immediately"})),
        ("cancelled", lambda cb: cb.Subscription.change_term_end("s", {"term_ends_at": 2**40})),
        ("cancelled", lambda cb: cb.Subscription.cancel_for_items("s", {"end_of_term": True})),
        ("cancelled", lambda cb: cb.Subscription.update_for_items("s", {"coupon_ids": ["TEN"]})),
        # only a paused subscription resumes
        ("active", lambda cb: cb.Subscription.resume("s", {"resume_option": "immediately"})),
        # only a non_renewing subscription has a cancellation to remove
        ("active", lambda cb: cb.Subscription.remove_scheduled_cancellation("s")),
        ("paused", lambda cb: cb.Subscription.remove_scheduled_cancellation("s")),
        # a paused subscription is already paused; its term end cannot move
        ("paused", lambda cb: cb.Subscription.pause("s", {"pause_option": "immediately"})),
        ("paused", lambda cb: cb.Subscription.change_term_end("s", {"term_ends_at": 2**40})),
        # a trial is not paused (Chargebee pauses active and non_renewing subscriptions)
        ("in_trial", lambda cb: cb.Subscription.pause("s", {"pause_option": "immediately"})),
        # already scheduled to cancel
        ("non_renewing", lambda cb: cb.Subscription.cancel_for_items("s", {"end_of_term": True})),
    ],
)
def test_wrong_state_is_refused_409(
    fake: FakeChargebee, cb: Chargebee, status: str, call: Any
) -> None:
    fake.seed_subscription("s", items="basic-USD-monthly", status=status)
    before = fake.subscription("s")
    error = refused(lambda: call(cb))
    assert (error.http_status_code, error.api_error_code) == (409, "invalid_state_for_request")
    assert fake.subscription("s") == before and fake.history("s") == []


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda cb: cb.Subscription.change_term_end("sub_1", {}), "term_ends_at"),
        (
            lambda cb: cb.Subscription.change_term_end("sub_1", {"term_ends_at": "soon"}),
            "term_ends_at",
        ),
        (
            lambda cb: cb.Subscription.pause("sub_1", {"pause_option": "specific_date"}),
            "pause_date",
        ),
        (lambda cb: cb.Subscription.pause("sub_1", {"pause_option": "someday"}), "pause_option"),
        (
            lambda cb: cb.Estimate.update_subscription_for_items({"coupon_ids": ["TEN"]}),
            "subscription[id]",
        ),
    ],
)
def test_missing_or_malformed_params_are_400(cb: Chargebee, call: Any, param: str) -> None:
    error = refused(lambda: call(cb))
    assert isinstance(error, InvalidRequestError)
    assert (error.http_status_code, error.api_error_code, error.param) == (
        400,
        "param_wrong_value",
        param,
    )
    assert error.json_obj["error_msg"] == error.json_obj["message"]


# --- idempotency ----------------------------------------------------------------------------


def test_same_key_same_params_replays_without_applying(fake: FakeChargebee, cb: Chargebee) -> None:
    params = {"coupon_ids": ["TEN"]}
    first = cb.Subscription.update_for_items("sub_1", params, headers={KEY: "k-1"})
    fake.clock.advance(29 * 60)
    again = cb.Subscription.update_for_items("sub_1", params, headers={KEY: "k-1"})
    assert again.is_idempotency_replayed is True and first.is_idempotency_replayed is False
    assert again.subscription.raw_data == first.subscription.raw_data
    assert len(fake.history("sub_1")) == 1
    assert [c.replayed for c in fake.calls] == [False, True]


def test_same_key_other_params_is_refused(fake: FakeChargebee, cb: Chargebee) -> None:
    cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]}, headers={KEY: "k-1"})
    error = refused(
        lambda: cb.Subscription.update_for_items(
            "sub_1", {"coupon_ids": ["FIVE_OFF"]}, headers={KEY: "k-1"}
        )
    )
    assert (error.http_status_code, error.api_error_code) == (422, "unable_to_process_request")
    error = refused(
        lambda: cb.Subscription.pause(
            "sub_1", {"pause_option": "immediately"}, headers={KEY: "k-1"}
        )
    )
    assert error.api_error_code == "unable_to_process_request"
    assert [c["coupon_id"] for c in fake.subscription("sub_1")["coupons"]] == ["TEN"]


def test_keys_expire_after_30_fake_minutes(fake: FakeChargebee, cb: Chargebee) -> None:
    cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]}, headers={KEY: "k-1"})
    fake.clock.advance(30 * 60)
    again = cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]}, headers={KEY: "k-1"})
    assert again.is_idempotency_replayed is False
    assert len(fake.history("sub_1")) == 2  # processed anew: the caller must re-read first
    # and once expired, the key may even carry other parameters
    cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["FIVE_OFF"]}, headers={KEY: "k-2"})
    fake.clock.advance(31 * 60)
    cb.Subscription.pause("sub_1", {"pause_option": "immediately"}, headers={KEY: "k-2"})
    assert fake.subscription("sub_1")["status"] == "paused"


def test_concurrent_retries_with_one_key_apply_once(fake: FakeChargebee, cb: Chargebee) -> None:
    def call(_: int) -> bool:
        got = cb.Subscription.change_term_end(
            "sub_1", {"term_ends_at": fake.clock.now + 40 * DAY}, headers={KEY: "same"}
        )
        return bool(got.is_idempotency_replayed)

    with ThreadPoolExecutor(max_workers=6) as pool:
        replayed = list(pool.map(call, range(6)))
    assert sorted(replayed) == [False] + [True] * 5
    assert len(fake.history("sub_1")) == 1


def test_refusals_are_not_stored_under_the_key(fake: FakeChargebee, cb: Chargebee) -> None:
    fake.seed_subscription("s", items="basic-USD-monthly", status="paused")
    refused(lambda: cb.Subscription.remove_scheduled_cancellation("s", headers={KEY: "k"}))
    cb.Subscription.resume("s", {"resume_option": "immediately"}, headers={KEY: "k2"})
    cb.Subscription.cancel_for_items("s", {"end_of_term": True})
    got = cb.Subscription.remove_scheduled_cancellation("s", headers={KEY: "k"})
    assert got.is_idempotency_replayed is False and got.subscription.status == "active"


# --- estimates ---------------------------------------------------------------------------------


def test_estimate_prorates_an_upgrade_without_changing_anything(
    fake: FakeChargebee, cb: Chargebee
) -> None:
    fake.clock.advance(15 * DAY)  # half the monthly term is left
    before = fake.subscription("sub_1")
    est = cb.Estimate.update_subscription_for_items(
        {
            "subscription": {"id": "sub_1"},
            "subscription_items": [{"item_price_id": "pro-USD-monthly"}],
            "coupon_ids": ["TEN"],
        },
        headers={KEY: "ignored"},
    ).estimate
    assert est.invoice_estimate.sub_total == 1500 and est.invoice_estimate.total == 1350
    assert est.invoice_estimate.line_items[0].entity_id == "pro-USD-monthly"
    (credit,) = est.credit_note_estimates
    assert credit.total == 500  # the unused half of basic
    assert est.next_invoice_estimate.total == 2700  # pro less 10 %, a full term
    assert est.subscription_estimate.next_billing_at == before["next_billing_at"]
    assert fake.subscription("sub_1") == before and fake.history("sub_1") == []
    without = cb.Estimate.update_subscription_for_items(
        {
            "subscription": {"id": "sub_1"},
            "subscription_items": [{"item_price_id": "pro-USD-monthly"}],
            "prorate": False,
        }
    ).estimate
    assert without.invoice_estimate is None and without.credit_note_estimates is None
    error = refused(
        lambda: cb.Estimate.update_subscription_for_items(
            {"subscription": {"id": "sub_1"}, "coupon_ids": ["NOPE"]}
        )
    )
    assert error.api_error_code == "resource_not_found"


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "internal_error"),
        (503, "internal_temporary_error"),
        (429, "api_request_limit_exceeded"),
    ],
)
def test_fail_next_answers_errors_without_processing(
    fake: FakeChargebee, cb: Chargebee, status: int, code: str
) -> None:
    fake.fail_next(2, status=status, retry_after=7)
    for _ in range(2):
        error = refused(
            lambda: cb.Subscription.update_for_items(
                "sub_1", {"coupon_ids": ["TEN"]}, headers={KEY: "k"}
            )
        )
        assert isinstance(error, OperationFailedError)
        assert (error.http_status_code, error.api_error_code) == (status, code)
        assert error.http_headers["retry-after"] == "7"
    assert fake.history("sub_1") == []
    got = cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]}, headers={KEY: "k"})
    assert got.is_idempotency_replayed is False and len(fake.history("sub_1")) == 1


def test_fail_next_can_spare_reads(fake: FakeChargebee, cb: Chargebee) -> None:
    fake.fail_next(1, status=503, method="POST")
    assert cb.Subscription.retrieve("sub_1").subscription.status == "active"  # a re-read works
    error = refused(lambda: cb.Subscription.pause("sub_1", {"pause_option": "immediately"}))
    assert error.http_status_code == 503
    assert cb.Subscription.pause("sub_1", {"pause_option": "immediately"}).subscription.status == (
        "paused"
    )


def test_apply_then_drop_connection_applies_once_and_replays(
    fake: FakeChargebee, cb: Chargebee
) -> None:
    fake.apply_then_drop_connection(1)
    with pytest.raises(httpx.TransportError):
        cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}, headers={KEY: "k"})
    assert fake.subscription("sub_1")["status"] == "non_renewing"
    assert fake.calls[-1].status == 0
    got = cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}, headers={KEY: "k"})
    assert got.is_idempotency_replayed is True and got.subscription.status == "non_renewing"
    assert len(fake.history("sub_1")) == 1
    # without the key, the retry is a new request: Chargebee refuses it (already scheduled)
    error = refused(lambda: cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}))
    assert error.api_error_code == "invalid_state_for_request"


def test_latency_delays_every_answer(fake: FakeChargebee, cb: Chargebee) -> None:
    impatient = Chargebee(
        api_key=fake.api_key or "",
        site=fake.site,
        chargebee_domain=fake.domain,
        protocol="http",
        read_time_out=0.2,
    )
    impatient.env.api_endpoint = f"{fake.api_base}/api/v2"
    fake.latency(1.0)
    with pytest.raises(httpx.ReadTimeout):
        impatient.Subscription.retrieve("sub_1")
    fake.latency(0)
    assert impatient.Subscription.retrieve("sub_1").subscription.id == "sub_1"


# --- webhooks ---------------------------------------------------------------------------------


def test_changes_queue_chargebee_shaped_events(fake: FakeChargebee, cb: Chargebee) -> None:
    cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]})
    cb.Subscription.pause("sub_1", {"pause_option": "immediately"})
    changed, paused = fake.take_events()
    assert fake.take_events() == []
    assert (changed["event_type"], paused["event_type"]) == (
        "subscription_changed",
        "subscription_paused",
    )
    for event in (changed, paused):
        assert event["object"] == "event" and event["api_version"] == "v2"
        assert event["source"] == "api" and event["occurred_at"] == fake.clock.now
        assert event["content"]["customer"]["id"] == "cus_1"
    assert changed["content"]["subscription"]["coupons"][0]["coupon_id"] == "TEN"
    assert paused["content"]["subscription"]["status"] == "paused"
    assert (
        changed["content"]["subscription"]["resource_version"]
        < paused["content"]["subscription"]["resource_version"]
    )
    parsed = cb.Event.deserialize(json.dumps(changed))
    assert (
        parsed.event_type == "subscription_changed"
        and parsed.content["subscription"]["id"] == "sub_1"
    )
    assert fake.event_for("sub_1")["content"]["subscription"] == fake.subscription("sub_1")


def test_post_events_duplicates_and_reorders_with_basic_auth(fake: FakeChargebee) -> None:
    events = [
        fake.event_for("sub_1", "subscription_changed"),
        fake.event_for("sub_1", "subscription_paused"),
    ]
    with Receiver() as receiver:
        results = fake.post_events(
            receiver.url_for("/webhooks/chargebee/acme"),
            events,
            "hook-user",
            "hook-pass",
            duplicates=1,
            order="reverse",
        )
        got = receiver.received("POST", "/webhooks/chargebee/acme")
    ids = [events[1]["id"], events[1]["id"], events[0]["id"], events[0]["id"]]
    assert results == [(i, 200) for i in ids]
    assert [r.json()["id"] for r in got] == ids
    expected = "Basic " + base64.b64encode(b"hook-user:hook-pass").decode()
    assert {r.headers["authorization"] for r in got} == {expected}
    assert got[0].headers["content-type"] == "application/json"


def test_out_of_band_changes_bump_versions_and_queue_events(
    fake: FakeChargebee, cb: Chargebee
) -> None:
    before = cb.Coupon.retrieve("TEN").coupon.resource_version
    fake.clock.advance(5)
    fake.update("coupon", "TEN", status="archived")
    fake.update("subscription", "sub_1", auto_collection="off")
    coupon_event, sub_event = fake.take_events()
    assert coupon_event["event_type"] == "coupon_updated"
    assert coupon_event["content"]["coupon"]["status"] == "archived"
    assert coupon_event["content"]["coupon"]["resource_version"] > before
    assert sub_event["event_type"] == "subscription_changed"
    assert [h["op"] for h in fake.history("sub_1")] == ["external_update"]
    error = refused(lambda: cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]}))
    assert (error.api_error_code, error.param) == ("param_wrong_value", "coupon_ids[0]")
    custom = fake.event("customer_changed", customer=fake.seed_customer("cus_9"))
    assert custom["content"]["customer"]["id"] == "cus_9" and custom["api_version"] == "v2"
