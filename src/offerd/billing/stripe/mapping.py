"""A Stripe subscription object (as ``to_dict()`` gives it) → offerd's ``SubscriptionState``.

Pure: no SDK calls. The subscription must be read with ``expand=["discounts"]`` so that each
discount names its coupon (an unexpanded discount id says nothing about the coupon).

Status mapping (first matching row wins):

| Stripe                                              | offerd         | notes                                  |
|-----------------------------------------------------|----------------|----------------------------------------|
| ``canceled``, ``incomplete_expired``                | ``cancelled``  | ``cancelled_at`` = ``canceled_at`` / ``ended_at`` |
| ``paused`` (trial ended without a payment method)   | ``paused``     | no ``pause_until``: Stripe resumes on ``resume`` |
| any live status with ``pause_collection`` set       | ``paused``     | ``pause_until`` = ``pause_collection.resumes_at`` |
| live with ``cancel_at_period_end`` (or ``cancel_at``)| ``non_renewing``| ``cancel_at`` = ``cancel_at`` or the period end |
| ``trialing``                                        | ``in_trial``   |                                        |
| ``active``                                          | ``active``     |                                        |
| ``past_due``, ``unpaid``                            | ``active``     | still a customer's running subscription: Stripe keeps retrying the invoice, and offers (save a churning customer) apply as to an active one |
| ``incomplete``                                      | refused        | the first payment never succeeded: ``NotMappable``, actions are refused |

Other fields: ``plan_id`` = the price id of the single subscription item (more than one item →
``NotMappable``: offerd's actions speak of one plan), ``quantity`` its quantity, ``coupon_ids`` the
discounts' coupons in order, ``trial_end`` only while trialing, the current term from the item
(stripe-python 16 / API 2025-03-31+ moved ``current_period_*`` from the subscription to its items;
the subscription's own fields are used when an older API version still sends them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
    """The subscription has no offerd equivalent (incomplete, several items): refuse actions."""


_LIVE = ("trialing", "active", "past_due", "unpaid")


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def _coupon_of(discount: Any) -> str:
    if not isinstance(discount, Mapping):
        raise NotMappable("read the subscription with expand=['discounts']")
    source = discount.get("source") or {}
    coupon = source.get("coupon") or discount.get("coupon")
    if isinstance(coupon, Mapping):
        coupon = coupon.get("id")
    if not isinstance(coupon, str):
        raise NotMappable(f"discount {discount.get('id')!r} names no coupon")
    return coupon


def status_of(sub: Mapping[str, Any]) -> Status:
    stripe_status = sub["status"]
    if stripe_status in ("canceled", "incomplete_expired"):
        return "cancelled"
    if stripe_status == "paused":
        return "paused"
    if stripe_status not in _LIVE:
        raise NotMappable(f"a Stripe subscription in status {stripe_status!r} takes no actions")
    if sub.get("pause_collection"):
        return "paused"
    if sub.get("cancel_at_period_end") or sub.get("cancel_at"):
        return "non_renewing"
    return "in_trial" if stripe_status == "trialing" else "active"


def subscription_state(sub: Mapping[str, Any]) -> SubscriptionState:
    items = sub["items"]["data"]
    if len(items) != 1:
        raise NotMappable(f"subscription {sub.get('id')!r} has {len(items)} items, not one")
    (item,) = items
    status = status_of(sub)
    period_start = item.get("current_period_start", sub.get("current_period_start"))
    period_end = item.get("current_period_end", sub.get("current_period_end"))
    pause = sub.get("pause_collection") or {}
    cancel_at = None
    if status == "non_renewing":
        cancel_at = _ts(sub.get("cancel_at") or period_end)
    return SubscriptionState(
        status=status,
        plan_id=item["price"]["id"],
        quantity=int(item.get("quantity") or 1),
        coupon_ids=tuple(_coupon_of(d) for d in sub.get("discounts") or ()),
        trial_end=_ts(sub.get("trial_end")) if sub["status"] == "trialing" else None,
        current_term_start=_ts(period_start),
        current_term_end=_ts(period_end),
        pause_until=_ts(pause.get("resumes_at")) if status == "paused" else None,
        cancel_at=cancel_at,
        cancelled_at=_ts(sub.get("canceled_at") or sub.get("ended_at"))
        if status == "cancelled"
        else None,
    )


# --- the mirror: Stripe objects as offerd's rows ------------------------------------------------
#
# | Stripe                         | offerd                                                       |
# |--------------------------------|--------------------------------------------------------------|
# | price (recurring, per unit)    | plan: unit_amount, currency (upper case), interval and        |
# |                                | interval_count; name = nickname or the id                    |
# | price one-off or tiered        | not mirrored (no plan equivalent)                            |
# | coupon                         | coupon: percent_off → percentage, amount_off → fixed_amount; |
# |                                | duration once/forever/repeating → one_time/forever/limited   |
# | customer                       | customer: email; name split at its first space               |
# | customer deleted               | gone (its subscriptions go with it)                          |
# | subscription                   | subscription_state above; not mirrored when NotMappable      |

_DURATIONS = {"once": "one_time", "forever": "forever", "repeating": "limited_period"}


def plan_row(price: Mapping[str, Any]) -> MirroredPlan | Unmirrorable:
    recurring = price.get("recurring") or {}
    interval = recurring.get("interval")
    if interval not in ("day", "week", "month", "year"):
        return Unmirrorable("plan", price["id"], "a one-off price is not a plan")
    if price.get("unit_amount") is None:
        return Unmirrorable("plan", price["id"], "tiered or metered prices are not mirrored")
    return MirroredPlan(
        id=price["id"],
        name=price.get("nickname") or price["id"],
        price=int(price["unit_amount"]),
        currency=str(price["currency"]).upper(),
        period_unit=interval,
        period=int(recurring.get("interval_count") or 1),
    )


def coupon_row(coupon: Mapping[str, Any]) -> MirroredCoupon:
    percent = coupon.get("percent_off")
    months = coupon.get("duration_in_months")
    duration = _DURATIONS.get(coupon.get("duration") or "once", "one_time")
    return MirroredCoupon(
        id=coupon["id"],
        name=coupon.get("name") or coupon["id"],
        discount_type="percentage" if percent is not None else "fixed_amount",
        discount_percentage=float(percent) if percent is not None else None,
        discount_amount=None if percent is not None else int(coupon.get("amount_off") or 0) or None,
        currency=str(coupon["currency"]).upper() if coupon.get("currency") else None,
        duration_type=duration,  # type: ignore[arg-type]
        duration_months=int(months) if duration == "limited_period" and months else None,
    )


def customer_row(customer: Mapping[str, Any]) -> MirroredCustomer | Gone:
    if customer.get("deleted"):
        return Gone("customer", customer["id"])
    first, _, last = (customer.get("name") or "").partition(" ")
    return MirroredCustomer(
        id=customer["id"],
        email=customer.get("email"),
        first_name=first or None,
        last_name=last or None,
    )


def subscription_row(sub: Mapping[str, Any]) -> MirroredSubscription | Unmirrorable:
    customer = sub["customer"]
    if isinstance(customer, Mapping):
        customer = customer["id"]
    try:
        state = subscription_state(sub)
    except NotMappable as exc:
        return Unmirrorable("subscription", sub["id"], str(exc))
    return MirroredSubscription(id=sub["id"], customer_id=str(customer), state=state)


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
