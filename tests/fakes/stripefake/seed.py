"""Putting an account's starting state in place from a test, without HTTP and without events
(the state a merchant already had before offerd connected)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakes.stripefake import objects as o
from tests.fakes.stripefake.store import INTERVAL_SECONDS, Store


def _id(obj: str | dict[str, Any]) -> str:
    return obj if isinstance(obj, str) else str(obj["id"])


def customer(
    store: Store,
    *,
    id: str | None = None,
    email: str | None = None,  # noqa: A002
    name: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return store.add(
        "customer",
        o.customer(
            id or o.new_id("cus"), store.now(), email=email, name=name, metadata=metadata or {}
        ),
    )


def price(
    store: Store,
    *,
    id: str | None = None,
    unit_amount: int = 1000,  # noqa: A002
    currency: str = "usd",
    interval: str = "month",
    product: str | None = None,
    nickname: str | None = None,
) -> dict[str, Any]:
    with store.lock:
        if product is None or product not in store.objects["product"]:
            product = store.add(
                "product", o.product(product or o.new_id("prod"), store.now(), nickname or "Plan")
            )["id"]
        return store.add(
            "price",
            o.price(
                id or o.new_id("price"),
                store.now(),
                product_id=product,
                unit_amount=unit_amount,
                currency=currency,
                interval=interval,
                nickname=nickname,
            ),
        )


def coupon(
    store: Store,
    *,
    id: str | None = None,
    percent_off: float | None = None,  # noqa: A002
    amount_off: int | None = None,
    currency: str | None = "usd",
    duration: str = "once",
    duration_in_months: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    if (percent_off is None) == (amount_off is None):
        raise ValueError("a coupon has exactly one of percent_off and amount_off")
    return store.add(
        "coupon",
        o.coupon(
            id or o.new_id("coupon")[:15],
            store.now(),
            percent_off=percent_off,
            amount_off=amount_off,
            currency=currency,
            duration=duration,
            duration_in_months=duration_in_months,
            name=name,
        ),
    )


def subscription(
    store: Store,
    customer: str | dict[str, Any],
    price: str | dict[str, Any],
    *,
    id: str | None = None,
    status: str = "active",  # noqa: A002
    trial_end: int | None = None,
    quantity: int = 1,
    coupons: Iterable[str] = (),
    cancel_at_period_end: bool = False,
    pause_collection: dict[str, Any] | None = None,
    created: int | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    with store.lock:
        cus = store.get("customer", _id(customer))
        pri = store.get("price", _id(price))
        now = created if created is not None else store.now()
        if status == "trialing" and trial_end is None:
            trial_end = now + 14 * 86400
        sid = id or o.new_id("sub")
        end = (
            trial_end
            if status == "trialing"
            else now + INTERVAL_SECONDS[pri["recurring"]["interval"]]
        )
        assert end is not None
        item = o.subscription_item(sid, pri, quantity=quantity, created=now, period=(now, end))
        sub = o.subscription(
            sid,
            customer_id=cus["id"],
            items=[item],
            status=status,
            created=now,
            trial_end=trial_end,
            metadata=metadata or {},
        )
        sub.update(
            cancel_at_period_end=cancel_at_period_end,
            pause_collection=pause_collection,
            cancel_at=end if cancel_at_period_end else None,
        )
        if status == "canceled":
            sub.update(canceled_at=now, ended_at=now)
        for cid in coupons:
            disc = o.discount(store.get("coupon", cid), sub=sub, now=now)
            store.discounts[disc["id"]] = disc
            sub["discounts"].append(disc["id"])
        return store.add("subscription", sub)


def many(
    store: Store,
    count: int,
    price: str | dict[str, Any],
    *,
    statuses: tuple[str, ...] = ("active",),
) -> list[str]:
    """``count`` customers with one subscription each (statuses taken in turn): the sync's load."""
    ids: list[str] = []
    with store.lock:
        for n in range(count):
            cus = customer(store, email=f"bulk{n}@example.test", name=f"Bulk {n}")
            ids.append(subscription(store, cus, price, status=statuses[n % len(statuses)])["id"])
    return ids
