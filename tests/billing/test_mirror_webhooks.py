"""Stripe's and Chargebee's webhooks: authenticated as each provider signs them, and turned into
re-reads, so that events delivered late, twice and out of order leave the mirror equal to the
provider's state."""

from __future__ import annotations

import base64

import pytest

from offerd.billing.stripe.mapping import row_of
from offerd.queue.runtime import build_worker
from tests.billing.test_stripe_site import WEBHOOK_SECRET, stripe_site
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp

SITE = "shop"
URL = f"/webhooks/stripe/{SITE}"


async def deliver(app: TestApp, fake: FakeStripe, events: list[dict[str, object]]) -> None:
    for event in events:
        body, headers = fake.signed(event, WEBHOOK_SECRET)
        r = await app.client.post(URL, content=body, headers=headers)
        assert r.status_code == 200, r.text


async def drain(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


async def mirrored(app: TestApp, table: str) -> dict[str, dict[str, object]]:
    rows = await app.fetch(f"SELECT * FROM {table} WHERE site_id = %s", SITE)
    return {r["id"]: r for r in rows}


async def test_a_bad_or_missing_signature_is_a_400_and_queues_nothing(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    customer = fake_stripe.seed_customer(email="ada@example.test")
    event = fake_stripe.event_for("customer", customer["id"])
    body, headers = fake_stripe.signed(event, "whsec_not_the_sites_secret")

    bad = await app.client.post(URL, content=body, headers=headers)
    missing = await app.client.post(URL, content=body, headers={"content-type": "application/json"})
    tampered_body = body.replace(b"ada@", b"eve@")
    _, good_headers = fake_stripe.signed(event, WEBHOOK_SECRET)
    tampered = await app.client.post(URL, content=tampered_body, headers=good_headers)

    for r in (bad, missing, tampered):
        assert r.status_code == 400, r.text
        assert r.json()["api_error_code"] == "invalid_request"
    assert await app.fetch("SELECT 1 FROM jobs WHERE kind = 'billing.mirror_refresh'") == []


async def test_a_site_without_stripe_is_a_404(app: TestApp, fake_stripe: FakeStripe) -> None:
    await app.create_site(SITE)  # the ledger
    event = fake_stripe.event_for("customer", fake_stripe.seed_customer(email="a@x.test")["id"])
    body, headers = fake_stripe.signed(event, WEBHOOK_SECRET)
    r = await app.client.post(URL, content=body, headers=headers)
    assert r.status_code == 404
    assert r.json()["api_error_code"] == "resource_not_found"


@pytest.mark.parametrize("order", ["as_sent", "reversed_and_duplicated"])
async def test_late_duplicated_reordered_events_leave_the_mirror_equal_to_stripe(
    app: TestApp, fake_stripe: FakeStripe, order: str
) -> None:
    await stripe_site(app, fake_stripe)
    stripe = fake_stripe.client()
    fake_stripe.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
    fake_stripe.seed_price(id="price_pro", unit_amount=4900, nickname="Pro")
    customers = [stripe.v1.customers.create({"email": f"c{n}@example.test"}) for n in range(4)]
    stripe.v1.coupons.create({"id": "SAVE15", "percent_off": 15, "duration": "forever"})
    # created without an event (as if before the webhook was registered): the changes' events
    # still bring each one in, with the price it needs
    subs = [fake_stripe.seed_subscription(c.id, "price_basic") for c in customers]
    # a history of changes, each an event
    stripe.v1.subscriptions.update(subs[0]["id"], {"discounts": [{"coupon": "SAVE15"}]})
    item = subs[1]["items"]["data"][0]["id"]
    stripe.v1.subscriptions.update(subs[1]["id"], {"items": [{"id": item, "price": "price_pro"}]})
    stripe.v1.subscriptions.update(subs[1]["id"], {"cancel_at_period_end": True})
    stripe.v1.subscriptions.cancel(subs[2]["id"])
    stripe.v1.subscriptions.update(subs[3]["id"], {"pause_collection": {"behavior": "void"}})
    stripe.v1.customers.update(customers[0].id, {"email": "renamed@example.test"})
    stripe.v1.customers.delete(customers[3].id)

    events = fake_stripe.undelivered()
    assert len(events) >= 10
    if order == "reversed_and_duplicated":
        events = [e for e in reversed(events) for _ in (0, 1)]
    await deliver(app, fake_stripe, events)
    await drain(app)

    want_subs = {}
    for sub in subs[:3]:
        read = stripe.v1.subscriptions.retrieve(sub["id"], {"expand": ["discounts"]})
        want = row_of("subscription", read.to_dict())
        want_subs[sub["id"]] = want
    got_subs = await mirrored(app, "subscriptions")
    assert set(got_subs) == set(want_subs)  # customer 3 was deleted, its subscription with it
    for sid, want in want_subs.items():
        got = got_subs[sid]
        state = want.state  # type: ignore[union-attr]
        assert (got["status"], got["plan_id"], got["coupon_ids"], got["cancel_at"]) == (
            state.status,
            state.plan_id,
            list(state.coupon_ids),
            state.cancel_at,
        ), sid
    assert [got_subs[s["id"]]["status"] for s in subs[:3]] == [
        "active",
        "non_renewing",
        "cancelled",
    ]
    assert got_subs[subs[0]["id"]]["coupon_ids"] == ["SAVE15"]
    got_customers = await mirrored(app, "customers")
    assert set(got_customers) == {c.id for c in customers[:3]}
    assert got_customers[customers[0].id]["email"] == "renamed@example.test"
    # SAVE10 was mirrored when the site's offer (which applies it) was saved
    assert set(await mirrored(app, "coupons")) == {"SAVE10", "SAVE15"}


async def test_a_burst_about_one_object_is_read_once(app: TestApp, fake_stripe: FakeStripe) -> None:
    await stripe_site(app, fake_stripe)
    customer = fake_stripe.seed_customer(email="ada@example.test")
    event = fake_stripe.event_for("customer", customer["id"])
    await deliver(app, fake_stripe, [event] * 5)
    jobs = await app.fetch("SELECT 1 FROM jobs WHERE kind = 'billing.mirror_refresh'")
    assert len(jobs) == 1


CB_SITE = "cb"


async def chargebee_site(app: TestApp) -> None:
    await app.create_site(CB_SITE)
    body = {
        "type": "chargebee",
        "site": "acme-test",
        "api_key": "test_abcdefghijklmnop",
        "webhook_username": "offerd",
        "webhook_password": "a-long-webhook-password",
    }
    r = await app.admin("PUT", f"/sites/{CB_SITE}/billing_provider", body)
    assert r.status_code == 201, r.text


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("offerd", "wrong-password"),
        basic("someone", "a-long-webhook-password"),
        "Bearer x",
    ],
)
async def test_chargebee_webhooks_need_the_sites_basic_credentials(
    app: TestApp, authorization: str | None
) -> None:
    await chargebee_site(app)
    headers = {"content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    event = {"id": "ev_1", "event_type": "customer_changed", "content": {"customer": {"id": "c1"}}}
    r = await app.client.post(f"/webhooks/chargebee/{CB_SITE}", json=event, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert await app.fetch("SELECT 1 FROM jobs WHERE kind = 'billing.mirror_refresh'") == []


async def test_a_chargebee_webhook_with_the_right_credentials_queues_its_objects(
    app: TestApp,
) -> None:
    await chargebee_site(app)
    event = {
        "id": "ev_1",
        "event_type": "subscription_changed",
        "content": {"subscription": {"id": "s1"}, "customer": {"id": "c1"}},
    }
    r = await app.client.post(
        f"/webhooks/chargebee/{CB_SITE}",
        json=event,
        headers={"authorization": basic("offerd", "a-long-webhook-password")},
    )
    assert r.status_code == 200, r.text
    rows = await app.fetch(
        "SELECT payload->>'kind' AS kind, payload->>'id' AS id FROM jobs "
        "WHERE kind = 'billing.mirror_refresh' ORDER BY id"
    )
    assert {(r["kind"], r["id"]) for r in rows} == {("customer", "c1"), ("subscription", "s1")}
