"""What a subscription costs and when it next charges, before and after an action (pure).
Money is integer minor units throughout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from offerd.billing.actions import Coupon, Plan, SubscriptionState


@dataclass(frozen=True, slots=True)
class Summary:
    status: str
    plan_name: str
    quantity: int
    list_price: int
    currency: str
    coupons: tuple[str, ...]
    next_charge: int | None
    next_charge_at: datetime | None
    period_unit: str = "month"


def discounted(amount: int, coupons: list[Coupon]) -> int:
    """Percentages first, then fixed amounts; never below zero."""
    total = Decimal(amount)
    for c in coupons:
        if c.discount_type == "percentage" and c.discount_percentage is not None:
            total -= (total * Decimal(str(c.discount_percentage)) / 100).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
    for c in coupons:
        if c.discount_type == "fixed_amount" and c.discount_amount is not None:
            total -= c.discount_amount
    return max(0, int(total))


def summarize(
    state: SubscriptionState, plans: Mapping[str, Plan], coupons: Mapping[str, Coupon]
) -> Summary:
    plan = plans.get(state.plan_id)
    price = (plan.price if plan else 0) * state.quantity
    applied = [coupons[c] for c in state.coupon_ids if c in coupons]
    next_at: datetime | None = {
        "in_trial": state.trial_end,
        "active": state.current_term_end,
        "paused": state.pause_until,
    }.get(state.status)
    return Summary(
        status=state.status,
        plan_name=plan.name if plan else state.plan_id,
        quantity=state.quantity,
        list_price=price,
        currency=plan.currency if plan else "USD",
        period_unit=plan.period_unit if plan else "month",
        coupons=tuple(c.name for c in applied),
        next_charge=discounted(price, applied) if next_at is not None else None,
        next_charge_at=next_at,
    )


# a unit's length in months, for the monthly recurring revenue of any billing period
_MONTHS = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def monthly(amount: int, period_unit: str, period: int = 1) -> int:
    """What ``amount`` billed every ``period`` ``period_unit``s is per month (minor units)."""
    return round(amount / (_MONTHS[period_unit] * period))
