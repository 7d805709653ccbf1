"""The eight billing actions on a Stripe site through the public API (personalized offer →
accept → the worker), against the fake Stripe through the unmodified SDK: each fulfillment
completes, the subscription changed exactly once in Stripe under the fulfillment's key, and the
mirror holds what Stripe answered. (Chargebee Billing's: tests/billing/test_chargebee_site.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from offerd.billing.stripe.mapping import subscription_state
from offerd.queue.runtime import build_worker
from tests.billing.test_stripe_site import SITE, stripe_site
from tests.fakes.stripe_api import FakeStripe
from tests.fulfillments.helpers import accept_option, retrieve
from tests.support.app import TestApp
from tests.support.catalog import offer

DAY = 86_400

ACTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("apply_coupon", {"type": "apply_coupon", "coupon_id": "SAVE10"}, {}),
    ("change_plan", {"type": "change_plan", "plan_id": "price_pro"}, {}),
    ("pause", {"type": "pause_subscription", "pause_months": 2}, {}),
    (
        "resume",
        {"type": "resume_subscription"},
        {"pause_collection": {"behavior": "void", "resumes_at": None}},
    ),
    ("extend_trial", {"type": "extend_trial", "days": 7}, {"status": "trialing"}),
    ("convert_trial", {"type": "convert_trial"}, {"status": "trialing"}),
    ("cancel_end_of_term", {"type": "cancel_subscription", "end_of_term": True}, {}),
    ("cancel_now", {"type": "cancel_subscription", "end_of_term": False}, {}),
    (
        "remove_scheduled_cancellation",
        {"type": "remove_scheduled_cancellation"},
        {"cancel_at_period_end": True},
    ),
]


async def work(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


def expanded(fake: FakeStripe, sub_id: str) -> dict[str, Any]:
    read = fake.client().v1.subscriptions.retrieve(sub_id, {"expand": ["discounts"]})
    raw: dict[str, Any] = read.to_dict()
    return raw


@pytest.mark.parametrize(("name", "action", "seeded"), ACTIONS, ids=[a[0] for a in ACTIONS])
async def test_each_action_changes_the_stripe_subscription_once(
    app: TestApp,
    fake_stripe: FakeStripe,
    name: str,
    action: dict[str, Any],
    seeded: dict[str, Any],
) -> None:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
    fake_stripe.seed_price(id="price_pro", unit_amount=4900, nickname="Pro")
    keys = await stripe_site(app, fake_stripe)
    option = {
        "id": "deal",
        "label": "Deal",
        "processing_type": "billing_update",
        "billing_action": action,
    }
    r = await app.admin("PUT", f"/sites/{SITE}/offers/stay", offer(options=[option]))
    assert r.status_code in (200, 201), r.text
    customer = fake_stripe.seed_customer(email="ada@example.test")
    sub_id = fake_stripe.seed_subscription(customer, "price_basic", **seeded)["id"]
    before = subscription_state(expanded(fake_stripe, sub_id))
    ids = {"customer_id": customer["id"], "subscription_id": sub_id}
    r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ids)
    (po,) = r.json()["personalized_offers"]
    _, f = await accept_option(app, keys, "deal", po=po)

    await work(app)

    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "completed", (name, done)
    (change,) = fake_stripe.history(sub_id)
    # a DELETE carries no key at Stripe (it ignores them there): a retry re-reads first
    want_key = None if name == "cancel_now" else f"{f['id']}:apply:1"
    assert change.idempotency_key == want_key
    after = subscription_state(expanded(fake_stripe, sub_id))
    match name:
        case "apply_coupon":
            assert after.coupon_ids == ("SAVE10",)
        case "change_plan":
            assert after.plan_id == "price_pro"
        case "pause":
            assert after.status == "paused" and after.pause_until is not None
        case "resume":
            assert before.status == "paused" and after.status == "active"
        case "extend_trial":
            assert before.trial_end is not None and after.trial_end is not None
            assert (after.trial_end - before.trial_end).total_seconds() == 7 * DAY
        case "convert_trial":
            assert before.status == "in_trial" and after.status == "active"
        case "cancel_end_of_term":
            assert after.status == "non_renewing"
        case "cancel_now":
            assert after.status == "cancelled"
        case "remove_scheduled_cancellation":
            assert before.status == "non_renewing" and after.status == "active"
    (row,) = await app.fetch("SELECT status, plan_id FROM subscriptions WHERE id = %s", sub_id)
    assert (row["status"], row["plan_id"]) == (after.status, after.plan_id)
    await work(app)
    assert len(fake_stripe.history(sub_id)) == 1
