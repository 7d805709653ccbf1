"""POST /api/v2/offer_fulfillments — the accept path."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed

PATH = "/api/v2/offer_fulfillments"


async def test_accept_writes_fulfillment_event_and_job_in_one_go(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "discount"},
        headers={
            "chargebee-request-origin-ip": "203.0.113.9",
            "chargebee-request-origin-user": "plain@example.com",
            "chargebee-request-origin-user-encoded": base64.b64encode(
                "jürgen@example.com".encode()
            ).decode(),
            "chargebee-request-origin-device": "Android",
        },
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"offer_fulfillment"}
    f = body["offer_fulfillment"]
    assert f["object"] == "offer_fulfillment"
    assert f["status"] == "in_progress"
    assert f["processing_type"] == "billing_update"
    assert f["personalized_offer_id"] == po["id"]
    assert f["option_id"] == "discount"
    assert isinstance(f["created_at"], int)
    assert "completed_at" not in f and "failed_at" not in f and "error" not in f

    (row,) = await app.fetch("SELECT * FROM offer_fulfillments WHERE id = %s", f["id"])
    # -user-encoded (Base64) wins over -user
    assert row["origin"] == {"ip": "203.0.113.9", "user": "jürgen@example.com", "device": "Android"}
    (event,) = await app.fetch("SELECT * FROM offer_events WHERE fulfillment_id = %s", f["id"])
    assert event["type"] == "accepted"
    assert event["origin"]["user"] == "jürgen@example.com"
    (job,) = await app.fetch("SELECT * FROM jobs WHERE payload->>'fulfillment_id' = %s", f["id"])
    assert job["kind"] == "fulfillment.billing_update"


@pytest.mark.parametrize(
    ("option", "job_kind"),
    [
        ("discount", "fulfillment.billing_update"),
        ("gift", "fulfillment.webhook"),
        ("call", "fulfillment.email"),
        # url_redirect waits for the merchant: nothing to process
        ("talk", None),
    ],
)
async def test_each_processing_type_gets_its_job(
    app: TestApp, option: str, job_kind: str | None
) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": option}
    )
    assert r.status_code == 202, r.text
    jobs = await app.fetch("SELECT kind FROM jobs")
    assert [j["kind"] for j in jobs] == ([job_kind] if job_kind else [])


async def test_suppression_headers_are_stored(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "gift"},
        headers={
            "chargebee-event-webhook": "all-disabled",
            "chargebee-event-email": "all-disabled",
        },
    )
    assert r.status_code == 202
    (row,) = await app.fetch(
        "SELECT suppress_actions, suppress_webhook, suppress_email FROM offer_fulfillments"
    )
    assert row == {"suppress_actions": False, "suppress_webhook": True, "suppress_email": True}


async def test_bad_suppression_header_value(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "gift"},
        headers={"chargebee-event-actions": "some"},
    )
    assert r.status_code == 400
    assert r.json()["param"] == "chargebee-event-actions"


async def test_url_redirect_placeholders_are_filled_url_encoded(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "customers/cus 1&x", {"email": "x@example.com"})
    r = await app.post(
        "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus 1&x"}
    )
    (po,) = r.json()["personalized_offers"]
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    f = r.json()["offer_fulfillment"]
    url = urlsplit(f["redirect_url"])
    assert url.netloc == "merchant.example"
    assert "cus%201%26x" in url.query
    query = parse_qs(url.query)
    assert query == {"c": ["cus 1&x"], "po": [po["id"]], "f": [f["id"]], "o": ["talk"]}
    # no subscription known: the placeholder became empty
    assert "s=&" in url.query


async def test_second_accept_same_option_returns_the_existing_one(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    body = {"personalized_offer_id": po["id"], "option_id": "talk"}
    first = await app.post(PATH, keys["publishable"], json=body)
    second = await app.post(PATH, keys["publishable"], json=body)
    assert second.status_code == 202
    assert second.json() == first.json()
    assert "chargebee-idempotency-replayed" not in second.headers
    assert len(await app.fetch("SELECT id FROM offer_fulfillments")) == 1
    assert len(await app.fetch("SELECT id FROM offer_events WHERE type = 'accepted'")) == 1


async def test_second_accept_other_option_is_a_conflict(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "gift"}
    )
    assert r.status_code == 409
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    assert r.json()["type"] == "invalid_request"


async def test_after_a_failed_fulfillment_the_offer_can_be_accepted_again(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    f = r.json()["offer_fulfillment"]
    r = await app.post(
        f"{PATH}/{f['id']}",
        keys["full_access"],
        json={"id": f["id"], "status": "failed", "failure_reason": "no slot"},
    )
    assert r.status_code == 200
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "gift"}
    )
    assert r.status_code == 202
    assert r.json()["offer_fulfillment"]["id"] != f["id"]


async def test_unknown_personalized_offer_and_option(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": "po_nope", "option_id": "talk"}
    )
    assert r.status_code == 404
    assert r.json()["param"] == "personalized_offer_id"
    assert r.json()["api_error_code"] == "resource_not_found"
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "nope"}
    )
    assert r.status_code == 404
    assert r.json()["param"] == "option_id"


async def test_personalized_offer_of_another_site_is_not_found(app: TestApp) -> None:
    keys = await seed(app)
    other = await seed(app, "globex")
    po = await personalized_offer(app, other["publishable"])
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    assert r.status_code == 404


async def test_expired_personalized_offer(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    app.clock.advance(timedelta(hours=24, seconds=1))
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    assert r.status_code == 409
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    assert "expired" in r.json()["message"]


async def test_business_entity_must_match(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["publishable"],
        json={"customer_id": "cus_1"},
        headers={"chargebee-business-entity-id": "be_eu"},
    )
    po = r.json()["personalized_offers"][0]
    body = {"personalized_offer_id": po["id"], "option_id": "talk"}
    r = await app.post(
        PATH, keys["publishable"], json=body, headers={"chargebee-business-entity-id": "be_us"}
    )
    assert r.status_code == 404
    r = await app.post(
        PATH, keys["publishable"], json=body, headers={"chargebee-business-entity-id": "be_eu"}
    )
    assert r.status_code == 202
    (row,) = await app.fetch("SELECT business_entity_id FROM offer_fulfillments")
    assert row["business_entity_id"] == "be_eu"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"option_id": "talk"}, "personalized_offer_id"),
        ({"personalized_offer_id": "po_x"}, "option_id"),
        ({"personalized_offer_id": "x" * 51, "option_id": "talk"}, "personalized_offer_id"),
        ({"personalized_offer_id": "po_x", "option_id": "x" * 51}, "option_id"),
    ],
)
async def test_param_errors(app: TestApp, body: dict[str, str], param: str) -> None:
    keys = await seed(app)
    r = await app.post(PATH, keys["publishable"], json=body)
    assert r.status_code == 400
    assert r.json()["param"] == param


async def test_form_encoded_accept(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH, keys["publishable"], data={"personalized_offer_id": po["id"], "option_id": "talk"}
    )
    assert r.status_code == 202
