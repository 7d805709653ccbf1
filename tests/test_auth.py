"""API keys, scopes and hosts."""

from __future__ import annotations

import base64

import pytest

from tests.support.app import TestApp, running_app
from tests.support.catalog import personalized_offer, seed

PO = "/api/v2/personalized_offers"


async def test_missing_and_malformed_credentials(app: TestApp) -> None:
    await seed(app)
    for headers in (
        {},
        {"authorization": "Bearer abc"},
        {"authorization": "Basic !!!"},
        {"authorization": "Basic " + base64.b64encode(b":").decode()},
    ):
        r = await app.client.post(PO, json={"customer_id": "c"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["api_error_code"] == "api_authentication_failed"
        assert r.json()["type"] == "untyped"
        assert r.json()["http_status_code"] == 401


async def test_unknown_key(app: TestApp) -> None:
    await seed(app)
    r = await app.post(PO, "sk_unknown", json={"customer_id": "c"})
    assert r.status_code == 401


async def test_key_with_a_password_still_works(app: TestApp) -> None:
    keys = await seed(app)
    token = base64.b64encode(f"{keys['publishable']}:ignored".encode()).decode()
    r = await app.client.post(
        PO, json={"customer_id": "cus_1"}, headers={"authorization": f"Basic {token}"}
    )
    assert r.status_code == 200


async def test_keys_are_stored_only_as_hashes(app: TestApp) -> None:
    keys = await seed(app)
    rows = await app.fetch("SELECT * FROM api_keys")
    assert len(rows) == 2
    for row in rows:
        for value in row.values():
            assert keys["full_access"] not in str(value)
            assert keys["publishable"] not in str(value)
    r = await app.admin("GET", "/sites/acme/api_keys")
    assert all("key" not in k for k in r.json()["api_keys"])


async def test_revoked_key_stops_working(app: TestApp) -> None:
    keys = await seed(app)
    assert (
        await app.post(PO, keys["publishable"], json={"customer_id": "cus_1"})
    ).status_code == 200
    listed = (await app.admin("GET", "/sites/acme/api_keys")).json()["api_keys"]
    key_id = next(k["id"] for k in listed if k["kind"] == "publishable")
    r = await app.admin("DELETE", f"/sites/acme/api_keys/{key_id}")
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    assert (
        await app.post(PO, keys["publishable"], json={"customer_id": "cus_1"})
    ).status_code == 401
    assert (await app.admin("DELETE", "/sites/acme/api_keys/key_nope")).status_code == 404


async def test_publishable_scope(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    pub = keys["publishable"]
    assert (
        await app.post(
            "/api/v2/offer_events", pub, json={"personalized_offer_id": po["id"], "type": "viewed"}
        )
    ).status_code == 200
    r = await app.post(
        "/api/v2/offer_fulfillments",
        pub,
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
    )
    assert r.status_code == 202
    f = r.json()["offer_fulfillment"]
    assert (await app.get(f"/api/v2/offer_fulfillments/{f['id']}", pub)).status_code == 403
    r = await app.post(
        f"/api/v2/offer_fulfillments/{f['id']}", pub, json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 403
    assert r.json()["api_error_code"] == "api_authorization_failed"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("acme.grow.offers.example", 200),
        ("acme.offers.example", 200),
        ("acme.grow.offers.example:8443", 200),
        ("ACME.GROW.OFFERS.EXAMPLE", 200),
        # the host names another site than the key's
        ("globex.grow.offers.example", 401),
        ("globex.offers.example", 401),
        # not under the base domain: the key decides
        ("127.0.0.1:8080", 200),
    ],
)
async def test_host_must_name_the_keys_site(db_url: str, host: str, status: int) -> None:
    async with running_app(db_url, base_domain="offers.example") as app:
        keys = await seed(app)
        r = await app.post(
            PO, keys["publishable"], json={"customer_id": "cus_1"}, headers={"host": host}
        )
        assert r.status_code == status, r.text


async def test_admin_token(app: TestApp) -> None:
    r = await app.client.put("/admin/v1/sites/acme", json={"name": "A"})
    assert r.status_code == 401
    r = await app.client.put(
        "/admin/v1/sites/acme", json={"name": "A"}, headers={"authorization": "Bearer wrong"}
    )
    assert r.status_code == 401
    assert r.json()["api_error_code"] == "api_authentication_failed"


async def test_admin_api_disabled_without_a_token(db_url: str) -> None:
    async with running_app(db_url, admin_token=None) as app:
        r = await app.admin("PUT", "/sites/acme", {"name": "A"})
        assert r.status_code == 401
        assert "OFFERD_ADMIN_TOKEN" in r.json()["message"]
