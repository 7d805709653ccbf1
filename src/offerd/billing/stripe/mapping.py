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
