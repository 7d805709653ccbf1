"""The admin API for notification channels (``/admin/v1/sites/{site}/notification_channels``):
what each type takes and shows, secrets shown once and redacted afterwards, a re-PUT keeping the
secret and re-enabling a disabled channel, and validation errors in Chargebee's shape."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.notifications.flows import (
    SITE,
    get_channel,
    notifications,
    put_channel,
    report,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import seed
from tests.support.receiver import Receiver

CHANNELS = f"/sites/{SITE}/notification_channels"
SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/s3cretS1ackT0ken"
WRITE_KEY = "wk_live_9f8e7d6c5b4a"


def whsec(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n))).decode()


# --- webhook secrets -------------------------------------------------------------------------


async def test_a_generated_webhook_secret_is_shown_once(app: TestApp, receiver: Receiver) -> None:
    keys = await seed(app)
    body = {"type": "webhook", "url": receiver.url_for("/hook"), "event_types": ["offer_viewed"]}
    r = await app.admin("PUT", f"{CHANNELS}/hooks", body)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert created["secret_hint"] == "whsec_…" + secret[-4:]

    # afterwards: only the hint, wherever the channel is shown
    one = await app.admin("GET", f"{CHANNELS}/hooks")
    listed = await app.admin("GET", CHANNELS)
    assert one.status_code == listed.status_code == 200
    (in_list,) = listed.json()["notification_channels"]
    for shown, text in [(one.json(), one.text), (in_list, listed.text)]:
        assert "secret" not in shown
        assert shown["secret_hint"] == created["secret_hint"]
        assert secret.removeprefix("whsec_") not in text

    # a re-PUT without a secret keeps it, and does not show it again
    again = await app.admin("PUT", f"{CHANNELS}/hooks", body)
    assert again.status_code == 200, again.text
    assert "secret" not in again.json()
    assert again.json()["secret_hint"] == created["secret_hint"]

    # the secret kept is the one shown: deliveries are signed with it
    await report(app, keys, "viewed")
    assert await work(app) == 1
    request = receiver.only()
    assert Webhook(secret).verify(request.body, request.headers)["object"] == "event"


async def test_a_secret_the_admin_gives_is_used_and_not_echoed(
    app: TestApp, receiver: Receiver
) -> None:
    keys = await seed(app)
    body = {"type": "webhook", "url": receiver.url_for("/hook"), "event_types": ["offer_viewed"]}
    generated = (await put_channel(app, "hooks", body))["secret"]
    own = whsec(32)
    replaced = await put_channel(app, "hooks", {**body, "secret": own})
    assert "secret" not in replaced
    assert replaced["secret_hint"] == "whsec_…" + own[-4:]

    await report(app, keys, "viewed")
    await work(app)
    request = receiver.only()
    assert Webhook(own).verify(request.body, request.headers)["id"] == request.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(generated).verify(request.body, request.headers)


async def test_changing_the_type_forgets_the_secret(app: TestApp) -> None:
    await seed(app)
    hook = {"type": "webhook", "url": "https://merchant.example/hook"}
    first = (await put_channel(app, "c", hook))["secret"]
    slack = await put_channel(app, "c", {"type": "slack", "webhook_url": SLACK_URL})
    assert "secret" not in slack and "secret_hint" not in slack
    back = await put_channel(app, "c", hook)
    assert back["secret"].startswith("whsec_")
    assert back["secret"] != first


# --- what each type takes and shows ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shown", "hidden"),
    [
        (
            {
                "type": "webhook",
                "url": "https://merchant.example/hook",
                "basic_auth": {"username": "merchant", "password": "hunter2-pw"},
                "event_types": ["offer_accepted", "offer_fulfillment_failed"],
            },
            {
                "type": "webhook",
                "url": "https://merchant.example/hook",
                "basic_auth": {"username": "merchant", "password": "********"},
                "event_types": ["offer_accepted", "offer_fulfillment_failed"],
            },
            ["hunter2-pw"],
        ),
        (
            {"type": "slack", "webhook_url": SLACK_URL},
            {"type": "slack", "event_types": ["offer_fulfillment_completed"]},
            ["s3cretS1ackT0ken", "T0001/B0002"],
        ),
        (
            {"type": "email", "to": ["ops@acme.example", "cs@acme.example"]},
            {
                "type": "email",
                "to": ["ops@acme.example", "cs@acme.example"],
                "event_types": ["offer_fulfillment_completed"],
            },
            [],
        ),
        (
            {"type": "segment", "write_key": WRITE_KEY, "event_types": ["offer_viewed"]},
            {
                "type": "segment",
                "endpoint": "https://api.segment.io",
                "event_types": ["offer_viewed"],
                "write_key_hint": "…" + WRITE_KEY[-4:],
            },
            [WRITE_KEY],
        ),
        (
            {
                "type": "segment",
                "write_key": WRITE_KEY,
                "endpoint": "https://events.eu1.segmentapis.com",
            },
            {"type": "segment", "endpoint": "https://events.eu1.segmentapis.com"},
            [WRITE_KEY],
        ),
    ],
    ids=["webhook", "slack", "email", "segment", "segment-eu"],
)
async def test_channel_resource(
    app: TestApp, body: dict[str, Any], shown: dict[str, Any], hidden: list[str]
) -> None:
    await seed(app)
    r = await app.admin("PUT", f"{CHANNELS}/ch-1", body)
    assert r.status_code == 201, r.text
    got = await app.admin("GET", f"{CHANNELS}/ch-1")
    for response in (r, got):
        resource = response.json()
        assert {k: resource[k] for k in shown} == shown
        assert resource["id"] == "ch-1"
        assert resource["object"] == "notification_channel"
        assert resource["enabled"] is True
        assert resource["disabled_reason"] is None
        assert isinstance(resource["created_at"], int)
        assert isinstance(resource["updated_at"], int)
        for secret in hidden:
            assert secret not in response.text
        for key in ("write_key", "password"):
            assert key not in resource
    if body["type"] == "slack":
        # the host stays recognisable, the token part of the URL does not
        assert got.json()["webhook_url"].startswith("https://hooks.slack.com/")


async def test_list_get_and_delete(app: TestApp) -> None:
    await seed(app)
    await seed(app, "other")
    await put_channel(app, "b-mail", {"type": "email", "to": ["ops@acme.example"]})
    await put_channel(app, "a-hook", {"type": "webhook", "url": "https://merchant.example/h"})
    await put_channel(app, "z", {"type": "slack", "webhook_url": SLACK_URL}, site="other")

    r = await app.admin("GET", CHANNELS)
    assert [c["id"] for c in r.json()["notification_channels"]] == ["a-hook", "b-mail"]

    r = await app.admin("DELETE", f"{CHANNELS}/a-hook")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "a-hook", "object": "notification_channel", "deleted": True}
    for method in ("GET", "DELETE"):
        r = await app.admin(method, f"{CHANNELS}/a-hook")
        assert r.status_code == 404, r.text
        assert r.json()["api_error_code"] == "resource_not_found"
    # another site's channel of the same name is another channel
    r = await app.admin("GET", f"{CHANNELS}/z")
    assert r.status_code == 404
    assert (await get_channel(app, "z", site="other"))["type"] == "slack"


async def test_admin_token_and_site_are_required(app: TestApp) -> None:
    await seed(app)
    body = {"type": "email", "to": ["ops@acme.example"]}
    r = await app.client.put(f"/admin/v1{CHANNELS}/c", json=body)
    assert r.status_code == 401, r.text
    r = await app.client.put(
        f"/admin/v1{CHANNELS}/c", json=body, headers={"authorization": "Bearer wrong"}
    )
    assert r.status_code == 401, r.text
    r = await app.admin("PUT", "/sites/nosuchsite/notification_channels/c", body)
    assert r.status_code == 404, r.text
    assert r.json()["api_error_code"] == "resource_not_found"
    assert (await app.admin("GET", CHANNELS)).json() == {"notification_channels": []}


# --- validation ------------------------------------------------------------------------------

HOOK = {"type": "webhook", "url": "https://merchant.example/hook"}


INVALID: list[tuple[dict[str, Any], list[str]]] = [
    ({"type": "webhook", "url": "ftp://merchant.example/x"}, ["url"]),
    ({"type": "webhook", "url": "merchant.example/hook"}, ["url"]),
    ({"type": "webhook"}, ["url"]),
    ({**HOOK, "secret": "not-a-secret"}, ["secret"]),
    ({**HOOK, "secret": whsec(8)}, ["secret"]),  # too short a key
    ({**HOOK, "event_types": ["offer_exploded"]}, ["event_types[0]"]),
    ({**HOOK, "event_types": []}, ["event_types"]),
    ({**HOOK, "event_types": ["offer_viewed", "offer_viewed"]}, ["event_types"]),
    ({**HOOK, "event_types": "offer_viewed"}, ["event_types"]),
    ({**HOOK, "basic_auth": {"username": "u"}}, ["basic_auth[password]"]),
    ({**HOOK, "colour": "blue"}, ["colour"]),
    ({"type": "slack"}, ["webhook_url"]),
    ({"type": "slack", "webhook_url": "javascript:alert(1)"}, ["webhook_url"]),
    ({"type": "email", "to": ["not an address"]}, ["to", "to[0]"]),
    ({"type": "email", "to": []}, ["to"]),
    ({"type": "email"}, ["to"]),
    ({"type": "segment"}, ["write_key"]),
    ({"type": "segment", "write_key": "k", "endpoint": "ftp://x"}, ["endpoint"]),
    ({"type": "carrier_pigeon"}, ["type"]),
    ({"url": "https://merchant.example/hook"}, ["type"]),
]


@pytest.mark.parametrize(
    ("body", "params"),
    INVALID,
    ids=[f"{body.get('type', 'untyped')}-{params[0]}" for body, params in INVALID],
)
async def test_validation_errors_name_the_param(
    app: TestApp, body: dict[str, Any], params: list[str]
) -> None:
    await seed(app)
    r = await app.admin("PUT", f"{CHANNELS}/c", body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "invalid_request"
    assert error["http_status_code"] == 400
    assert error["api_error_code"] == "param_wrong_value"
    assert error["param"] in params, error
    assert error["message"]
    assert (await app.admin("GET", f"{CHANNELS}/c")).status_code == 404


# --- destinations that can never be called ---------------------------------------------------

PRIVATE_LITERALS: list[tuple[dict[str, Any], str]] = [
    ({"type": "webhook", "url": "https://[::127.0.0.1]/hook"}, "url"),  # IPv4-compatible
    ({"type": "webhook", "url": "https://[64:ff9b::a9fe:a9fe]/latest/"}, "url"),  # NAT64 metadata
    ({"type": "webhook", "url": "https://[2002:7f00:1::]:8443/hook"}, "url"),  # 6to4
    ({"type": "webhook", "url": "https://[::ffff:10.0.0.1]/hook"}, "url"),  # IPv4-mapped
    ({"type": "webhook", "url": "https://127.0.0.1/hook"}, "url"),
    (
        {"type": "slack", "webhook_url": "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"},
        (
            "webhook_url"  # Teredo, client 127.0.0.1
        ),
    ),
    (
        {"type": "segment", "write_key": "k", "endpoint": "https://[::ffff:0:a9fe:a9fe]"},
        (
            "endpoint"  # IPv4-translated
        ),
    ),
]


@pytest.mark.parametrize(
    ("body", "param"),
    PRIVATE_LITERALS,
    ids=[f"{body['type']}-{i}" for i, (body, _) in enumerate(PRIVATE_LITERALS)],
)
async def test_a_private_literal_destination_is_refused_on_save(
    db_url: str, body: dict[str, Any], param: str
) -> None:
    async with running_app(db_url, allow_private_destinations=False) as app:
        await seed(app)
        r = await app.admin("PUT", f"{CHANNELS}/c", body)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["api_error_code"] == "param_wrong_value"
        assert error["param"] == param
        assert "private" in error["message"]
        assert "OFFERD_ALLOW_PRIVATE_DESTINATIONS" in error["message"]
        assert (await app.admin("GET", f"{CHANNELS}/c")).status_code == 404
        # a public IPv4 behind NAT64 and a name (resolved at delivery) are fine
        for url in ("https://[64:ff9b::808:808]/hook", "https://hooks.merchant.example/hook"):
            r = await app.admin("PUT", f"{CHANNELS}/c", {"type": "webhook", "url": url})
            assert r.status_code in (200, 201), r.text


async def test_private_literal_destinations_are_saved_when_allowed(app: TestApp) -> None:
    """OFFERD_ALLOW_PRIVATE_DESTINATIONS=1 (the test settings): development keeps working."""
    await seed(app)
    for body, _ in PRIVATE_LITERALS:
        r = await app.admin("PUT", f"{CHANNELS}/c", body)
        assert r.status_code in (200, 201), r.text


# --- disabled channels -----------------------------------------------------------------------


async def test_a_re_put_re_enables_a_disabled_channel(app: TestApp, receiver: Receiver) -> None:
    keys = await seed(app)
    body = {
        "type": "slack",
        "webhook_url": receiver.url_for("/slack"),
        "event_types": ["offer_viewed"],
    }
    await put_channel(app, "ops", body)
    receiver.respond_with(410)  # the Slack webhook was removed
    await report(app, keys, "viewed")
    await work(app)
    disabled = await get_channel(app, "ops")
    assert disabled["enabled"] is False
    assert "410" in disabled["disabled_reason"]

    # while disabled it gets nothing
    await report(app, keys, "viewed")
    assert len(await notifications(app, channel_id="ops")) == 1

    again = await put_channel(app, "ops", body)
    assert again["enabled"] is True
    assert again["disabled_reason"] is None
    assert again["updated_at"] >= disabled["updated_at"]
    await report(app, keys, "viewed")
    await work(app)
    statuses = [d["status"] for d in await notifications(app, channel_id="ops")]
    assert statuses == ["failed", "succeeded"]
    assert len(receiver.received("POST", "/slack")) == 2
