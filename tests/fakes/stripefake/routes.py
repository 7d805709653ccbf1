"""Each endpoint the fake serves: its parameters (the subset of Stripe's it implements, see
params.py) and what it does with them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.stripefake import objects as o
from tests.fakes.stripefake.params import (
    StripeError,
    integer,
    invalid,
    missing,
    no_such,
    one_of,
)
from tests.fakes.stripefake.preview import create_preview
from tests.fakes.stripefake.store import ACTIVE_STATUSES, Ctx, Store

Params = dict[str, Any]
LIST = {"limit": None, "starting_after": None, "expand": [None]}
DISCOUNTS = [{"coupon": None, "discount": None}]
ITEMS = [{"id": None, "price": None, "quantity": None, "deleted": None}]
EXPANDABLE = {"discounts", "data.discounts"}


def _expand(p: Params) -> list[str]:
    wanted: list[str] = p.get("expand") or []
    for i, name in enumerate(wanted):
        if name not in EXPANDABLE:
            raise invalid(f"expand[{i}]", f"This property cannot be expanded ({name}).")
    return [w.removeprefix("data.") for w in wanted]


def listing(
    store: Store,
    kind: str,
    p: Params,
    url: str,
    keep: Callable[[dict[str, Any]], bool] = lambda _o: True,
) -> dict[str, Any]:
    limit = integer(p, "limit", 10)
    assert limit is not None
    if not 1 <= limit <= 100:
        raise StripeError(
            400,
            f"This value must be between 1 and 100 (it currently is '{limit}').",
            code="parameter_invalid_integer",
            param="limit",
            stored=False,
        )
    data, more = store.page(kind, limit, p.get("starting_after"), keep)
    return {"object": "list", "data": data, "has_more": more, "url": url}


def list_subscriptions(store: Store, p: Params, _a: list[str], _c: Ctx) -> dict[str, Any]:
    status = one_of(
        p, "status", ("all", "ended", "canceled", "incomplete_expired", *ACTIVE_STATUSES)
    )
    statuses = {
        "all": None,
        "ended": ("canceled", "incomplete_expired"),
        None: ACTIVE_STATUSES,
    }.get(status, (status,))
    customer, price, expand = p.get("customer"), p.get("price"), _expand(p)
    page = listing(
        store,
        "subscription",
        p,
        "/v1/subscriptions",
        lambda sub: (
            (statuses is None or sub["status"] in statuses)
            and (customer is None or sub["customer"] == customer)
            and (price is None or any(i["price"]["id"] == price for i in sub["items"]["data"]))
        ),
    )
    page["data"] = [store.render_subscription(sub, expand) for sub in page["data"]]
    return page


def create_customer(store: Store, p: Params, _a: list[str], ctx: Ctx) -> dict[str, Any]:
    obj = store.add(
        "customer",
        o.customer(
            o.new_id("cus"),
            store.now(),
            email=p.get("email"),
            name=p.get("name"),
            metadata=p.get("metadata") or {},
        ),
    )
    store.emit("customer.created", obj, ctx=ctx)
    return obj


def update_customer(store: Store, p: Params, args: list[str], ctx: Ctx) -> dict[str, Any]:
    with store.lock:
        obj = store.get("customer", args[0])
        if obj.get("deleted"):
            raise no_such("customer", args[0], "id")
        previous = {k: obj[k] for k in ("email", "name") if p.get(k) is not None}
        for key in ("email", "name"):
            if p.get(key) is not None:
                obj[key] = p.get(key)
        if p.get("metadata") is not None:
            obj["metadata"] = {**obj.get("metadata", {}), **p.get("metadata")}
        store.emit("customer.updated", obj, previous=previous, ctx=ctx)
        return obj


def create_coupon(store: Store, p: Params, _a: list[str], ctx: Ctx) -> dict[str, Any]:
    duration = one_of(p, "duration", ("once", "repeating", "forever")) or "once"
    months = integer(p, "duration_in_months")
    if duration == "repeating" and months is None:
        raise missing("duration_in_months")
    percent = p.get("percent_off")
    amount = integer(p, "amount_off")
    if (percent is None) == (amount is None):
        raise invalid("percent_off", "You must pass exactly one of percent_off or amount_off.")
    if amount is not None and not p.get("currency"):
        raise missing("currency")
    if percent is not None and not 0 < float(percent) <= 100:
        raise invalid("percent_off", "percent_off must be between 0 and 100.")
    obj = store.add(
        "coupon",
        o.coupon(
            p.get("id") or o.new_id("co")[:12],
            store.now(),
            percent_off=float(percent) if percent is not None else None,
            amount_off=amount,
            currency=p.get("currency"),
            duration=duration,
            duration_in_months=months,
            name=p.get("name"),
        ),
    )
    obj["metadata"] = p.get("metadata") or {}
    store.emit("coupon.created", obj, ctx=ctx)
    return obj


def _get(kind: str) -> Callable[[Store, Params, list[str], Ctx], dict[str, Any]]:
    return lambda store, _p, args, _c: store.get(kind, args[0])


def _sub(action: str) -> Callable[[Store, Params, list[str], Ctx], dict[str, Any]]:
    def run(store: Store, p: Params, args: list[str], ctx: Ctx) -> dict[str, Any]:
        expand = _expand(p)
        sub = getattr(store, f"{action}_subscription")(args[0], p, ctx)
        return store.render_subscription(sub, expand)

    return run


ID = "([^/]+)"
ROUTES: list[
    tuple[str, str, dict[str, Any], Callable[[Store, Params, list[str], Ctx], dict[str, Any]]]
] = [
    ("GET", f"/v1/customers/{ID}", {"expand": [None]}, _get("customer")),
    ("DELETE", f"/v1/customers/{ID}", {}, lambda st, _p, a, c: st.delete_customer(a[0], c)),
    (
        "POST",
        f"/v1/customers/{ID}",
        {"email": None, "name": None, "metadata": {"*": None}, "expand": [None]},
        update_customer,
    ),
    (
        "GET",
        "/v1/customers",
        {**LIST, "email": None},
        lambda st, p, _a, _c: listing(
            st,
            "customer",
            p,
            "/v1/customers",
            lambda c: not c.get("deleted") and p.get("email") in (None, c["email"]),
        ),
    ),
    (
        "POST",
        "/v1/customers",
        {"email": None, "name": None, "metadata": {"*": None}, "expand": [None]},
        create_customer,
    ),
    (
        "GET",
        f"/v1/subscriptions/{ID}",
        {"expand": [None]},
        lambda st, p, a, _c: st.render_subscription(st.get("subscription", a[0]), _expand(p)),
    ),
    (
        "GET",
        "/v1/subscriptions",
        {**LIST, "status": None, "customer": None, "price": None},
        list_subscriptions,
    ),
    (
        "POST",
        f"/v1/subscriptions/{ID}",
        {
            "discounts": DISCOUNTS,
            "items": ITEMS,
            "proration_behavior": None,
            "proration_date": None,
            "pause_collection": {"behavior": None, "resumes_at": None},
            "trial_end": None,
            "cancel_at_period_end": None,
            "metadata": {"*": None},
            "expand": [None],
            "cancellation_details": {"comment": None, "feedback": None},
        },
        _sub("update"),
    ),
    (
        "DELETE",
        f"/v1/subscriptions/{ID}",
        {
            "invoice_now": None,
            "prorate": None,
            "expand": [None],
            "cancellation_details": {"comment": None, "feedback": None},
        },
        _sub("cancel"),
    ),
    (
        "POST",
        f"/v1/subscriptions/{ID}/pause",
        {"invoicing_behavior": None, "type": None, "expand": [None]},
        _sub("pause"),
    ),
    (
        "POST",
        f"/v1/subscriptions/{ID}/resume",
        {"billing_cycle_anchor": {"type": None}, "proration_behavior": None, "expand": [None]},
        _sub("resume"),
    ),
    ("GET", f"/v1/prices/{ID}", {"expand": [None]}, _get("price")),
    (
        "GET",
        "/v1/prices",
        {**LIST, "active": None, "product": None},
        lambda st, p, _a, _c: listing(
            st,
            "price",
            p,
            "/v1/prices",
            lambda x: (
                p.get("product") in (None, x["product"])
                and p.get("active") in (None, "true" if x["active"] else "false")
            ),
        ),
    ),
    ("GET", f"/v1/products/{ID}", {"expand": [None]}, _get("product")),
    ("GET", f"/v1/coupons/{ID}", {"expand": [None]}, _get("coupon")),
    ("GET", "/v1/coupons", LIST, lambda st, p, _a, _c: listing(st, "coupon", p, "/v1/coupons")),
    (
        "POST",
        "/v1/coupons",
        {
            "id": None,
            "percent_off": None,
            "amount_off": None,
            "currency": None,
            "duration": None,
            "duration_in_months": None,
            "name": None,
            "metadata": {"*": None},
            "expand": [None],
        },
        create_coupon,
    ),
    (
        "POST",
        "/v1/invoices/create_preview",
        {
            "customer": None,
            "subscription": None,
            "discounts": DISCOUNTS,
            "expand": [None],
            "subscription_details": {
                "items": ITEMS,
                "proration_behavior": None,
                "proration_date": None,
            },
        },
        lambda st, p, _a, _c: create_preview(st, p),
    ),
]
