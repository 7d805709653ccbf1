"""POST /api/v2/personalized_offers against a real database."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.app import TestApp
from tests.support.catalog import offer, seed

PATH = "/api/v2/personalized_offers"


async def ask(app: TestApp, key: str, **params: Any) -> dict[str, Any]:
    r = await app.post(PATH, key, json={"customer_id": "cus_1", **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_returns_the_offer_and_snapshots_it(app: TestApp) -> None:
    keys = await seed(app, brand={"id": "b1", "name": "Acme"})
    before = int(time.time())
    body = await ask(app, keys["publishable"], subscription_id="sub_1")
    assert "list" not in body
    assert body["brand"] == {"id": "b1", "name": "Acme", "object": "brand"}
    # default expiry is 24 hours
    assert before + 86400 <= body["expires_at"] <= int(time.time()) + 86400
    (po,) = body["personalized_offers"]
    assert po["object"] == "personalized_offer"
    assert po["offer_id"] == "stay"
    assert len(po["id"]) <= 50
    assert po["content"] == {"title": "Before you go", "description": "Here is something for you."}
    assert [o["id"] for o in po["options"]] == ["discount", "upgrade", "talk", "gift", "call"]
    assert po["options"][1] == {
        "id": "upgrade",
        "label": "Go Pro",
        "processing_type": "checkout",
        "processing_layout": "in_app",
    }
    # internal fields never leave the server
    assert all("billing_action" not in o and "webhook_url" not in o for o in po["options"])
    (row,) = await app.fetch("SELECT * FROM personalized_offers WHERE id = %s", po["id"])
    assert row["subscription_id"] == "sub_1"
    assert row["options"][0]["billing_action"] == {"type": "apply_coupon", "coupon_id": "SAVE20"}

    # Editing the offer later does not change what was issued.
    await app.put("acme", "offers/stay", offer(content={"title": "New", "description": ""}))
    (row,) = await app.fetch("SELECT content FROM personalized_offers WHERE id = %s", po["id"])
    assert row["content"]["title"] == "Before you go"


async def test_no_eligible_offer_is_an_empty_list_with_expires_at(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(status="paused"))
    body = await ask(app, keys["publishable"])
    assert body["personalized_offers"] == []
    assert isinstance(body["expires_at"], int)
    assert "brand" not in body


@pytest.mark.parametrize(
    ("eligibility", "params", "eligible"),
    [
        # the Python SDK lower-cases custom keys; any client's keys are matched lower-cased
        ("custom.viewcount > 3", {"custom": {"viewCount": 6}}, True),
        ("custom.viewcount > 3", {"custom": {"viewcount": 2}}, False),
        # a field that is not there makes the offer ineligible, not the request fail
        ("custom.viewcount > 3", {}, False),
        ("has(custom.viewcount)", {}, False),
        # the ledger's subscription and customer
        ("subscription.status == 'active' && subscription.plan_id == 'basic'", {}, True),
        ("customer.email == 'ada@example.com'", {}, True),
        # timestamps are CEL timestamps
        ("subscription.current_term_end > now", {}, True),
        # the request's user fields and context
        ("'admin' in user.roles", {"roles": ["member", "admin"]}, True),
        ("context.locale.startsWith('fr')", {"request_context": {"locale": "fr-FR"}}, True),
        ("context.locale.startsWith('fr')", {"request_context": {"locale": "en-US"}}, False),
        # a non-boolean result is not "eligible"
        ("1 + 1", {}, False),
    ],
)
async def test_eligibility_expressions(
    app: TestApp, eligibility: str, params: dict[str, Any], eligible: bool
) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(eligibility=eligibility))
    body = await ask(app, keys["publishable"], subscription_id="sub_1", **params)
    assert len(body["personalized_offers"]) == (1 if eligible else 0)


async def test_highest_priority_eligible_offer_wins(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/low", offer(priority=1))
    await app.put("acme", "offers/high", offer(priority=50, eligibility="custom.vip == true"))
    await app.put("acme", "offers/draft", offer(priority=99, status="draft"))
    body = await ask(app, keys["publishable"], custom={"vip": True})
    assert body["personalized_offers"][0]["offer_id"] == "high"
    body = await ask(app, keys["publishable"], custom={"vip": False})
    assert body["personalized_offers"][0]["offer_id"] == "stay"


async def test_offer_window(app: TestApp) -> None:
    keys = await seed(app)
    now = int(time.time())
    await app.put("acme", "offers/stay", offer(starts_at=now + 3600))
    assert (await ask(app, keys["publishable"]))["personalized_offers"] == []
    await app.put("acme", "offers/stay", offer(starts_at=now - 3600, ends_at=now + 3600))
    assert len((await ask(app, keys["publishable"]))["personalized_offers"]) == 1
    app.clock.advance(7200)
    assert (await ask(app, keys["publishable"]))["personalized_offers"] == []


async def test_business_entity_scopes_candidates_and_is_stored(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(business_entity_id="be_eu"))
    header = {"chargebee-business-entity-id": "be_us"}
    r = await app.post(PATH, keys["publishable"], json={"customer_id": "cus_1"}, headers=header)
    assert r.json()["personalized_offers"] == []
    header = {"chargebee-business-entity-id": "be_eu"}
    r = await app.post(PATH, keys["publishable"], json={"customer_id": "cus_1"}, headers=header)
    (po,) = r.json()["personalized_offers"]
    (row,) = await app.fetch(
        "SELECT business_entity_id FROM personalized_offers WHERE id = %s", po["id"]
    )
    assert row["business_entity_id"] == "be_eu"


async def test_form_body_equals_json_body(app: TestApp) -> None:
    keys = await seed(app)
    await app.put(
        "acme",
        "offers/stay",
        offer(eligibility="custom.viewcount > 3 && context.locale == 'fr-FR' && 'b' in user.roles"),
    )
    r = await app.post(
        PATH,
        keys["publishable"],
        data={
            "customer_id": "cus_1",
            "request_context[locale]": "fr-FR",
            "roles[0]": "a",
            "roles[1]": "b",
            "custom": '{"viewCount": 6}',
        },
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["personalized_offers"]) == 1


async def test_subscription_is_picked_when_omitted(app: TestApp) -> None:
    keys = await seed(app)
    body = await ask(app, keys["publishable"])
    po_id = body["personalized_offers"][0]["id"]
    (row,) = await app.fetch("SELECT subscription_id FROM personalized_offers WHERE id = %s", po_id)
    assert row["subscription_id"] == "sub_1"


async def test_unknown_customer_still_gets_offers_without_ledger_data(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(PATH, keys["publishable"], json={"customer_id": "stranger"})
    assert len(r.json()["personalized_offers"]) == 1


async def test_subscription_of_another_customer_is_refused(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(
        PATH, keys["publishable"], json={"customer_id": "cus_other", "subscription_id": "sub_1"}
    )
    assert r.status_code == 400
    assert r.json()["param"] == "subscription_id"


async def test_redirect_url_shown_on_the_option_when_it_needs_no_fulfillment(app: TestApp) -> None:
    keys = await seed(app)
    definition = offer()
    definition["options"][2]["redirect_url"] = (
        "https://m.example/s?c={customer_id}&po={personalized_offer_id}"
    )
    await app.put("acme", "offers/stay", definition)
    po = (await ask(app, keys["publishable"], subscription_id="sub_1"))["personalized_offers"][0]
    talk = po["options"][2]
    assert talk["redirect_url"] == f"https://m.example/s?c=cus_1&po={po['id']}"


async def test_missing_customer_id(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(PATH, keys["publishable"], json={})
    assert r.status_code == 400
    assert r.json() == {
        "message": "customer_id : cannot be blank",
        "type": "invalid_request",
        "api_error_code": "param_wrong_value",
        "param": "customer_id",
        "error_code": "param_not_present",
        "http_status_code": 400,
    }


@pytest.mark.parametrize(
    ("param", "limit", "build"),
    [
        ("customer_id", 50, lambda v: {"customer_id": v}),
        ("subscription_id", 50, lambda v: {"subscription_id": v}),
        ("first_name", 150, lambda v: {"first_name": v}),
        ("last_name", 150, lambda v: {"last_name": v}),
        ("email", 70, lambda v: {"email": v[:-12] + "@example.com"}),
        ("external_user_id", 50, lambda v: {"external_user_id": v}),
        ("roles[1]", 50, lambda v: {"roles": ["ok", v]}),
        ("request_context[user_agent]", 255, lambda v: {"request_context": {"user_agent": v}}),
        ("request_context[locale]", 50, lambda v: {"request_context": {"locale": v}}),
        ("request_context[timezone]", 64, lambda v: {"request_context": {"timezone": v}}),
        ("request_context[url]", 250, lambda v: {"request_context": {"url": v}}),
        ("request_context[referrer_url]", 250, lambda v: {"request_context": {"referrer_url": v}}),
    ],
)
async def test_length_limits(app: TestApp, param: str, limit: int, build: Any) -> None:
    keys = await seed(app)
    ok = {"customer_id": "cus_1", **build("x" * limit)}
    r = await app.post(PATH, keys["publishable"], json=ok)
    assert r.status_code == 200, r.text
    too_long = {"customer_id": "cus_1", **build("x" * (limit + 1))}
    r = await app.post(PATH, keys["publishable"], json=too_long)
    assert r.status_code == 400, r.text
    assert r.json()["api_error_code"] == "param_wrong_value"
    assert r.json()["param"] == param


async def test_bad_email_and_types(app: TestApp) -> None:
    keys = await seed(app)
    for body, param in [
        ({"customer_id": "c", "email": "not-an-email"}, "email"),
        ({"customer_id": 5}, "customer_id"),
        ({"customer_id": "c", "roles": "admin"}, "roles"),
        ({"customer_id": "c", "custom": [1]}, "custom"),
        ({"customer_id": "c", "request_context": "x"}, "request_context"),
    ]:
        r = await app.post(PATH, keys["publishable"], json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["param"] == param
