"""Admin API: sites and keys."""

from __future__ import annotations

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
