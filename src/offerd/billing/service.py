"""The built-in billing ledger's records (plans, coupons, customers, subscriptions) for the admin
API, the command line and the other slices. Subscriptions change through ``ledger``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import DictRow

from offerd.billing import ledger, mirror_store, pricing, store
from offerd.billing.catalog import catalog_of
from offerd.billing.chargebee.provider import UNSUPPORTED as CHARGEBEE_UNSUPPORTED
from offerd.billing.mirror.objects import Kind
from offerd.billing.models import CouponIn, CustomerIn, PlanIn, SubscriptionIn
from offerd.billing.views import coupon_resource, customer_resource, subscription_resource
from offerd.db import Conn
from offerd.edge.errors import NotFound, ParamWrongValue

Table = Literal["plans", "coupons", "customers", "subscriptions"]

_TIMES = ("trial_end", "current_term_start", "current_term_end", "pause_until", "cancel_at")


async def save_plan(conn: Conn, site_id: str, plan_id: str, plan: PlanIn, now: datetime) -> DictRow:
    values = {"site": site_id, "id": plan_id, "now": now, **plan.model_dump()}
    return await store.upsert(conn, store.UPSERT_PLAN, values)


async def save_coupon(
    conn: Conn, site_id: str, coupon_id: str, coupon: CouponIn, now: datetime
) -> DictRow:
    values = {"site": site_id, "id": coupon_id, "now": now, **coupon.model_dump()}
    return await store.upsert(conn, store.UPSERT_COUPON, values)


async def save_customer(
    conn: Conn, site_id: str, customer_id: str, customer: CustomerIn, now: datetime
) -> DictRow:
    values = {"site": site_id, "id": customer_id, "now": now, **customer.model_dump()}
    return await store.upsert(conn, store.UPSERT_CUSTOMER, values)


async def save_subscription(
    conn: Conn, site_id: str, subscription_id: str, sub: SubscriptionIn, now: datetime
) -> DictRow:
    """Its coupons, customer and plan must exist (404 naming the parameter otherwise)."""
    missing = await store.missing_coupons(conn, site_id, sub.coupon_ids)
    if missing:
        index = sub.coupon_ids.index(missing[0])
        raise NotFound(f"Coupon {missing[0]!r} not found", param=f"coupon_ids[{index}]")
    values = sub.model_dump()
    for key in _TIMES:
        values[key] = store.at(values[key])
    try:
        return await store.upsert(
            conn,
            store.UPSERT_SUBSCRIPTION,
            {"site": site_id, "id": subscription_id, "now": now, **values},
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        param = "customer_id" if "customer" in str(exc.diag.constraint_name) else "plan_id"
        raise NotFound(
            f"{param[:-3].capitalize()} {values[param]!r} not found", param=param
        ) from None


async def get(conn: Conn, table: Table, site_id: str, record_id: str) -> DictRow | None:
    return await store.get(conn, table, site_id, record_id)


async def list_all(conn: Conn, table: Table, site_id: str) -> list[DictRow]:
    return await store.list_all(conn, table, site_id)


async def subscription_detail(
    conn: Conn, site_id: str, subscription_id: str
) -> dict[str, Any] | None:
    """The subscription with its coupons and the log of every change offers made to it."""
    row = await store.get(conn, "subscriptions", site_id, subscription_id)
    if row is None:
        return None
    coupons = await store.coupons(conn, site_id, list(row["coupon_ids"]))
    changes = await ledger.history(conn, site_id, subscription_id)
    body = subscription_resource(row)
    body["coupons"] = [coupon_resource(c) for c in coupons]
    body["changes"] = changes
    return body


async def customer_view(conn: Conn, site_id: str, customer_id: str) -> dict[str, Any] | None:
    """The customer as the admin API shows it, for what other slices send about it."""
    row = await store.get(conn, "customers", site_id, customer_id)
    return customer_resource(row) if row is not None else None


async def subscription_view(
    conn: Conn, site_id: str, subscription_id: str
) -> dict[str, Any] | None:
    """The subscription as the admin API shows it, for what other slices send about it."""
    row = await store.get(conn, "subscriptions", site_id, subscription_id)
    return subscription_resource(row) if row is not None else None


# --- what an offer asks of a remote provider, checked when it is saved -------------------------


def unsupported_actions(provider_type: str) -> dict[str, str]:
    """The billing actions a provider cannot do, with why (none for the ledger and Stripe)."""
    return dict(CHARGEBEE_UNSUPPORTED) if provider_type == "chargebee" else {}


def check_actions(provider_type: str, actions: Sequence[tuple[str, str]]) -> None:
    """Each (param, action type) must be one the provider can do: a 400 naming the param."""
    unsupported = unsupported_actions(provider_type)
    for param, action_type in actions:
        if action_type in unsupported:
            raise ParamWrongValue(param, unsupported[action_type])


async def missing_in_mirror(
    conn: Conn, site_id: str, references: Sequence[tuple[str, Kind, str]]
) -> list[tuple[str, Kind, str]]:
    """The (param, kind, id) references the site's mirror does not have."""
    return [r for r in references if not await mirror_store.exists(conn, site_id, r[1], r[2])]


async def mirror_synced(conn: Conn, site_id: str) -> bool:
    """Whether the site's mirror has completed an import (its ids can be checked)."""
    row = await mirror_store.get_sync(conn, site_id)
    return row is not None and row["last_synced_at"] is not None


async def monthly_revenue(
    conn: Conn, site_id: str, subscription_ids: Sequence[str]
) -> dict[str, tuple[str, int]]:
    """Each subscription's monthly recurring revenue as it bills now: plan price x quantity
    less its coupons, per month (minor units), with its currency. Missing ones are left out."""
    out: dict[str, tuple[str, int]] = {}
    for row in await store.billing_of(conn, site_id, list(subscription_ids)):
        _, coupons = catalog_of([], row["coupons"])
        billed = pricing.discounted(row["price"] * row["quantity"], list(coupons.values()))
        out[row["id"]] = (
            row["currency"],
            pricing.monthly(billed, row["period_unit"], row["period"]),
        )
    return out
