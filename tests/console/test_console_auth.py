"""Console sign-in, sessions, CSRF and roles over HTTP (the ASGI app, a real PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest

from tests.console.support import PASSWORD, add_user, csrf, sign_in, token_in
from tests.support.app import TestApp


@pytest.fixture
async def site(app: TestApp) -> TestApp:
    await app.create_site("acme")
    await add_user(app, "ed@example.com", "editor")
    await add_user(app, "vi@example.com", "viewer")
    return app


async def test_a_page_without_a_session_sends_you_to_sign_in(site: TestApp) -> None:
    r = await site.client.get("/console/sites/acme/offers")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=/console/sites/acme/offers"


async def test_sign_in_sets_a_hardened_cookie_and_lands_on_the_first_site(site: TestApp) -> None:
    r = await sign_in(site.client, "Ed@Example.com")
    assert r.status_code == 303, r.text
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("offerd_console="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure (next test)
    home = await site.client.get("/console")
    assert home.status_code == 303 and home.headers["location"] == "/console/sites/acme"
    overview = await site.client.get("/console/sites/acme")
    assert overview.status_code == 200
    assert "ed@example.com" in overview.text
    assert overview.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in overview.headers["content-security-policy"]


async def test_over_https_the_cookie_is_secure(site: TestApp) -> None:
    transport = httpx.ASGITransport(app=site.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        r = await sign_in(client, "ed@example.com")
        cookie = next(c for c in r.headers.get_list("set-cookie") if "offerd_console=" in c)
        assert "Secure" in cookie


async def test_a_wrong_password_is_refused_without_saying_which_part(site: TestApp) -> None:
    wrong = await sign_in(site.client, "ed@example.com", "not the password")
    unknown = await sign_in(site.client, "nobody@example.com", PASSWORD)
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Wrong email or password." in r.text
        assert "offerd_console=" not in r.headers.get("set-cookie", "")


async def test_sign_in_without_the_login_token_is_refused(site: TestApp) -> None:
    r = await site.client.post(
        "/console/login", data={"email": "ed@example.com", "password": PASSWORD}
    )
    assert r.status_code == 403
    assert "security token" in r.text


async def test_failed_sign_ins_are_rate_limited_per_email(site: TestApp) -> None:
    limit = site.services.settings.console_login_attempts
    for _ in range(limit):
        assert (await sign_in(site.client, "ed@example.com", "wrong password!")).status_code == 401
    # now even the right password is refused until the window passes
    r = await sign_in(site.client, "ed@example.com")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    site.clock.advance(16 * 60)
    assert (await sign_in(site.client, "ed@example.com")).status_code == 303


async def test_a_post_without_the_csrf_token_is_refused(site: TestApp) -> None:
    await sign_in(site.client, "ed@example.com")
    body = {"name": "ci", "kind": "publishable"}
    r = await site.client.post("/console/sites/acme/api_keys", data=body)
    assert r.status_code == 403
    assert "security token" in r.text
    r = await site.client.post("/console/sites/acme/api_keys", data={**body, "csrf_token": "x"})
    assert r.status_code == 403
    keys = await site.admin("GET", "/sites/acme/api_keys")
    assert "ci" not in [k["name"] for k in keys.json()["api_keys"]]
    token = await csrf(site.client, "/console/sites/acme/settings")
    r = await site.client.post("/console/sites/acme/api_keys", data={**body, "csrf_token": token})
    assert r.status_code == 200
    assert "ci" in [
        k["name"] for k in (await site.admin("GET", "/sites/acme/api_keys")).json()["api_keys"]
    ]


async def test_a_cross_site_origin_is_refused_even_with_the_token(site: TestApp) -> None:
    await sign_in(site.client, "ed@example.com")
    token = await csrf(site.client, "/console/sites/acme/settings")
    r = await site.client.post(
        "/console/sites/acme/api_keys",
        data={"name": "x", "kind": "publishable", "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403


async def test_a_viewer_sees_but_cannot_change(site: TestApp) -> None:
    await sign_in(site.client, "vi@example.com")
    settings = await site.client.get("/console/sites/acme/settings")
    assert settings.status_code == 200
    assert "Create API key" not in settings.text
    assert (await site.client.get("/console/sites/acme/offers/new")).status_code == 403
    token = token_in(settings.text)  # the sign-out form's: a viewer's valid token
    r = await site.client.post(
        "/console/sites/acme/api_keys",
        data={"name": "sneaky", "kind": "full_access", "csrf_token": token},
    )
    assert r.status_code == 403
    assert "viewer" in r.text
    keys = (await site.admin("GET", "/sites/acme/api_keys")).json()["api_keys"]
    assert "sneaky" not in [k["name"] for k in keys]


async def test_signing_out_ends_the_session_server_side(site: TestApp) -> None:
    await sign_in(site.client, "ed@example.com")
    cookie = site.client.cookies.get("offerd_console")
    token = await csrf(site.client, "/console/sites/acme")
    r = await site.client.post("/console/logout", data={"csrf_token": token})
    assert r.status_code == 303
    # the old cookie, replayed, is worthless: its row is gone
    replay = await site.client.get(
        "/console/sites/acme", headers={"cookie": f"offerd_console={cookie}"}
    )
    assert replay.status_code == 303


async def test_the_next_parameter_cannot_leave_the_console(site: TestApp) -> None:
    page = await site.client.get("/console/login?next=https://evil.example/")
    assert 'value="/console"' in page.text
    r = await site.client.post(
        "/console/login",
        data={
            "csrf_token": token_in(page.text),
            "email": "ed@example.com",
            "password": PASSWORD,
            "next": "//evil.example/x",
        },
    )
    assert r.headers["location"] == "/console"
