"""Which mirrored objects a provider's webhook event names (pure).

An event is only a hint that something changed: the mirror re-reads each object it names
(``refresh``), so its payload's own copy of the object, however stale, is never stored.

| provider  | event types                                           | re-read                     |
|-----------|-------------------------------------------------------|-----------------------------|
| Stripe    | ``customer.created/updated/deleted``                  | the customer                |
| Stripe    | ``customer.subscription.*`` (created, updated, deleted, paused, resumed, trial_will_end, …) | the subscription |
| Stripe    | ``coupon.*``                                          | the coupon                  |
| Stripe    | ``price.*``                                           | the price (a plan)          |
| Stripe    | ``customer.discount.*``                               | the subscription it is on   |
| Chargebee | any event whose ``content`` carries a ``subscription``, ``customer``, ``coupon`` or ``item_price`` | each of them |

Any other event is acknowledged (2xx, so the provider does not retry it) and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offerd.billing.mirror.objects import Kind

Target = tuple[Kind, str]

_STRIPE_PREFIXES: tuple[tuple[str, Kind], ...] = (
    ("customer.subscription.", "subscription"),
    ("customer.discount.", "subscription"),
    ("customer.", "customer"),
    ("coupon.", "coupon"),
    ("price.", "plan"),
)

_CHARGEBEE_CONTENT: tuple[tuple[str, Kind], ...] = (
    ("item_price", "plan"),
    ("coupon", "coupon"),
    ("customer", "customer"),
    ("subscription", "subscription"),
)


def stripe_targets(event: Mapping[str, Any]) -> list[Target]:
    event_type = str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    for prefix, kind in _STRIPE_PREFIXES:
        if event_type.startswith(prefix):
            oid = obj.get("subscription") if prefix == "customer.discount." else obj.get("id")
            return [(kind, oid)] if isinstance(oid, str) and oid else []
    return []


def chargebee_targets(event: Mapping[str, Any]) -> list[Target]:
    content = event.get("content") or {}
    targets: list[Target] = []
    for key, kind in _CHARGEBEE_CONTENT:
        obj = content.get(key)
        if isinstance(obj, Mapping) and isinstance(obj.get("id"), str) and obj["id"]:
            targets.append((kind, obj["id"]))
    return targets
