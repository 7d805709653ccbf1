"""Saving an offer for a Stripe site: the plans and coupons its billing actions name must be the
provider's — found in the mirror, or fetched from Stripe (and mirrored); unknown is a 400 naming
the param."""

from __future__ import annotations

from tests.billing.test_stripe_site import SITE, stripe_site
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp
from tests.support.catalog import offer


def option(action: dict[str, object]) -> dict[str, object]:
    return {
        "id": "o",
        "label": "Deal",
        "processing_type": "billing_update",
        "billing_action": action,
    }


async def test_an_unknown_coupon_or_price_is_a_400_naming_the_param(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    fake_stripe.seed_price(id="price_pro", unit_amount=4900)
    talk = {
        "id": "talk",
        "label": "Talk",
        "processing_type": "url_redirect",
        "redirect_url": "https://merchant.example/talk",
    }
    cases = [
        (
            [option({"type": "apply_coupon", "coupon_id": "NOPE"})],
            "options[0][billing_action][coupon_id]",
        ),
        (
            [talk, option({"type": "change_plan", "plan_id": "price_nope"})],
            "options[1][billing_action][plan_id]",
        ),
    ]
    for options, param in cases:
        r = await app.admin("PUT", f"/sites/{SITE}/offers/deal", offer(options=options))
        assert r.status_code == 400, r.text
        assert r.json()["param"] == param
        assert "stripe" in r.json()["message"]
    assert await app.fetch("SELECT 1 FROM offers WHERE id = 'deal'") == []


async def test_a_price_stripe_has_is_fetched_mirrored_and_accepted(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    fake_stripe.seed_price(id="price_pro", unit_amount=4900, nickname="Pro")
    body = offer(options=[option({"type": "change_plan", "plan_id": "price_pro"})])

    r = await app.admin("PUT", f"/sites/{SITE}/offers/deal", body)

    assert r.status_code == 201, r.text
    (plan,) = await app.fetch("SELECT name, price FROM plans WHERE id = 'price_pro'")
    assert (plan["name"], plan["price"]) == ("Pro", 4900)


async def test_stripe_unreachable_at_save_is_a_422_to_try_again(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    fake_stripe.fail_next(1, 500, methods=("GET",))
    body = offer(options=[option({"type": "apply_coupon", "coupon_id": "LATER"})])
    r = await app.admin("PUT", f"/sites/{SITE}/offers/deal", body)
    assert r.status_code == 422, r.text
    assert r.json()["param"] == "options[0][billing_action][coupon_id]"
    assert "try again" in r.json()["message"]
