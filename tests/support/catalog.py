"""A small catalog and ledger most integration tests start from."""

from __future__ import annotations

from typing import Any

from tests.support.app import TestApp

NOW_TERM = 1_800_000_000


def offer(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Stay",
        "status": "active",
        "priority": 10,
        "content": {"title": "Before you go", "description": "Here is something for you."},
        "options": [
            {
                "id": "discount",
                "label": "20% off",
                "processing_type": "billing_update",
                "billing_action": {"type": "apply_coupon", "coupon_id": "SAVE20"},
            },
            {
                "id": "upgrade",
                "label": "Go Pro",
                "processing_type": "checkout",
                "processing_layout": "in_app",
                "billing_action": {"type": "change_plan", "plan_id": "pro"},
                "redirect_url": "https://merchant.example/back",
            },
            {
                "id": "talk",
                "label": "Talk to us",
                "processing_type": "url_redirect",
                "redirect_url": "https://merchant.example/save?c={customer_id}&s={subscription_id}"
                "&po={personalized_offer_id}&f={fulfillment_id}&o={option_id}",
            },
            {
                "id": "gift",
                "label": "A gift",
                "processing_type": "webhook",
                "webhook_url": "https://merchant.example/hook",
            },
            {
                "id": "call",
                "label": "Call me",
                "processing_type": "email",
                "email_to": ["success@merchant.example"],
            },
        ],
    }
    base.update(overrides)
    return base


async def seed(app: TestApp, site: str = "acme", **site_settings: Any) -> dict[str, str]:
    """Site, keys, plans basic/pro, coupon SAVE20, customer cus_1 with active sub_1, offer 'stay'."""
    keys = await app.create_site(site, **site_settings)
    await app.put(
        site,
        "plans/basic",
        {"name": "Basic", "price": 1500, "currency": "USD", "period_unit": "month"},
    )
    await app.put(
        site, "plans/pro", {"name": "Pro", "price": 4900, "currency": "USD", "period_unit": "month"}
    )
    await app.put(
        site,
        "coupons/SAVE20",
        {
            "name": "20% off",
            "discount_type": "percentage",
            "discount_percentage": 20,
            "duration_type": "forever",
        },
    )
    await app.put(site, "customers/cus_1", {"email": "ada@example.com", "first_name": "Ada"})
    await app.put(
        site,
        "subscriptions/sub_1",
        {
            "customer_id": "cus_1",
            "plan_id": "basic",
            "status": "active",
            "current_term_start": NOW_TERM - 86400,
            "current_term_end": NOW_TERM + 29 * 86400,
        },
    )
    await app.put(site, "offers/stay", offer())
    return keys


async def personalized_offer(app: TestApp, key: str, **params: Any) -> dict[str, Any]:
    body = {"customer_id": "cus_1", "subscription_id": "sub_1", **params}
    r = await app.post("/api/v2/personalized_offers", key, json=body)
    assert r.status_code == 200, r.text
    offers = r.json()["personalized_offers"]
    assert len(offers) == 1, r.text
    result: dict[str, Any] = offers[0]
    return result
