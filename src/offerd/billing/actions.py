"""The eight billing actions an offer option can take, as pure functions of subscription state.

``apply_action(state, action, now=..., plans=..., coupons=...)`` returns the new state or raises
``ActionError`` with a message for developers ("extend_trial needs an in_trial subscription").
No I/O: the ledger provider reads the state, calls this, and writes the result.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

Id50 = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Status = Literal["in_trial", "active", "non_renewing", "paused", "cancelled"]
PeriodUnit = Literal["day", "week", "month", "year"]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApplyCoupon(_Action):
    type: Literal["apply_coupon"]
    coupon_id: Id50


class ChangePlan(_Action):
    type: Literal["change_plan"]
    plan_id: Id50
    quantity: int | None = Field(default=None, ge=1, le=100_000)


class PauseSubscription(_Action):
    type: Literal["pause_subscription"]
    pause_months: int = Field(ge=1, le=12)


class ResumeSubscription(_Action):
    type: Literal["resume_subscription"]


class ExtendTrial(_Action):
    type: Literal["extend_trial"]
    days: int = Field(ge=1, le=365)


class ConvertTrial(_Action):
    type: Literal["convert_trial"]
    plan_id: Id50 | None = None
    coupon_id: Id50 | None = None


class CancelSubscription(_Action):
    type: Literal["cancel_subscription"]
    end_of_term: bool = True


class RemoveScheduledCancellation(_Action):
    type: Literal["remove_scheduled_cancellation"]


BillingAction = Annotated[
    ApplyCoupon
    | ChangePlan
    | PauseSubscription
    | ResumeSubscription
    | ExtendTrial
    | ConvertTrial
    | CancelSubscription
    | RemoveScheduledCancellation,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(BillingAction)


def parse_action(raw: Mapping[str, Any]) -> BillingAction:
    action: BillingAction = _ADAPTER.validate_python(raw)
    return action


class ActionError(Exception):
    """The action cannot apply to this subscription (a domain error, not a failure to retry)."""


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    price: int
    currency: str
    period_unit: PeriodUnit
    period: int = 1  # every ``period`` units (a quarterly plan: 3 months)


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    name: str
    discount_type: Literal["percentage", "fixed_amount"]
    discount_percentage: float | None
    discount_amount: int | None


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    status: Status
    plan_id: str
    quantity: int = 1
    coupon_ids: tuple[str, ...] = ()
    trial_end: datetime | None = None
    current_term_start: datetime | None = None
    current_term_end: datetime | None = None
    pause_until: datetime | None = None
    cancel_at: datetime | None = None
    cancelled_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = int(value.timestamp())
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def add_months(at: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day (Jan 31 + 1 = Feb 28/29)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def add_period(at: datetime, unit: PeriodUnit, count: int = 1) -> datetime:
    if unit == "day":
        return at + timedelta(days=count)
    if unit == "week":
        return at + timedelta(weeks=count)
    return add_months(at, (12 if unit == "year" else 1) * count)


def _require(state: SubscriptionState, action: str, allowed: tuple[Status, ...]) -> None:
    if state.status not in allowed:
        wanted = " or ".join(allowed)
        article = "an" if wanted[0] in "aeiou" else "a"
        raise ActionError(
            f"{action} needs {article} {wanted} subscription; this one is {state.status}"
        )


def _coupon(coupons: Mapping[str, Coupon], coupon_id: str, action: str) -> Coupon:
    if coupon_id not in coupons:
        raise ActionError(f"{action}: coupon {coupon_id!r} does not exist")
    return coupons[coupon_id]


def _plan(plans: Mapping[str, Plan], plan_id: str, action: str) -> Plan:
    if plan_id not in plans:
        raise ActionError(f"{action}: plan {plan_id!r} does not exist")
    return plans[plan_id]


def _date(action: str, compute: Callable[[], datetime]) -> datetime:
    """A date an action computes; one past what a datetime holds (the year 9999: a trial already
    ending in December 9999, extended) is the action's error, not a crash retried for hours."""
    try:
        return compute()
    except (OverflowError, ValueError):
        raise ActionError(f"{action}: the new date would be after the year 9999") from None


LIVE: tuple[Status, ...] = ("in_trial", "active", "non_renewing")


def apply_action(
    state: SubscriptionState,
    action: BillingAction,
    *,
    now: datetime,
    plans: Mapping[str, Plan],
    coupons: Mapping[str, Coupon],
) -> SubscriptionState:
    match action:
        case ApplyCoupon(coupon_id=coupon_id):
            _require(state, "apply_coupon", LIVE)
            _coupon(coupons, coupon_id, "apply_coupon")
            if coupon_id in state.coupon_ids:
                raise ActionError(f"apply_coupon: coupon {coupon_id!r} is already applied")
            return replace(state, coupon_ids=(*state.coupon_ids, coupon_id))

        case ChangePlan(plan_id=plan_id, quantity=quantity):
            _require(state, "change_plan", LIVE)
            _plan(plans, plan_id, "change_plan")
            new_quantity = quantity or state.quantity
            if plan_id == state.plan_id and new_quantity == state.quantity:
                raise ActionError(
                    f"change_plan: the subscription is already on {plan_id!r} x{new_quantity}"
                )
            return replace(state, plan_id=plan_id, quantity=new_quantity)

        case PauseSubscription(pause_months=months):
            _require(state, "pause_subscription", ("active",))
            until = _date("pause_subscription", lambda: add_months(now, months))
            return replace(state, status="paused", pause_until=until)

        case ResumeSubscription():
            _require(state, "resume_subscription", ("paused",))
            return replace(state, status="active", pause_until=None)

        case ExtendTrial(days=days):
            _require(state, "extend_trial", ("in_trial",))
            base = state.trial_end if state.trial_end and state.trial_end > now else now
            trial_end = _date("extend_trial", lambda: base + timedelta(days=days))
            return replace(state, trial_end=trial_end)

        case ConvertTrial(plan_id=plan_id, coupon_id=coupon_id):
            _require(state, "convert_trial", ("in_trial",))
            plan = _plan(plans, plan_id or state.plan_id, "convert_trial")
            coupon_ids = state.coupon_ids
            if coupon_id is not None:
                _coupon(coupons, coupon_id, "convert_trial")
                if coupon_id not in coupon_ids:
                    coupon_ids = (*coupon_ids, coupon_id)
            return replace(
                state,
                status="active",
                plan_id=plan.id,
                coupon_ids=coupon_ids,
                trial_end=None,
                current_term_start=now,
                current_term_end=_date(
                    "convert_trial", lambda: add_period(now, plan.period_unit, plan.period)
                ),
            )

        case CancelSubscription(end_of_term=True):
            _require(state, "cancel_subscription (end of term)", ("in_trial", "active"))
            term_end = state.trial_end if state.status == "in_trial" else state.current_term_end
            if term_end is None:
                raise ActionError(
                    "cancel_subscription (end of term): the subscription has no term end"
                )
            return replace(state, status="non_renewing", cancel_at=term_end)

        case CancelSubscription(end_of_term=False):
            _require(state, "cancel_subscription", ("in_trial", "active", "non_renewing", "paused"))
            return replace(
                state, status="cancelled", cancelled_at=now, cancel_at=None, pause_until=None
            )

        case RemoveScheduledCancellation():
            _require(state, "remove_scheduled_cancellation", ("non_renewing",))
            return replace(state, status="active", cancel_at=None)

    raise ActionError(f"unknown billing action {action!r}")  # pragma: no cover
