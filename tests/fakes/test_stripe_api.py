"""The fake Stripe API, driven through the unmodified stripe SDK: it answers like Stripe, and —
what makes it worth testing against — it refuses what Stripe refuses."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import stripe

from tests.fakes.stripe_api import FakeStripe
from tests.fakes.stripefake.objects import fixture

T0 = 1_790_000_000
DAY = 86400


@pytest.fixture
def seeded(fake_stripe: FakeStripe) -> dict[str, Any]:
    price = fake_stripe.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
    other = fake_stripe.seed_price(id="price_pro", unit_amount=3000, nickname="Pro")
    customer = fake_stripe.seed_customer(email="ada@example.test")
    fake_stripe.seed_coupon(id="SAVE10", percent_off=10)
    sub = fake_stripe.seed_subscription(customer, price)
    return {"price": price, "other": other, "customer": customer, "sub": sub}


def _error(call: Any, kind: type[stripe.StripeError]) -> Any:
    with pytest.raises(kind) as info:
        call()
    return info.value


# --- shapes -------------------------------------------------------------------------------------


def test_objects_have_the_shape_of_stripes_fixtures(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client = fake_stripe.client()
    got = {
        "subscription": client.v1.subscriptions.retrieve(seeded["sub"]["id"]),
        "customer": client.v1.customers.retrieve(seeded["customer"]["id"]),
        "price": client.v1.prices.retrieve("price_basic"),
        "coupon": client.v1.coupons.retrieve("SAVE10"),
        "product": client.v1.products.retrieve(seeded["price"]["product"]),
    }
    for kind, obj in got.items():
        assert set(fixture(kind)) <= set(obj.to_dict()), kind
        assert obj.object == kind
    sub = got["subscription"]
    assert sub.customer == seeded["customer"]["id"] and sub.status == "active"
    (item,) = sub["items"].data
    assert (
        item.object == "subscription_item" and item.price.id == "price_basic" and item.quantity == 1
    )
    assert item.current_period_end > item.current_period_start


def test_every_response_carries_a_request_id(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {fake_stripe.api_key}"}
    for path in (
        f"/v1/subscriptions/{seeded['sub']['id']}",
        "/v1/subscriptions/sub_nope",
        "/v1/nowhere",
    ):
        response = httpx.get(fake_stripe.url + path, headers=headers)
        assert response.headers["request-id"].startswith("req_"), path
    assert httpx.get(fake_stripe.url + "/v1/customers").headers["request-id"].startswith("req_")


# --- refusals -----------------------------------------------------------------------------------


def test_a_wrong_or_revoked_key_is_refused(fake_stripe: FakeStripe, seeded: dict[str, Any]) -> None:
    sub_id = seeded["sub"]["id"]
    err = _error(
        lambda: fake_stripe.client("sk_test_wrong_0000").v1.subscriptions.retrieve(sub_id),
        stripe.AuthenticationError,
    )
    assert err.http_status == 401 and "Invalid API Key provided" in err.user_message
    assert err.json_body["error"]["type"] == "invalid_request_error"
    assert "0000" in err.user_message and "sk_test_wrong_0000" not in err.user_message  # masked
    fake_stripe.invalidate_key()
    _error(
        lambda: fake_stripe.client().v1.subscriptions.retrieve(sub_id), stripe.AuthenticationError
    )
    fake_stripe.invalidate_key(False)
    assert fake_stripe.client().v1.subscriptions.retrieve(sub_id).id == sub_id


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"colour": "red"}, "colour"),
        ({"pause_collection": {"behavior": "void", "when": 1}}, "pause_collection[when]"),
        ({"items": [{"price": "price_pro", "plan_x": "y"}]}, "items[0][plan_x]"),
    ],
)
def test_unknown_parameters_are_refused_and_change_nothing(
    fake_stripe: FakeStripe, seeded: dict[str, Any], params: dict[str, Any], param: str
) -> None:
    sub_id = seeded["sub"]["id"]
    err = _error(
        lambda: fake_stripe.client().v1.subscriptions.update(sub_id, params),
        stripe.InvalidRequestError,
    )
    assert (err.http_status, err.code, err.param) == (400, "parameter_unknown", param)
    assert err.user_message == f"Received unknown parameter: {param}"
    assert fake_stripe.history(sub_id) == []


def test_missing_required_parameters_are_refused(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client = fake_stripe.client()
    err = _error(
        lambda: client.v1.subscriptions.update(
            seeded["sub"]["id"], {"pause_collection": {"resumes_at": T0}}
        ),
        stripe.InvalidRequestError,
    )
    assert (err.code, err.param) == ("parameter_missing", "pause_collection[behavior]")
    err = _error(lambda: client.v1.invoices.create_preview({}), stripe.InvalidRequestError)
    assert (err.code, err.param) == ("parameter_missing", "customer")
    err = _error(
        lambda: client.v1.coupons.create({"percent_off": 20, "duration": "repeating"}),
        stripe.InvalidRequestError,
    )
    assert (err.code, err.param) == ("parameter_missing", "duration_in_months")


def test_unknown_ids_are_refused(fake_stripe: FakeStripe, seeded: dict[str, Any]) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    err = _error(
        lambda: client.v1.subscriptions.retrieve("sub_missing"), stripe.InvalidRequestError
    )
    assert (err.http_status, err.code, err.param) == (404, "resource_missing", "id")
    assert err.user_message == "No such subscription: 'sub_missing'"
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, {"discounts": [{"coupon": "NOPE"}]}),
        stripe.InvalidRequestError,
    )
    assert (err.http_status, err.code, err.param) == (
        400,
        "resource_missing",
        "discounts[0][coupon]",
    )
    item_id = seeded["sub"]["items"]["data"][0]["id"]
    err = _error(
        lambda: client.v1.subscriptions.update(
            sub_id, {"items": [{"id": item_id, "price": "price_gone"}]}
        ),
        stripe.InvalidRequestError,
    )
    assert (err.code, err.param) == ("resource_missing", "items[0][price]")
    err = _error(
        lambda: client.v1.subscriptions.update(
            sub_id, {"items": [{"id": "si_other", "price": "price_pro"}]}
        ),
        stripe.InvalidRequestError,
    )
    assert (err.code, err.param) == ("resource_missing", "items[0][id]")
    assert fake_stripe.history(sub_id) == []


def test_a_refused_update_applies_none_of_its_parts(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = seeded["sub"]["id"]
    before = fake_stripe.subscription(sub_id)
    _error(
        lambda: fake_stripe.client().v1.subscriptions.update(
            sub_id,
            {"discounts": [{"coupon": "SAVE10"}], "metadata": {"a": "1"}, "trial_end": T0 - DAY},
        ),
        stripe.InvalidRequestError,
    )
    assert fake_stripe.subscription(sub_id) == before
    assert fake_stripe.object("coupon", "SAVE10")["times_redeemed"] == 0
    assert fake_stripe.version(sub_id) == 1 and fake_stripe.events == []


def test_the_state_machine_refuses_what_stripe_refuses(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    err = _error(lambda: client.v1.subscriptions.resume(sub_id), stripe.InvalidRequestError)
    assert err.http_status == 400 and "paused" in err.user_message
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, {"trial_end": 1_000}),
        stripe.InvalidRequestError,
    )
    assert err.param == "trial_end" and "in the future" in err.user_message
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, {"pause_collection": {"behavior": "sleep"}}),
        stripe.InvalidRequestError,
    )
    assert err.param == "pause_collection[behavior]"
    assert client.v1.subscriptions.cancel(sub_id).status == "canceled"
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True}),
        stripe.InvalidRequestError,
    )
    assert (
        err.user_message
        == "A canceled subscription can only update its cancellation_details and metadata."
    )
    assert client.v1.subscriptions.update(
        sub_id, {"metadata": {"note": "ok"}}
    ).metadata.to_dict() == {"note": "ok"}
    err = _error(lambda: client.v1.subscriptions.cancel(sub_id), stripe.InvalidRequestError)
    assert (err.http_status, err.code) == (
        404,
        "resource_missing",
    )  # Stripe: a canceled one is "gone"
    assert [c.action for c in fake_stripe.history(sub_id)] == ["cancel", "update"]


# --- the eight billing actions ------------------------------------------------------------------


def test_the_billing_actions_change_the_subscription(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    item_id = seeded["sub"]["items"]["data"][0]["id"]
    sub = client.v1.subscriptions.update(sub_id, {"discounts": [{"coupon": "SAVE10"}]})
    (discount_id,) = sub.discounts
    expanded = client.v1.subscriptions.retrieve(sub_id, {"expand": ["discounts"]})
    assert (
        expanded.discounts[0].source.coupon == "SAVE10" and expanded.discounts[0].id == discount_id
    )
    assert fake_stripe.object("coupon", "SAVE10")["times_redeemed"] == 1
    sub = client.v1.subscriptions.update(
        sub_id, {"items": [{"id": item_id, "price": "price_pro"}], "proration_behavior": "none"}
    )
    assert sub["items"].data[0].price.id == "price_pro" and sub["items"].data[0].id == item_id
    sub = client.v1.subscriptions.update(
        sub_id, {"pause_collection": {"behavior": "void", "resumes_at": T0}}
    )
    assert sub.pause_collection.behavior == "void" and sub.pause_collection.resumes_at == T0
    assert client.v1.subscriptions.update(sub_id, {"pause_collection": ""}).pause_collection is None
    assert client.v1.subscriptions.pause(sub_id).status == "paused"
    assert client.v1.subscriptions.resume(sub_id).status == "active"
    trial_end = fake_stripe.store.now() + 10 * DAY
    sub = client.v1.subscriptions.update(sub_id, {"trial_end": trial_end})
    assert (sub.status, sub.trial_end) == ("trialing", trial_end)
    assert client.v1.subscriptions.update(sub_id, {"trial_end": "now"}).status == "active"
    sub = client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True})
    assert sub.cancel_at_period_end and sub.cancel_at == sub["items"].data[0].current_period_end
    assert client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": False}).cancel_at is None
    assert client.v1.subscriptions.update(sub_id, {"discounts": ""}).discounts == []
    assert client.v1.subscriptions.cancel(sub_id).status == "canceled"
    history = fake_stripe.history(sub_id)
    assert [c.version for c in history] == list(range(2, 2 + len(history)))
    assert [c.action for c in history] == ["update"] * 4 + ["pause", "resume"] + ["update"] * 5 + [
        "cancel"
    ]


# --- idempotency --------------------------------------------------------------------------------


def test_the_same_key_replays_the_answer_and_applies_once(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    options: Any = {"idempotency_key": "fulfil-1-step-1"}
    first = client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True}, options)
    again = client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True}, options)
    assert again.to_dict() == first.to_dict()
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(fake_stripe.history(sub_id)) == 1
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": False}, options),
        stripe.IdempotencyError,
    )
    assert err.http_status == 400 and "fulfil-1-step-1" in err.user_message
    assert err.json_body["error"]["type"] == "idempotency_error"
    assert (
        len(fake_stripe.history(sub_id)) == 1
        and fake_stripe.subscription(sub_id)["cancel_at_period_end"]
    )


def test_idempotency_keys_belong_to_one_api_key(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = seeded["sub"]["id"]
    fake_stripe.add_api_key("sk_test_second_key_9999")
    first, second = fake_stripe.client(), fake_stripe.client("sk_test_second_key_9999")
    options: Any = {"idempotency_key": "shared"}
    first.v1.subscriptions.update(sub_id, {"metadata": {"by": "first"}}, options)
    by_second = second.v1.subscriptions.update(sub_id, {"metadata": {"by": "second"}}, options)
    assert by_second.metadata["by"] == "second"  # not the first key's stored answer
    assert "Idempotent-Replayed" not in by_second.last_response.headers
    assert len(fake_stripe.history(sub_id)) == 2


def test_a_delete_ignores_its_idempotency_key_as_stripe_does(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    """Stripe: keys on GET and DELETE have no effect, so a retried cancel is refused, not replayed."""
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    options: Any = {"idempotency_key": "cancel-1"}
    assert client.v1.subscriptions.cancel(sub_id, options=options).status == "canceled"
    err = _error(
        lambda: client.v1.subscriptions.cancel(sub_id, options=options), stripe.InvalidRequestError
    )
    assert (err.http_status, err.code) == (404, "resource_missing")
    assert [c.action for c in fake_stripe.history(sub_id)] == ["cancel"]


def test_a_key_still_running_is_refused_with_409(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    fake_stripe.latency(1.0)
    options: Any = {"idempotency_key": "slow-1"}
    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(client.v1.subscriptions.pause(sub_id, options=options))
    )
    first.start()
    while not fake_stripe.app.running:  # the first request has arrived and is being worked on
        time.sleep(0.01)
    err = _error(lambda: client.v1.subscriptions.pause(sub_id, options=options), stripe.StripeError)
    assert err.http_status == 409 and err.json_body["error"]["type"] == "idempotency_error"
    first.join()
    fake_stripe.latency(0)
    assert results[0].status == "paused"
    again = client.v1.subscriptions.pause(sub_id, options=options)
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [c.action for c in fake_stripe.history(sub_id)] == ["pause"]


def test_a_stored_500_is_replayed_and_a_new_key_applies_once(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    fake_stripe.fail_next(1, 500)
    params: Any = {"discounts": [{"coupon": "SAVE10"}]}
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, params, {"idempotency_key": "k1"}),
        stripe.APIError,
    )
    assert err.http_status == 500 and fake_stripe.history(sub_id) == []
    err = _error(
        lambda: client.v1.subscriptions.update(sub_id, params, {"idempotency_key": "k1"}),
        stripe.APIError,
    )
    assert err.http_status == 500 and err.headers["Idempotent-Replayed"] == "true"
    assert fake_stripe.history(sub_id) == []
    client.v1.subscriptions.update(sub_id, params, {"idempotency_key": "k1-gen2"})
    assert [c.idempotency_key for c in fake_stripe.history(sub_id)] == ["k1-gen2"]


def test_a_500_after_applying_leaves_the_change_and_replays_the_500(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    fake_stripe.fail_next(1, 500, apply=True)
    for _ in range(2):
        _error(
            lambda: client.v1.subscriptions.pause(sub_id, options={"idempotency_key": "p1"}),
            stripe.APIError,
        )
    assert [c.action for c in fake_stripe.history(sub_id)] == ["pause"]
    assert client.v1.subscriptions.retrieve(sub_id).status == "paused"


def test_a_429_is_not_stored_and_says_when_to_retry(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    fake_stripe.fail_next(1, 429, retry_after=2, should_retry=True)
    err = _error(
        lambda: client.v1.subscriptions.pause(sub_id, options={"idempotency_key": "r1"}),
        stripe.RateLimitError,
    )
    assert err.headers["Retry-After"] == "2" and err.headers["Stripe-Should-Retry"] == "true"
    assert err.request_id.startswith("req_")
    assert (
        client.v1.subscriptions.pause(sub_id, options={"idempotency_key": "r1"}).status == "paused"
    )
    assert len(fake_stripe.history(sub_id)) == 1


def test_the_sdk_retries_follow_stripe_should_retry(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = seeded["sub"]["id"]
    retrying = fake_stripe.client(max_network_retries=2)
    fake_stripe.fail_next(1, 503, should_retry=True)
    assert retrying.v1.subscriptions.pause(sub_id).status == "paused"
    posts = [r for r in fake_stripe.requests if r.method == "POST"]
    assert [r.status for r in posts] == [503, 200] and posts[0].idempotency_key == posts[
        1
    ].idempotency_key
    fake_stripe.fail_next(1, 500, should_retry=False)
    _error(lambda: retrying.v1.subscriptions.resume(sub_id), stripe.APIError)
    assert [r.status for r in fake_stripe.requests if r.method == "POST"][2:] == [500]
    assert [c.action for c in fake_stripe.history(sub_id)] == ["pause"]


def test_a_dropped_connection_after_applying_replays_on_retry(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    fake_stripe.apply_then_drop_connection(1)
    options: Any = {"idempotency_key": "drop-1"}
    _error(
        lambda: client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True}, options),
        stripe.APIConnectionError,
    )
    assert len(fake_stripe.history(sub_id)) == 1 and fake_stripe.requests[-1].status == 0
    again = client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True}, options)
    assert (
        again.cancel_at_period_end and again.last_response.headers["Idempotent-Replayed"] == "true"
    )
    assert len(fake_stripe.history(sub_id)) == 1


def test_latency_delays_every_answer(fake_stripe: FakeStripe, seeded: dict[str, Any]) -> None:
    impatient = fake_stripe.client(http_client=stripe.RequestsClient(timeout=0.2))
    fake_stripe.latency(2.0)
    _error(
        lambda: impatient.v1.subscriptions.retrieve(seeded["sub"]["id"]), stripe.APIConnectionError
    )
    fake_stripe.latency(0)
    assert impatient.v1.subscriptions.retrieve(seeded["sub"]["id"]).status == "active"


# --- lists --------------------------------------------------------------------------------------


def test_lists_paginate_newest_first_and_filter_by_status(fake_stripe: FakeStripe) -> None:
    price = fake_stripe.seed_price()
    ids = [
        fake_stripe.seed_subscription(fake_stripe.seed_customer(), price)["id"] for _ in range(23)
    ]
    fake_stripe.seed_subscription(fake_stripe.seed_customer(), price, status="canceled")
    client = fake_stripe.client()
    first = client.v1.subscriptions.list({"limit": 10})
    assert first.has_more and [s.id for s in first.data] == ids[::-1][:10]
    second = client.v1.subscriptions.list({"limit": 10, "starting_after": first.data[-1].id})
    assert [s.id for s in second.data] == ids[::-1][10:20]
    assert [s.id for s in first.auto_paging_iter()] == ids[::-1]  # the canceled one isn't listed
    assert (
        len(list(client.v1.subscriptions.list({"status": "all", "limit": 7}).auto_paging_iter()))
        == 24
    )
    assert len(client.v1.subscriptions.list({"status": "canceled"}).data) == 1
    err = _error(lambda: client.v1.subscriptions.list({"limit": 101}), stripe.InvalidRequestError)
    assert err.param == "limit"
    err = _error(
        lambda: client.v1.subscriptions.list({"starting_after": "sub_unknown"}),
        stripe.InvalidRequestError,
    )
    assert (err.code, err.param) == ("resource_missing", "starting_after")
    customers = client.v1.customers.list({"limit": 100})
    assert len(customers.data) == 24 and not customers.has_more


def test_ten_thousand_subscriptions_seed_and_page_through(fake_stripe: FakeStripe) -> None:
    price = fake_stripe.seed_price()
    ids = fake_stripe.seed_many(
        10_000, price, statuses=("active", "trialing", "canceled", "paused")
    )
    client, newest_first = fake_stripe.client(), ids[::-1]
    first = client.v1.subscriptions.list({"status": "all", "limit": 100})
    assert [s.id for s in first.data] == newest_first[:100] and first.has_more
    middle = client.v1.subscriptions.list(
        {"status": "all", "limit": 100, "starting_after": ids[5000]}
    )
    assert [s.id for s in middle.data] == ids[4900:5000][::-1]
    last = client.v1.subscriptions.list({"status": "all", "limit": 100, "starting_after": ids[50]})
    assert [s.id for s in last.data] == ids[:50][::-1] and not last.has_more
    seen: list[str] = []  # every page, without the SDK's (slow) object building
    page: dict[str, Any] = {"has_more": True, "data": []}
    with httpx.Client(
        base_url=fake_stripe.url, headers={"Authorization": f"Bearer {fake_stripe.api_key}"}
    ) as http:
        while page["has_more"]:
            after = {"starting_after": page["data"][-1]["id"]} if page["data"] else {}
            page = http.get(
                "/v1/subscriptions", params={"status": "all", "limit": 100, **after}
            ).json()
            seen += [s["id"] for s in page["data"]]
    assert seen == newest_first
    active = client.v1.subscriptions.list({"limit": 100, "starting_after": ids[9000]})
    assert {s.status for s in active.data} == {"active", "trialing", "paused"}


def test_prices_and_coupons_list(fake_stripe: FakeStripe) -> None:
    client = fake_stripe.client()
    price = fake_stripe.seed_price(unit_amount=500)
    fake_stripe.seed_price(unit_amount=900)
    fake_stripe.seed_coupon(id="FIVE", amount_off=500, duration="repeating", duration_in_months=3)
    created = client.v1.coupons.create({"id": "HALF", "percent_off": 50, "duration": "once"})
    assert created.percent_off == 50 and created.amount_off is None
    assert [c.id for c in client.v1.coupons.list().data] == ["HALF", "FIVE"]
    assert [p.id for p in client.v1.prices.list({"product": price["product"]}).data] == [
        price["id"]
    ]
    assert len(client.v1.prices.list().data) == 2
    assert [e["type"] for e in fake_stripe.events] == ["coupon.created"]


# --- invoice preview ----------------------------------------------------------------------------


def test_the_preview_prorates_from_the_current_period() -> None:
    clock = {"now": T0}
    with FakeStripe(now=lambda: clock["now"]) as fake:
        fake.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
        fake.seed_price(id="price_pro", unit_amount=3000, nickname="Pro")
        fake.seed_coupon(id="SAVE10", percent_off=10)
        customer = fake.seed_customer()
        sub = fake.seed_subscription(customer, "price_basic", coupons=["SAVE10"])
        clock["now"] = T0 + 15 * DAY  # halfway through the 30-day period
        client, item = fake.client(), sub["items"]["data"][0]["id"]

        def preview(behavior: str, **extra: Any) -> Any:
            return client.v1.invoices.create_preview(
                {
                    "customer": customer["id"],
                    "subscription": sub["id"],
                    **extra,
                    "subscription_details": {
                        "items": [{"id": item, "price": "price_pro"}],
                        "proration_behavior": behavior,
                    },
                }
            )

        upcoming = preview("create_prorations")
        assert [
            (line.amount, line.parent.subscription_item_details.proration)
            for line in upcoming.lines.data
        ] == [(-1000, True), (1500, True), (3000, False)]
        assert upcoming.subtotal == 3500 and upcoming.total_discount_amounts[0].amount == 350
        assert (upcoming.total, upcoming.amount_due) == (3150, 3150)
        assert preview("always_invoice", discounts="").amount_due == 500
        assert preview("none").subtotal == 3000
        err = _error(
            lambda: preview("none", discounts=[{"coupon": "GONE"}]), stripe.InvalidRequestError
        )
        assert err.param == "discounts[0][coupon]"
        assert (
            fake.history(sub["id"]) == []
            and fake.subscription(sub["id"])["items"]["data"][0]["price"]["id"] == "price_basic"
        )


# --- webhooks -----------------------------------------------------------------------------------


def test_changes_become_signed_events_the_sdk_verifies(
    fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = seeded["sub"]["id"]
    fake_stripe.client().v1.subscriptions.update(
        sub_id, {"cancel_at_period_end": True}, {"idempotency_key": "ev-1"}
    )
    (event,) = fake_stripe.events
    assert set(fixture("event")) <= set(event) and event["id"].startswith("evt_")
    assert (
        event["type"] == "customer.subscription.updated" and event["data"]["object"]["id"] == sub_id
    )
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert event["request"]["idempotency_key"] == "ev-1"
    body, headers = fake_stripe.signed(event)
    verified = stripe.Webhook.construct_event(
        body, headers["Stripe-Signature"], fake_stripe.webhook_secret
    )
    assert verified.id == event["id"] and verified.data.object.cancel_at_period_end is True
    assert (
        fake_stripe.client()
        .construct_event(body, headers["Stripe-Signature"], fake_stripe.webhook_secret)
        .id
        == event["id"]
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_someone_else")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body.replace(b"true", b"false"), headers["Stripe-Signature"], fake_stripe.webhook_secret
        )


def test_events_are_delivered_reordered_and_twice_on_request(
    fake_stripe: FakeStripe, seeded: dict[str, Any], receiver: Any
) -> None:
    client, sub_id = fake_stripe.client(), seeded["sub"]["id"]
    client.v1.subscriptions.pause(sub_id)
    client.v1.subscriptions.resume(sub_id)
    client.v1.subscriptions.cancel(sub_id)
    responses = fake_stripe.deliver(receiver.url_for("/hook"), reverse=True, duplicate=True)
    assert [r.status_code for r in responses] == [200] * 6
    types = [json.loads(r.body)["type"] for r in receiver.requests]
    assert types == [
        t
        for t in (
            "customer.subscription.deleted",
            "customer.subscription.resumed",
            "customer.subscription.paused",
        )
        for _ in (0, 1)
    ]
    for request in receiver.requests:
        stripe.Webhook.construct_event(
            request.body, request.headers["stripe-signature"], fake_stripe.webhook_secret
        )
    assert fake_stripe.undelivered() == [] and fake_stripe.deliver(receiver.url_for("/hook")) == []
    current = fake_stripe.event_for("subscription", sub_id, "customer.subscription.updated")
    assert current["data"]["object"]["status"] == "canceled" and fake_stripe.undelivered() == []
    (response,) = fake_stripe.post_events(
        receiver.url_for("/hook"), [current], secret="whsec_wrong"
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            receiver.requests[-1].body,
            receiver.requests[-1].headers["stripe-signature"],
            fake_stripe.webhook_secret,
        )
