"""Chargebee Billing objects (as the API returns them) → offerd's state and mirror rows. Pure.

Status mapping:

| Chargebee        | offerd          | notes                                                         |
|------------------|-----------------|---------------------------------------------------------------|
| ``in_trial``     | ``in_trial``    | ``trial_end``                                                 |
| ``active``       | ``active``      | a pause scheduled for later (``pause_date``) is still active  |
| ``non_renewing`` | ``non_renewing``| ``cancel_at`` = ``cancelled_at`` (the scheduled date)         |
| ``paused``       | ``paused``      | ``pause_until`` = ``resume_date`` (none: paused until resumed)|
| ``cancelled``    | ``cancelled``   | ``cancelled_at``                                              |
| ``future``, ``transferred`` | refused | not started yet / moved to another customer: no actions  |

``plan_id`` is the item price of the subscription's plan item (addons and charges are left as
they are), ``quantity`` that item's quantity, ``coupon_ids`` the applied coupons in order.

Mirror rows: an item price of a plan → a plan (``price``, ``currency_code``, ``period`` and
``period_unit``; addon and charge prices, and prices not per unit/flat fee, are not mirrored);
a coupon (``percentage``/``fixed_amount``; ``offer_quantity`` coupons are not mirrored;
``duration_month`` for a limited period); a customer (deleted ones leave the mirror).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from offerd.billing.actions import Status, SubscriptionState
from offerd.billing.mirror.objects import (
    Gone,
    Kind,
    MirroredCoupon,
    MirroredCustomer,
    MirroredPlan,
    MirroredSubscription,
    Row,
    Unmirrorable,
)


class NotMappable(Exception):  # noqa: N818 - a domain outcome, not a crash
    """The subscription has no offerd equivalent (future, transferred, no plan item)."""


_STATUSES: dict[str, Status] = {
    "in_trial": "in_trial",
    "active": "active",
    "non_renewing": "non_renewing",
    "paused": "paused",
    "cancelled": "cancelled",
}


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def plan_item(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    plans = [i for i in sub.get("subscription_items") or () if i.get("item_type") == "plan"]
    if len(plans) != 1:
        raise NotMappable(f"subscription {sub.get('id')!r} has {len(plans)} plan items, not one")
    item: Mapping[str, Any] = plans[0]
    return item


def subscription_state(sub: Mapping[str, Any]) -> SubscriptionState:
    status = _STATUSES.get(sub["status"])
    if status is None:
        raise NotMappable(f"a Chargebee subscription in status {sub['status']!r} takes no actions")
    item = plan_item(sub)
    return SubscriptionState(
        status=status,
        plan_id=item["item_price_id"],
        quantity=int(item.get("quantity") or 1),
        coupon_ids=tuple(c["coupon_id"] for c in sub.get("coupons") or ()),
        trial_end=_ts(sub.get("trial_end")) if status == "in_trial" else None,
        current_term_start=_ts(sub.get("current_term_start")),
        current_term_end=_ts(sub.get("current_term_end")),
        pause_until=_ts(sub.get("resume_date")) if status == "paused" else None,
        cancel_at=_ts(sub.get("cancelled_at")) if status == "non_renewing" else None,
        cancelled_at=_ts(sub.get("cancelled_at")) if status == "cancelled" else None,
    )


def plan_row(price: Mapping[str, Any]) -> MirroredPlan | Unmirrorable:
    if price.get("item_type", "plan") != "plan":
        return Unmirrorable("plan", price["id"], f"a {price.get('item_type')} price is not a plan")
    unit = price.get("period_unit")
    if unit not in ("day", "week", "month", "year") or price.get("price") is None:
        return Unmirrorable("plan", price["id"], "only recurring per-unit or flat prices")
    return MirroredPlan(
        id=price["id"],
        name=price.get("external_name") or price.get("name") or price["id"],
        price=int(price["price"]),
        currency=str(price.get("currency_code") or "USD").upper(),
        period_unit=unit,
        period=int(price.get("period") or 1),
    )


def coupon_row(coupon: Mapping[str, Any]) -> MirroredCoupon | Unmirrorable:
    kind = coupon.get("discount_type")
    if kind not in ("percentage", "fixed_amount"):
        return Unmirrorable("coupon", coupon["id"], f"{kind} coupons are not mirrored")
    duration: Literal["one_time", "forever", "limited_period"] = {
        "one_time": "one_time",
        "forever": "forever",
    }.get(coupon.get("duration_type") or "forever", "limited_period")  # type: ignore[assignment]
    months = coupon.get("duration_month")
    return MirroredCoupon(
        id=coupon["id"],
        name=coupon.get("name") or coupon["id"],
        discount_type=kind,
        discount_percentage=float(coupon["discount_percentage"]) if kind == "percentage" else None,
        discount_amount=int(coupon["discount_amount"]) if kind == "fixed_amount" else None,
        currency=str(coupon["currency_code"]).upper() if coupon.get("currency_code") else None,
        duration_type=duration,
        duration_months=int(months) if duration == "limited_period" and months else None,
    )


def customer_row(customer: Mapping[str, Any]) -> MirroredCustomer | Gone:
    if customer.get("deleted"):
        return Gone("customer", customer["id"])
    return MirroredCustomer(
        id=customer["id"],
        email=customer.get("email"),
        first_name=customer.get("first_name"),
        last_name=customer.get("last_name"),
        business_entity_id=customer.get("business_entity_id"),
    )


def subscription_row(sub: Mapping[str, Any]) -> MirroredSubscription | Unmirrorable:
    try:
        state = subscription_state(sub)
    except NotMappable as exc:
        return Unmirrorable("subscription", sub["id"], str(exc))
    return MirroredSubscription(
        id=sub["id"],
        customer_id=sub["customer_id"],
        state=state,
        business_entity_id=sub.get("business_entity_id"),
    )


def row_of(kind: Kind, obj: Mapping[str, Any]) -> Row | Gone | Unmirrorable:
    if obj.get("deleted"):
        return Gone(kind, obj["id"])
    match kind:
        case "plan":
            return plan_row(obj)
        case "coupon":
            return coupon_row(obj)
        case "customer":
            return customer_row(obj)
        case "subscription":
            return subscription_row(obj)
