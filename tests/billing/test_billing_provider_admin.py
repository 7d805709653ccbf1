"""``PUT/GET /admin/v1/sites/{site}/billing_provider``: each type validated, the credentials
encrypted at rest and never in any response (not even an error about them), ``api_base``
through the outbound guard."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from offerd.common.secrets import SecretBox
from tests.support.app import SECRET_KEY, TestApp, running_app

STRIPE_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUv7x9Z"
STRIPE_WEBHOOK = "whsec_AbCdEfGhIjKlMnOpQrStUvWx42"
CB_KEY = "test_cbKeyAbCdEfGhIjKlMnOp1234"
CB_PASSWORD = "cb-hook-password-Zz99"
SECRETS = (STRIPE_KEY, STRIPE_WEBHOOK, CB_KEY, CB_PASSWORD)

STRIPE = {"type": "stripe", "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK}
CHARGEBEE = {
    "type": "chargebee",
    "site": "acme-test",
    "api_key": CB_KEY,
    "webhook_username": "offerd",
    "webhook_password": CB_PASSWORD,
}
IDLE_SYNC = {
    "state": "idle",
    "last_synced_at": None,
    "skipped": 0,
    "counts": {"customers": 0, "subscriptions": 0, "plans": 0, "coupons": 0},
    "last_error": None,
}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret[6:-4] not in text  # not even a good part of one


async def provider(app: TestApp, body: Any, site: str = "acme") -> tuple[int, dict[str, Any]]:
    r = await app.admin("PUT", f"/sites/{site}/billing_provider", body)
    assert_no_secret(r.text)
    return r.status_code, r.json()


async def test_a_site_without_one_uses_the_ledger(app: TestApp) -> None:
    await app.create_site("acme")
    r = await app.admin("GET", "/sites/acme/billing_provider")
    assert r.status_code == 200
    assert r.json() == {
        "object": "billing_provider",
        "type": "ledger",
        "status": "healthy",
        "secret_key_hint": None,
        "api_base": None,
        "sync": IDLE_SYNC,
    }


async def test_stripe_is_saved_encrypted_and_shown_with_a_hint(app: TestApp, db_url: str) -> None:
    await app.create_site("acme")
    status, body = await provider(app, {**STRIPE, "api_base": "https://stripe-proxy.example.com/"})
    assert status == 201
    assert body["type"] == "stripe"
    assert body["status"] == "unknown"
    assert body["secret_key_hint"] == "…" + STRIPE_KEY[-4:]
    assert body["api_base"] == "https://stripe-proxy.example.com"
    assert body["sync"] == IDLE_SYNC
    got = await app.admin("GET", "/sites/acme/billing_provider")
    assert_no_secret(got.text)
    assert got.json() == body

    with psycopg.connect(db_url) as conn:
        (config,) = conn.execute(
            "SELECT config FROM billing_providers WHERE site_id = 'acme'"
        ).fetchone()  # type: ignore[misc]
    assert_no_secret(repr(config))
    box = SecretBox([SECRET_KEY])
    assert box.decrypt(config["secret_key"]) == STRIPE_KEY
    assert box.decrypt(config["webhook_secret"]) == STRIPE_WEBHOOK

    status, again = await provider(app, STRIPE)  # replaced: api_base dropped
    assert status == 200
    assert again["api_base"] is None


async def test_chargebee_and_back_to_the_ledger(app: TestApp) -> None:
    await app.create_site("acme")
    status, body = await provider(app, CHARGEBEE)
    assert status == 201
    assert (body["type"], body["site"], body["webhook_username"]) == (
        "chargebee",
        "acme-test",
        "offerd",
    )
    assert body["secret_key_hint"] == "…" + CB_KEY[-4:]
    status, body = await provider(app, {"type": "ledger"})
    assert status == 200
    assert (body["type"], body["status"], body["secret_key_hint"]) == ("ledger", "healthy", None)


# each row: a body, the param the 400 names; the secrets are in the bodies so that an error
# echoing its input would be caught by assert_no_secret
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "paypal"}, "type"),  # not a provider offerd knows
        ({**STRIPE, "secret_key": "pk_test_" + STRIPE_KEY[8:]}, "secret_key"),  # a publishable key
        ({**STRIPE, "secret_key": STRIPE_KEY + " "}, "secret_key"),  # not a key's characters
        ({**STRIPE, "webhook_secret": STRIPE_KEY}, "webhook_secret"),  # the key in place of it
        ({k: v for k, v in STRIPE.items() if k != "webhook_secret"}, "webhook_secret"),  # missing
        ({**STRIPE, "api_base": "ftp://" + STRIPE_KEY}, "api_base"),  # not http(s)
        ({**STRIPE, "password": STRIPE_KEY}, "password"),  # unknown field
        ({**CHARGEBEE, "site": "Acme Test"}, "site"),  # not a Chargebee site name
        ({**CHARGEBEE, "api_key": CB_KEY + " x"}, "api_key"),  # a space
        ({**CHARGEBEE, "webhook_password": ""}, "webhook_password"),  # empty
        ({**CHARGEBEE, "secret_key": STRIPE_KEY}, "secret_key"),  # Stripe's field
    ],
)
async def test_a_bad_provider_is_a_400_that_repeats_no_secret(
    app: TestApp, body: dict[str, Any], param: str
) -> None:
    await app.create_site("acme")
    status, error = await provider(app, body)
    assert status == 400, error
    assert error["param"] == param
    assert (await app.admin("GET", "/sites/acme/billing_provider")).json()["type"] == "ledger"


@pytest.mark.parametrize(
    ("api_base", "message"),
    [
        ("http://stripe-proxy.example.com", "https"),  # plain http
        ("https://127.0.0.1:8443", "private"),  # loopback
        ("https://169.254.169.254", "private"),  # the metadata endpoint
        ("https://[::ffff:10.0.0.1]", "private"),  # a private address inside an IPv6 one
    ],
)
async def test_api_base_goes_through_the_outbound_guard(
    db_url: str, api_base: str, message: str
) -> None:
    async with running_app(db_url, allow_private_destinations=False) as app:
        await app.create_site("acme")
        status, error = await provider(app, {**STRIPE, "api_base": api_base})
        assert status == 400
        assert error["param"] == "api_base"
        assert message in error["message"]
        status, _ = await provider(app, {**STRIPE, "api_base": "https://api.stripe.com"})
        assert status == 201


async def test_a_local_fake_is_allowed_with_private_destinations(app: TestApp) -> None:
    await app.create_site("acme")
    status, body = await provider(app, {**CHARGEBEE, "api_base": "http://127.0.0.1:9999"})
    assert status == 201
    assert body["api_base"] == "http://127.0.0.1:9999"


async def test_an_unknown_site_is_404_and_the_admin_token_is_required(app: TestApp) -> None:
    r = await app.admin("PUT", "/sites/nowhere/billing_provider", STRIPE)
    assert r.status_code == 404
    assert_no_secret(r.text)
    r = await app.client.get("/admin/v1/sites/nowhere/billing_provider")
    assert r.status_code == 401
