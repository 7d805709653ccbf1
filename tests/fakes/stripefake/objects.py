"""Stripe-shaped objects built from Stripe's published fixtures (spec/stripe-fixtures.json).

Every object starts as a copy of the fixture for its resource and overrides only ids and the
fields the fake models, so whatever else offerd reads has the shape Stripe documents.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import orjson

# a copy of ../shared/spec/stripe-fixtures.json (stripe/openapi fixtures3.json, MIT), so CI has it
_FIXTURES = Path(__file__).with_name("stripe-fixtures.json")
# kept serialised: orjson.loads of a template is the fastest deep copy (bulk seeding)
_TEMPLATES = {
    name: orjson.dumps(obj)
    for name, obj in orjson.loads(_FIXTURES.read_bytes())["resources"].items()
}


def fixture(resource: str) -> dict[str, Any]:
    """A fresh copy of Stripe's example object for ``resource``."""
    obj: dict[str, Any] = orjson.loads(_TEMPLATES[resource])
    return obj


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def customer(
    cid: str, created: int, *, email: str | None, name: str | None, metadata: dict[str, str]
) -> dict[str, Any]:
    obj = fixture("customer")
    obj.update(id=cid, created=created, email=email, name=name, metadata=metadata, discount=None)
    return obj


def product(pid: str, created: int, name: str) -> dict[str, Any]:
    obj = fixture("product")
    obj.update(
        id=pid,
        created=created,
        updated=created,
        name=name,
        default_price=None,
        description=None,
        package_dimensions=None,
    )
    return obj


def price(
    pid: str,
    created: int,
    *,
    product_id: str,
    unit_amount: int,
    currency: str,
    interval: str,
    nickname: str | None,
) -> dict[str, Any]:
    obj = fixture("price")
    obj.update(
        id=pid,
        created=created,
        product=product_id,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        currency=currency,
        nickname=nickname,
        transform_quantity=None,
    )
    obj["recurring"]["interval"] = interval
    return obj


def coupon(
    cid: str,
    created: int,
    *,
    percent_off: float | None,
    amount_off: int | None,
    currency: str | None,
    duration: str,
    duration_in_months: int | None,
    name: str | None,
) -> dict[str, Any]:
    obj = fixture("coupon")
    obj.update(
        id=cid,
        created=created,
        percent_off=percent_off,
        amount_off=amount_off,
        currency=currency if amount_off is not None else None,
        duration=duration,
        duration_in_months=duration_in_months if duration == "repeating" else None,
        name=name,
        redeem_by=None,
    )
    return obj


def discount(coupon_obj: dict[str, Any], *, sub: dict[str, Any], now: int) -> dict[str, Any]:
    obj = fixture("discount")
    months = coupon_obj.get("duration_in_months")
    end = now + months * 30 * 86400 if coupon_obj["duration"] == "repeating" and months else None
    obj.update(
        id=new_id("di"), customer=sub["customer"], subscription=sub["id"], start=now, end=end
    )
    obj["source"] = {"coupon": coupon_obj["id"], "type": "coupon"}
    return obj


def plan_of(price_obj: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``plan`` view of a price that subscription items still carry."""
    rec = price_obj["recurring"]
    return {
        "active": True,
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "id": price_obj["id"],
        "interval": rec["interval"],
        "interval_count": rec["interval_count"],
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": price_obj["nickname"],
        "object": "plan",
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_item(
    sub_id: str, price_obj: dict[str, Any], *, quantity: int, created: int, period: tuple[int, int]
) -> dict[str, Any]:
    obj = fixture("subscription_item")
    obj.update(
        id=new_id("si"),
        subscription=sub_id,
        price=dict(price_obj),
        plan=plan_of(price_obj),
        quantity=quantity,
        created=created,
        current_period_start=period[0],
        current_period_end=period[1],
        billing_thresholds=None,
    )
    return obj


def subscription(
    sid: str,
    *,
    customer_id: str,
    items: list[dict[str, Any]],
    status: str,
    created: int,
    trial_end: int | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    obj = fixture("subscription")
    obj.update(
        id=sid,
        customer=customer_id,
        status=status,
        created=created,
        start_date=created,
        billing_cycle_anchor=created,
        billing_cycle_anchor_config=None,
        cancel_at=None,
        canceled_at=None,
        ended_at=None,
        cancel_at_period_end=False,
        discounts=[],
        pause_collection=None,
        pending_update=None,
        pending_invoice_item_interval=None,
        next_pending_invoice_item_invoice=None,
        transfer_data=None,
        trial_end=trial_end,
        trial_start=created if trial_end else None,
        metadata=metadata,
        billing_schedules=[],
        currency=items[0]["price"]["currency"],
        managed_payments=None,
    )
    obj["items"]["data"] = items
    obj["items"]["url"] = f"/v1/subscription_items?subscription={sid}"
    return obj


def event(
    etype: str,
    obj: dict[str, Any],
    *,
    created: int,
    previous: dict[str, Any] | None,
    request_id: str | None,
    idempotency_key: str | None,
    api_version: str,
) -> dict[str, Any]:
    evt = fixture("event")
    evt.update(id=new_id("evt"), type=etype, created=created, api_version=api_version)
    evt["data"] = (
        {"object": obj} if previous is None else {"object": obj, "previous_attributes": previous}
    )
    evt["request"] = {"id": request_id, "idempotency_key": idempotency_key}
    return evt


def invoice(customer_id: str, sub_id: str | None, *, created: int, currency: str) -> dict[str, Any]:
    obj = fixture("invoice")
    obj.update(
        id=f"upcoming_in_{secrets.token_hex(6)}",
        customer=customer_id,
        subscription=sub_id,
        created=created,
        currency=currency,
        billing_reason="upcoming" if sub_id else "manual",
        last_finalization_error=None,
        from_invoice=None,
        shipping_cost=None,
        amount_overpaid=0,
        due_date=None,
        effective_at=None,
        webhooks_delivered_at=None,
        next_payment_attempt=None,
        status="draft",
        period_start=created,
        period_end=created,
    )
    obj["parent"] = (
        {
            "quote_details": None,
            "type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": sub_id},
        }
        if sub_id
        else None
    )
    return obj


def invoice_line(
    *,
    amount: int,
    currency: str,
    description: str,
    period: tuple[int, int],
    quantity: int,
    sub_id: str | None,
    item_id: str | None,
    price_id: str,
    proration: bool,
) -> dict[str, Any]:
    line: dict[str, Any] = fixture("invoice")["lines"]["data"][0]
    line.update(
        id=new_id("il"),
        amount=amount,
        subtotal=amount,
        currency=currency,
        description=description,
        period={"start": period[0], "end": period[1]},
        quantity=quantity,
        subscription=sub_id,
        invoice=None,
    )
    line["parent"] = {
        "invoice_item_details": None,
        "type": "subscription_item_details",
        "subscription_item_details": {
            "invoice_item": None,
            "proration": proration,
            "proration_details": {"credited_items": None},
            "subscription": sub_id,
            "subscription_item": item_id,
        },
    }
    line["pricing"] = {
        "type": "price_details",
        "unit_amount_decimal": None,
        "price_details": {"price": price_id, "product": None},
    }
    return line
