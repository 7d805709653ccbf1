"""The built-in billing ledger's records, as the admin API takes them. Money is integer minor units."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from offerd.common.timestamps import UnixSeconds

Name = Annotated[str, StringConstraints(min_length=1, max_length=150)]
Id50 = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
SubscriptionStatus = Literal["in_trial", "active", "non_renewing", "paused", "cancelled"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanIn(_In):
    name: Name
    price: int = Field(ge=0, le=10**12, description="per period, in minor units (cents)")
    currency: Currency
    period_unit: Literal["month", "year"]


class CouponIn(_In):
    name: Name
    discount_type: Literal["percentage", "fixed_amount"]
    discount_percentage: float | None = Field(
        default=None, ge=0.01, le=100, description="0.01 to 100, at most 2 decimals"
    )
    discount_amount: int | None = Field(default=None, gt=0, le=10**12)
    currency: Currency | None = None
    duration_type: Literal["one_time", "forever", "limited_period"]
    duration_months: int | None = Field(default=None, ge=1, le=120)

    @field_validator("discount_percentage")
    @classmethod
    def _two_decimals(cls, value: float | None) -> float | None:
        # stored as numeric(5, 2): a third decimal would be rounded away without a word
        exponent = Decimal(repr(value)).as_tuple().exponent if value is not None else 0
        if isinstance(exponent, int) and exponent < -2:
            raise ValueError("can have at most 2 decimals")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CouponIn:
        if self.discount_type == "percentage" and self.discount_percentage is None:
            raise ValueError("a percentage coupon needs discount_percentage")
        if self.discount_type == "percentage" and self.discount_amount is not None:
            raise ValueError("a percentage coupon takes no discount_amount")
        if self.discount_type == "fixed_amount" and self.discount_amount is None:
            raise ValueError("a fixed_amount coupon needs discount_amount")
        if self.discount_type == "fixed_amount" and self.discount_percentage is not None:
            raise ValueError("a fixed_amount coupon takes no discount_percentage")
        if (self.duration_type == "limited_period") != (self.duration_months is not None):
            raise ValueError("duration_months goes with, and only with, limited_period")
        return self


class CustomerIn(_In):
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    first_name: Annotated[str, StringConstraints(max_length=150)] | None = None
    last_name: Annotated[str, StringConstraints(max_length=150)] | None = None
    business_entity_id: Annotated[str, StringConstraints(max_length=50)] | None = None


class SubscriptionIn(_In):
    customer_id: Id50
    plan_id: Id50
    quantity: int = Field(default=1, ge=1, le=100_000)
    status: SubscriptionStatus
    coupon_ids: list[Id50] = Field(default_factory=list, max_length=20)
    trial_end: UnixSeconds | None = Field(default=None, description="Unix seconds")
    current_term_start: UnixSeconds | None = Field(default=None, description="Unix seconds")
    current_term_end: UnixSeconds | None = Field(default=None, description="Unix seconds")
    pause_until: UnixSeconds | None = Field(default=None, description="Unix seconds")
    cancel_at: UnixSeconds | None = Field(default=None, description="Unix seconds")
    business_entity_id: Annotated[str, StringConstraints(max_length=50)] | None = None
    brand_id: Annotated[str, StringConstraints(max_length=50)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionIn:
        if self.status == "in_trial" and self.trial_end is None:
            raise ValueError("an in_trial subscription needs trial_end")
        if (
            self.status == "non_renewing"
            and self.cancel_at is None
            and self.current_term_end is None
        ):
            raise ValueError("a non_renewing subscription needs cancel_at or current_term_end")
        if len(set(self.coupon_ids)) != len(self.coupon_ids):
            raise ValueError("coupon_ids must not repeat")
        return self
