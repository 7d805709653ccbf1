"""What a provider's object becomes in the mirror, and what a provider offers the mirror."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from offerd.billing.actions import PeriodUnit, SubscriptionState

Kind = Literal["plan", "coupon", "customer", "subscription"]
# The import's order: a subscription's customer and plan exist before it is written.
KINDS: tuple[Kind, ...] = ("plan", "coupon", "customer", "subscription")
TABLES: dict[Kind, str] = {
    "plan": "plans",
    "coupon": "coupons",
    "customer": "customers",
    "subscription": "subscriptions",
}


@dataclass(frozen=True, slots=True)
class MirroredPlan:
    id: str
    name: str
    price: int  # minor units, per ``period`` ``period_unit``s
    currency: str
    period_unit: PeriodUnit
    period: int = 1


@dataclass(frozen=True, slots=True)
class MirroredCoupon:
    id: str
    name: str
    discount_type: Literal["percentage", "fixed_amount"]
    discount_percentage: float | None
    discount_amount: int | None
    currency: str | None
    duration_type: Literal["one_time", "forever", "limited_period"]
    duration_months: int | None


@dataclass(frozen=True, slots=True)
class MirroredCustomer:
    id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    business_entity_id: str | None = None


@dataclass(frozen=True, slots=True)
class MirroredSubscription:
    id: str
    customer_id: str
    state: SubscriptionState
    business_entity_id: str | None = None


Row = MirroredPlan | MirroredCoupon | MirroredCustomer | MirroredSubscription


@dataclass(frozen=True, slots=True)
class Gone:
    """The provider no longer has the object (deleted): the mirror drops it."""

    kind: Kind
    id: str


@dataclass(frozen=True, slots=True)
class Unmirrorable:
    """An object offerd has no equivalent for (a one-off price, a subscription of several items
    or still ``incomplete``): left out of the mirror, and counted, with the reason."""

    kind: Kind
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    next_cursor: str | None  # None: this was the last page
    skipped: list[Unmirrorable] = field(default_factory=list)


def kind_of(row: Row) -> Kind:
    match row:
        case MirroredPlan():
            return "plan"
        case MirroredCoupon():
            return "coupon"
        case MirroredCustomer():
            return "customer"
        case MirroredSubscription():
            return "subscription"


class MirrorSource(Protocol):
    """One provider's reads for the mirror, through its official SDK. Errors are the provider
    seam's (``billing.provider``): transient ones are retried by the caller."""

    name: str

    async def page(self, kind: Kind, cursor: str | None, limit: int) -> Page: ...

    async def fetch(self, kind: Kind, oid: str) -> Row | Gone | Unmirrorable: ...
