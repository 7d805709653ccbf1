"""What an action reads of the catalog (pure): the plans and coupons a subscription and an
action name, and the catalog rows (the ledger's, or the mirror's) as the actions' records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from offerd.billing.actions import BillingAction, Coupon, Plan, SubscriptionState


def referenced(state: SubscriptionState, action: BillingAction) -> tuple[set[str], set[str]]:
    plans = {state.plan_id}
    coupons = set(state.coupon_ids)
    if (plan := getattr(action, "plan_id", None)) is not None:
        plans.add(plan)
    if (coupon := getattr(action, "coupon_id", None)) is not None:
        coupons.add(coupon)
    return plans, coupons


def catalog_of(
    plan_rows: Sequence[Mapping[str, Any]], coupon_rows: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Plan], dict[str, Coupon]]:
    plans = {
        r["id"]: Plan(r["id"], r["name"], r["price"], r["currency"], r["period_unit"], r["period"])
        for r in plan_rows
    }
    coupons = {
        r["id"]: Coupon(
            r["id"],
            r["name"],
            r["discount_type"],
            float(r["discount_percentage"]) if r["discount_percentage"] is not None else None,
            r["discount_amount"],
        )
        for r in coupon_rows
    }
    return plans, coupons
