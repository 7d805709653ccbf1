"""Admin API: sites and keys."""

from __future__ import annotations

import pytest

from tests.support.app import ADMIN_TOKEN, TestApp


async def test_put_site_creates_then_updates(app: TestApp) -> None:
    r = await app.admin(
        "PUT", "/sites/acme", {"name": "Acme", "brand": {"id": "b1", "name": "Acme"}}
    )
    assert r.status_code == 201
    assert r.json()["settings"]["personalized_offer_ttl_seconds"] == 86400
    r = await app.admin(
        "PUT",
        "/sites/acme",
        {"name": "Acme Inc", "settings": {"personalized_offer_ttl_seconds": 600}},
    )
    assert r.status_code == 200
    site = (await app.admin("GET", "/sites/acme")).json()
    assert site["name"] == "Acme Inc"
    assert site["brand"] is None
    assert site["settings"]["personalized_offer_ttl_seconds"] == 600


async def test_site_validation(app: TestApp) -> None:
    for path, body, param in (
        ("/sites/Bad_Name", {"name": "x"}, "site"),
        ("/sites/acme", {}, "name"),
        (
            "/sites/acme",
            {"name": "x", "settings": {"no_such_setting": 1}},
            "settings[no_such_setting]",
        ),
        (
            "/sites/acme",
            {"name": "x", "settings": {"personalized_offer_ttl_seconds": 5}},
            "settings[personalized_offer_ttl_seconds]",
        ),
        ("/sites/acme", {"name": "x", "brand": {"id": "b"}}, "brand[name]"),
    ):
        r = await app.admin("PUT", path, body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["param"] == param


async def test_unknown_site(app: TestApp) -> None:
    r = await app.admin("GET", "/sites/nope")
    assert r.status_code == 404
    r = await app.admin("POST", "/sites/nope/api_keys", {"kind": "full_access", "name": "k"})
    assert r.status_code == 404


async def test_create_key_shows_secret_once(app: TestApp) -> None:
    await app.admin("PUT", "/sites/acme", {"name": "Acme"})
    r = await app.admin("POST", "/sites/acme/api_keys", {"kind": "publishable", "name": "web"})
    assert r.status_code == 201
    key = r.json()
    assert key["key"].startswith("pk_")
    assert key["hint"] == "..." + key["key"][-4:]
    listed = (await app.admin("GET", "/sites/acme/api_keys")).json()["api_keys"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key" not in listed[0]
    r = await app.admin("POST", "/sites/acme/api_keys", {"kind": "root", "name": "x"})
    assert r.status_code == 400
    assert r.json()["param"] == "kind"


# --- checkout_frame_ancestors: origins only ------------------------------------------------------

FRAMERS = "checkout_frame_ancestors"


@pytest.mark.parametrize(
    "source",
    [
        "*; script-src * 'unsafe-inline'",  # a second directive in the copied CSP
        "https://app.merchant.example; script-src *",
        "https://app.merchant.example\r\nSet-Cookie: a=b",  # CR/LF: a header of its own
        "https://app.merchant.example\n",
        "https://app.merchant.example/embed",  # a path
        "https://app.merchant.example/",
        "'self'",  # quotes: a keyword, not an origin ('self' is always there)
        "'unsafe-inline'",
        "https://app merchant.example",  # a space: two sources
        "*",  # every site could frame the page
        "https://*",
        "https://*.com",  # a wildcard over a whole top-level domain
        "https://app.*.example",  # CSP allows the wildcard leftmost only
        "app.merchant.example",  # no scheme
        "javascript:alert(1)",
        "data:",
        "ftp://app.merchant.example",
        "https://app.merchant.example:99999",
        "https://user@app.merchant.example",
        "http://app.merchant.example",  # plain http needs test_mode
    ],
)
async def test_checkout_frame_ancestors_take_origins_only(app: TestApp, source: str) -> None:
    r = await app.admin(
        "PUT",
        "/sites/acme",
        {"name": "Acme", "settings": {FRAMERS: ["https://ok.example", source]}},
    )
    assert r.status_code == 400, (source, r.text)
    error = r.json()
    assert error["api_error_code"] == "param_wrong_value"
    assert error["param"] == f"settings[{FRAMERS}]"
    assert (await app.admin("GET", "/sites/acme")).status_code == 404


@pytest.mark.parametrize(
    ("sources", "test_mode"),
    [
        (["https://app.merchant.example"], False),
        (["https://app.merchant.example:8443", "https://*.merchant.example"], False),
        (["https://APP.Merchant.example", "https://localhost:3000"], False),
        (["https://203.0.113.7", "https://a.example:*"], False),  # CSP allows any port as :*
        (["http://127.0.0.1:8080", "http://*.merchant.test"], True),  # http in test mode
    ],
)
async def test_checkout_frame_ancestors_origins_are_saved(
    app: TestApp, sources: list[str], test_mode: bool
) -> None:
    settings = {FRAMERS: sources, "test_mode": test_mode}
    r = await app.admin("PUT", "/sites/acme", {"name": "Acme", "settings": settings})
    assert r.status_code == 201, r.text
    assert r.json()["settings"][FRAMERS] == sources


async def test_admin_api_refuses_a_form_body_saying_to_send_json(app: TestApp) -> None:
    """curl's ``-d`` sends a form; the admin API must say to send JSON, not ``name : cannot be
    blank``. The public API keeps taking forms."""
    admin = {"authorization": "Bearer " + ADMIN_TOKEN}
    body = '{"name": "Acme", "brand": {"id": "acme", "name": "Acme"}}'
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {**admin, **({"content-type": content_type} if content_type else {})}
        r = await app.client.put("/admin/v1/sites/acme", content=body, headers=headers)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["type"] == "invalid_request"
        assert error["http_status_code"] == 400
        assert "content-type: application/json" in error["message"]
    keys = await app.create_site("acme")
    r = await app.client.put(
        "/admin/v1/sites/acme/notification_channels/ops",
        content='{"type": "slack", "webhook_url": "https://hooks.slack.com/services/x"}',
        headers={**admin, "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert "content-type: application/json" in r.json()["message"]
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["full_access"],
        data={"customer_id": "cus_1", "subscription_id": "sub_1"},
    )
    assert r.status_code == 200, r.text


async def test_the_openapi_document_offers_admin_bodies_as_json_only(app: TestApp) -> None:
    doc = (await app.client.get("/openapi.json")).json()
    admin = doc["paths"]["/admin/v1/sites/{site}"]["put"]["requestBody"]["content"]
    public = doc["paths"]["/api/v2/personalized_offers"]["post"]["requestBody"]["content"]
    assert set(admin) == {"application/json"}
    assert "application/x-www-form-urlencoded" in public
