"""A site whose billing provider is Chargebee Billing, end to end through the public API against
the fake Chargebee, through the unmodified ``chargebee`` SDK: each action changes the
subscription in Chargebee exactly once (its history has one change, made under the
fulfillment's key); a 500 and a lost answer are retried without applying twice; refused
credentials fail it and mark the provider unhealthy; trial conversion is refused where the offer
is saved; the mirror is imported, kept current by webhooks and fetched on demand; checkout
previews come from Chargebee's estimate."""

from __future__ import annotations

from typing import Any

import pytest

from offerd.billing.chargebee.mapping import subscription_state
from offerd.queue.runtime import build_worker
from tests.checkout.test_hosted_pages import answer, open_page
from tests.fakes.chargebee_api import FakeChargebee, chargebee_fake  # noqa: F401
from tests.fulfillments.helpers import accept_option, retrieve
from tests.notifications.flows import advance_to
from tests.support.app import TestApp
from tests.support.catalog import offer

SITE = "cbshop"
KEY = "test_cbsite_key_42"
USER, PASSWORD = "offerd", "a-long-webhook-password"
DAY = 86_400


async def chargebee_site(app: TestApp, fake: FakeChargebee) -> dict[str, str]:
    keys = await app.create_site(SITE)
    fake.set_key(KEY)
    body = {
        "type": "chargebee",
        "site": fake.site,
        "api_key": KEY,
        "webhook_username": USER,
        "webhook_password": PASSWORD,
        "api_base": fake.api_base,
    }
    r = await app.admin("PUT", f"/sites/{SITE}/billing_provider", body)
    assert r.status_code == 201, r.text
    return keys


def seed(fake: FakeChargebee) -> None:
    fake.seed_item_price("basic-USD-monthly", 2000)
    fake.seed_item_price("pro-USD-monthly", 4900)
    fake.seed_coupon("TEN", discount_percentage=10.0)


async def offering(
    app: TestApp, action: dict[str, Any], processing: str = "billing_update"
) -> None:
    option = {
        "id": "deal",
        "label": "Deal",
        "processing_type": processing,
        "billing_action": action,
    }
    if processing == "checkout":
        option.update(processing_layout="in_app", redirect_url="https://merchant.example/back")
    r = await app.admin("PUT", f"/sites/{SITE}/offers/stay", offer(options=[option]))
    assert r.status_code in (200, 201), r.text


async def accepted(app: TestApp, keys: dict[str, str], sub: dict[str, Any]) -> dict[str, Any]:
    ids = {"customer_id": sub["customer_id"], "subscription_id": sub["id"]}
    r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ids)
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    _, fulfillment = await accept_option(app, keys, "deal", po=po)
    return fulfillment


async def work(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


ACTIONS = [
    ("apply_coupon", {"type": "apply_coupon", "coupon_id": "TEN"}, "active", "update_for_items"),
    (
        "change_plan",
        {"type": "change_plan", "plan_id": "pro-USD-monthly"},
        "active",
        "update_for_items",
    ),
    ("pause", {"type": "pause_subscription", "pause_months": 2}, "active", "pause"),
    ("resume", {"type": "resume_subscription"}, "paused", "resume"),
    ("extend_trial", {"type": "extend_trial", "days": 7}, "in_trial", "change_term_end"),
    (
        "cancel_end_of_term",
        {"type": "cancel_subscription", "end_of_term": True},
        "active",
        "cancel_for_items",
    ),
    (
        "cancel_now",
        {"type": "cancel_subscription", "end_of_term": False},
        "active",
        "cancel_for_items",
    ),
    (
        "remove_scheduled_cancellation",
        {"type": "remove_scheduled_cancellation"},
        "non_renewing",
        "remove_scheduled_cancellation",
    ),
]


@pytest.mark.parametrize(("name", "action", "status", "op"), ACTIONS, ids=[a[0] for a in ACTIONS])
async def test_each_action_changes_the_chargebee_subscription_once(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
    name: str,
    action: dict[str, Any],
    status: str,
    op: str,
) -> None:
    seed(chargebee_fake)
    keys = await chargebee_site(app, chargebee_fake)
    await offering(app, action)
    sub = chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly", status=status)
    before = subscription_state(chargebee_fake.subscription("sub_1"))
    f = await accepted(app, keys, sub)

    await work(app)

    assert (await retrieve(app, keys, f["id"]))["status"] == "completed", name
    (change,) = chargebee_fake.history("sub_1")
    assert change["op"] == op
    after = subscription_state(chargebee_fake.subscription("sub_1"))
    match name:
        case "apply_coupon":
            assert after.coupon_ids == ("TEN",)
        case "change_plan":
            assert after.plan_id == "pro-USD-monthly"
        case "pause":
            assert after.status == "paused" and after.pause_until is not None
        case "resume":
            assert after.status == "active"
        case "extend_trial":
            assert before.trial_end is not None and after.trial_end is not None
            assert (after.trial_end - before.trial_end).total_seconds() == 7 * DAY
        case "cancel_end_of_term":
            assert after.status == "non_renewing"
        case "cancel_now":
            assert after.status == "cancelled"
        case "remove_scheduled_cancellation":
            assert after.status == "active"
    # the mirror has what Chargebee answered
    (row,) = await app.fetch("SELECT status FROM subscriptions WHERE id = 'sub_1'")
    assert row["status"] == after.status
    await work(app)
    assert len(chargebee_fake.history("sub_1")) == 1


async def test_a_500_then_a_lost_answer_are_retried_and_apply_once(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    keys = await chargebee_site(app, chargebee_fake)
    await offering(app, {"type": "extend_trial", "days": 7})
    sub = chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly", status="in_trial")
    trial_end = sub["trial_end"]
    f = await accepted(app, keys, sub)
    chargebee_fake.fail_next(1, 500, method="POST")

    await work(app)  # the 500: rescheduled
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
    chargebee_fake.apply_then_drop_connection(1)
    (job,) = await app.fetch("SELECT run_at FROM jobs WHERE kind = 'fulfillment.billing_update'")
    advance_to(app, job["run_at"])
    await work(app)  # applied, the answer lost: rescheduled
    (job,) = await app.fetch("SELECT run_at FROM jobs WHERE kind = 'fulfillment.billing_update'")
    advance_to(app, job["run_at"])
    await work(app)  # the re-read finds it done: nothing sent

    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"
    (change,) = chargebee_fake.history("sub_1")
    assert chargebee_fake.subscription("sub_1")["trial_end"] == trial_end + 7 * DAY


async def test_refused_credentials_fail_it_and_mark_the_provider_unhealthy(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    keys = await chargebee_site(app, chargebee_fake)
    await offering(app, {"type": "apply_coupon", "coupon_id": "TEN"})
    sub = chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly")
    f = await accepted(app, keys, sub)
    chargebee_fake.revoke_key()

    await work(app)

    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "billing_update_failed"
    assert chargebee_fake.history("sub_1") == []
    r = await app.admin("GET", f"/sites/{SITE}/billing_provider")
    assert r.json()["status"] == "unhealthy"


async def test_chargebees_refusal_fails_it_with_chargebees_message_and_is_not_retried(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    chargebee_fake.seed_coupon(
        "EUR5", discount_type="fixed_amount", discount_amount=500, currency_code="EUR"
    )
    keys = await chargebee_site(app, chargebee_fake)
    await offering(app, {"type": "apply_coupon", "coupon_id": "EUR5"})
    sub = chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly")
    f = await accepted(app, keys, sub)

    await work(app)

    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "billing_update_failed"
    assert "is not in USD" in done["error"]["message"]  # Chargebee's own words
    assert chargebee_fake.history("sub_1") == []
    posts = [c for c in chargebee_fake.calls if c.method == "POST"]
    assert len(posts) == 1  # refused for good: not sent again


async def test_an_offer_that_converts_a_trial_is_refused_for_a_chargebee_site(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    await chargebee_site(app, chargebee_fake)
    option = {
        "id": "deal",
        "label": "Go paid",
        "processing_type": "billing_update",
        "billing_action": {"type": "convert_trial"},
    }
    r = await app.admin("PUT", f"/sites/{SITE}/offers/stay", offer(options=[option]))
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "options[0][billing_action][type]"
    assert "Chargebee" in r.json()["message"]


async def test_import_webhooks_and_on_demand_fetch_keep_the_mirror_equal_to_chargebee(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    chargebee_fake.seed_coupon("FIXED5", discount_type="fixed_amount", discount_amount=500)
    chargebee_fake.seed_item_price("addon-USD", 300, item_type="addon")
    for n in range(130):
        chargebee_fake.seed_subscription(
            f"s{n}", items="basic-USD-monthly", status=("active", "in_trial", "cancelled")[n % 3]
        )
    await chargebee_site(app, chargebee_fake)

    r = await app.admin("POST", f"/sites/{SITE}/billing_provider/sync")
    assert r.status_code == 202, r.text
    await work(app)
    state = (await app.admin("GET", f"/sites/{SITE}/billing_provider")).json()["sync"]
    assert state["state"] == "idle", state
    assert state["counts"] == {"customers": 130, "subscriptions": 130, "plans": 2, "coupons": 2}

    # changes made in Chargebee, their events delivered twice and in reverse
    chargebee_fake.take_events()
    chargebee_fake.update("subscription", "s0", status="non_renewing", cancelled_at=2_000_000_000)
    chargebee_fake.update(
        "customer", chargebee_fake.subscription("s1")["customer_id"], email="new@x.test"
    )
    chargebee_fake.seed_subscription("late", items="pro-USD-monthly")
    events = chargebee_fake.take_events() + [
        chargebee_fake.event_for("late", "subscription_created")
    ]
    for event in [e for e in reversed(events) for _ in (0, 1)]:
        res = await app.client.post(
            f"/webhooks/chargebee/{SITE}", json=event, auth=(USER, PASSWORD)
        )
        assert res.status_code == 200, res.text
    await work(app)

    rows = {
        r["id"]: r for r in await app.fetch("SELECT * FROM subscriptions WHERE site_id = %s", SITE)
    }
    for sid in ("s0", "s1", "s2", "late"):
        want = subscription_state(chargebee_fake.subscription(sid))
        assert (rows[sid]["status"], rows[sid]["plan_id"]) == (want.status, want.plan_id), sid
    assert rows["s0"]["status"] == "non_renewing"
    (c,) = await app.fetch(
        "SELECT email FROM customers WHERE id = %s",
        chargebee_fake.subscription("s1")["customer_id"],
    )
    assert c["email"] == "new@x.test"

    # a subscription not yet mirrored is fetched when a decision needs it
    fresh = chargebee_fake.seed_subscription("fresh", items="basic-USD-monthly")
    r = await app.admin(
        "POST",
        f"/sites/{SITE}/decisions/explain",
        {"customer_id": fresh["customer_id"], "subscription_id": "fresh"},
    )
    assert r.status_code == 200 and r.json()["notes"] == []
    assert await app.fetch("SELECT 1 FROM subscriptions WHERE id = 'fresh'")


async def test_checkout_previews_chargebees_estimate_and_confirm_applies_once(
    app: TestApp,
    chargebee_fake: FakeChargebee,  # noqa: F811
) -> None:
    seed(chargebee_fake)
    keys = await chargebee_site(app, chargebee_fake)
    await offering(app, {"type": "change_plan", "plan_id": "pro-USD-monthly"}, "checkout")
    sub = chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly")
    ids = {"customer_id": sub["customer_id"], "subscription_id": "sub_1"}
    r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ids)
    (po,) = r.json()["personalized_offers"]
    r = await app.post(
        "/api/v2/offer_fulfillments",
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "deal"},
    )
    assert r.status_code == 202, r.text
    f, hosted = r.json()["offer_fulfillment"], r.json()["hosted_page"]
    estimates = len([c for c in chargebee_fake.calls if "estimates" in c.path])

    shown, page = await open_page(app, hosted)

    assert shown.status_code == 200, shown.text
    assert "$49.00" in page.text  # the new plan's next charge, Chargebee's estimate
    assert len([c for c in chargebee_fake.calls if "estimates" in c.path]) == estimates + 1
    assert chargebee_fake.history("sub_1") == []
    done = await answer(app, hosted, "confirm", page.token)
    assert done.status_code in (200, 303), done.text
    await work(app)
    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"
    (change,) = chargebee_fake.history("sub_1")
    assert change["op"] == "update_for_items"
    assert subscription_state(chargebee_fake.subscription("sub_1")).plan_id == "pro-USD-monthly"
