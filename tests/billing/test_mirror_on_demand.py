"""A decision about a subscription the remote provider has but the mirror does not yet: fetched
within the budget and decided with; past the budget decided without it, said in ``explain``,
and still fetched in the background."""

from __future__ import annotations

import asyncio

from tests.billing.test_stripe_site import stripe_site
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp
from tests.support.catalog import offer

SITE = "shop"
ACTIVE_ONLY = 'subscription.status == "active"'
TALK = {
    "id": "talk",
    "label": "Talk to us",
    "processing_type": "url_redirect",
    "redirect_url": "https://merchant.example/talk",
}


async def seeded(app: TestApp, fake: FakeStripe) -> tuple[dict[str, str], dict[str, str]]:
    keys = await stripe_site(app, fake)
    await app.put(SITE, "offers/stay", offer(eligibility=ACTIVE_ONLY, options=[TALK]))
    fake.seed_price(id="price_basic", unit_amount=2000)
    customer = fake.seed_customer(email="ada@example.test")
    sub = fake.seed_subscription(customer, "price_basic")
    return keys, {"customer_id": customer["id"], "subscription_id": sub["id"]}


async def mirrored(app: TestApp, sub_id: str) -> bool:
    return bool(await app.fetch("SELECT 1 FROM subscriptions WHERE id = %s", sub_id))


async def test_a_missing_subscription_is_fetched_and_decided_with(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    keys, ids = await seeded(app, fake_stripe)
    assert not await mirrored(app, ids["subscription_id"])

    r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ids)

    assert r.status_code == 200, r.text
    assert [po["offer_id"] for po in r.json()["personalized_offers"]] == ["stay"]
    assert await mirrored(app, ids["subscription_id"])


async def test_past_the_budget_the_decision_is_made_without_it_and_explain_says_so(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    keys, ids = await seeded(app, fake_stripe)
    app.services.billing.fetch_budget = 0.05
    fake_stripe.latency(1.0)

    r = await app.admin("POST", f"/sites/{SITE}/decisions/explain", ids)

    assert r.status_code == 200, r.text
    result = r.json()
    assert result["winner"] is None  # the rule needs the subscription's status
    (note,) = result["notes"]
    assert ids["subscription_id"] in note and "did not answer within" in note
    # the fetch went on: once it is done the next decision has the subscription
    await asyncio.gather(*app.services.billing._fetching.values())
    assert await mirrored(app, ids["subscription_id"])
    fake_stripe.latency(0)
    again = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ids)
    assert [po["offer_id"] for po in again.json()["personalized_offers"]] == ["stay"]


async def test_a_subscription_stripe_does_not_have_is_said_in_explain(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    _, ids = await seeded(app, fake_stripe)
    body = {**ids, "subscription_id": "sub_nope"}
    r = await app.admin("POST", f"/sites/{SITE}/decisions/explain", body)
    assert r.status_code == 200, r.text
    assert r.json()["notes"] == ["stripe has no subscription sub_nope"]


async def test_a_ledger_site_fetches_nothing_and_notes_nothing(app: TestApp) -> None:
    await app.create_site("acme")
    await app.put("acme", "offers/stay", offer())
    r = await app.admin(
        "POST", "/sites/acme/decisions/explain", {"customer_id": "cus_x", "subscription_id": "s"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["notes"] == []
