"""chargebee-idempotency-key on every POST (spec §7.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed

KEY = {"chargebee-idempotency-key": "8d3c3f43-0bbb-4d46-9f0e-7b0b8c9a1f10"}


async def test_replay_returns_the_stored_response(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    body = {"personalized_offer_id": po["id"], "option_id": "talk"}
    first = await app.post(
        "/api/v2/offer_fulfillments", keys["publishable"], json=body, headers=KEY
    )
    assert first.status_code == 202
    assert "chargebee-idempotency-replayed" not in first.headers
    # the same params sent as a form are the same request
    again = await app.post(
        "/api/v2/offer_fulfillments", keys["publishable"], data=body, headers=KEY
    )
    assert again.status_code == 202
    assert again.headers["chargebee-idempotency-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert len(await app.fetch("SELECT 1 FROM offer_fulfillments")) == 1


async def test_different_body_is_422(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    path = "/api/v2/offer_fulfillments"
    await app.post(
        path,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
        headers=KEY,
    )
    r = await app.post(
        path,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "gift"},
        headers=KEY,
    )
    assert r.status_code == 422
    assert r.json()["api_error_code"] == "unable_to_process_request"
    assert r.json()["type"] == "invalid_request"


async def test_personalized_offers_replay_does_not_issue_a_new_offer(app: TestApp) -> None:
    keys = await seed(app)
    path = "/api/v2/personalized_offers"
    first = await app.post(path, keys["publishable"], json={"customer_id": "cus_1"}, headers=KEY)
    again = await app.post(path, keys["publishable"], json={"customer_id": "cus_1"}, headers=KEY)
    assert again.json() == first.json()
    assert again.headers["chargebee-idempotency-replayed"] == "true"
    assert len(await app.fetch("SELECT 1 FROM personalized_offers")) == 1


async def test_offer_events_replay(app: TestApp) -> None:
    keys = await seed(app, offer_events_no_content=True)
    po = await personalized_offer(app, keys["publishable"])
    body = {"personalized_offer_id": po["id"], "type": "viewed"}
    first = await app.post("/api/v2/offer_events", keys["publishable"], json=body, headers=KEY)
    again = await app.post("/api/v2/offer_events", keys["publishable"], json=body, headers=KEY)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again.headers["chargebee-idempotency-replayed"] == "true"
    assert len(await app.fetch("SELECT 1 FROM offer_events WHERE type = 'viewed'")) == 1


async def test_update_replay(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        "/api/v2/offer_fulfillments",
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
    )
    f = r.json()["offer_fulfillment"]
    path = f"/api/v2/offer_fulfillments/{f['id']}"
    first = await app.post(
        path, keys["full_access"], json={"id": f["id"], "status": "completed"}, headers=KEY
    )
    again = await app.post(
        path, keys["full_access"], json={"id": f["id"], "status": "completed"}, headers=KEY
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content


async def test_errors_are_not_recorded(app: TestApp) -> None:
    keys = await seed(app)
    path = "/api/v2/offer_fulfillments"
    r = await app.post(
        path,
        keys["publishable"],
        json={"personalized_offer_id": "po_later", "option_id": "talk"},
        headers=KEY,
    )
    assert r.status_code == 404
    po = await personalized_offer(app, keys["publishable"])
    # the key is free again: a retry with a corrected body is processed
    r = await app.post(
        path,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
        headers=KEY,
    )
    assert r.status_code == 202
    assert "chargebee-idempotency-replayed" not in r.headers


async def test_keys_expire_after_the_window(app: TestApp) -> None:
    keys = await seed(app)
    path = "/api/v2/personalized_offers"
    first = await app.post(path, keys["publishable"], json={"customer_id": "cus_1"}, headers=KEY)
    app.clock.advance(timedelta(minutes=31))
    later = await app.post(path, keys["publishable"], json={"customer_id": "cus_1"}, headers=KEY)
    assert "chargebee-idempotency-replayed" not in later.headers
    assert (
        later.json()["personalized_offers"][0]["id"] != first.json()["personalized_offers"][0]["id"]
    )


async def test_keys_are_scoped_to_the_api_key_and_path(app: TestApp) -> None:
    keys = await seed(app)
    path = "/api/v2/personalized_offers"
    a = await app.post(path, keys["publishable"], json={"customer_id": "cus_1"}, headers=KEY)
    b = await app.post(path, keys["full_access"], json={"customer_id": "cus_1"}, headers=KEY)
    assert "chargebee-idempotency-replayed" not in b.headers
    assert a.json() != b.json()


@pytest.mark.parametrize("value", ["x" * 101])
async def test_key_length_limit(app: TestApp, value: str) -> None:
    keys = await seed(app)
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["publishable"],
        json={"customer_id": "c"},
        headers={"chargebee-idempotency-key": value},
    )
    assert r.status_code == 400
    assert r.json()["param"] == "chargebee-idempotency-key"
