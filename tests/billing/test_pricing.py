"""What a subscription costs and when it next charges (pure), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offerd.billing.actions import Coupon, Plan, SubscriptionState
from offerd.billing.pricing import Summary, discounted, summarize
from offerd.common.money import money

pytestmark = pytest.mark.unit


def pct(value: float, id: str = "P") -> Coupon:
    return Coupon(id, f"{value}% off", "percentage", value, None)


def fixed(amount: int, id: str = "F") -> Coupon:
    return Coupon(id, f"{amount} off", "fixed_amount", None, amount)


@pytest.mark.parametrize(
    ("amount", "coupons", "expected"),
    [
        # no coupon: the list price
        (1500, [], 1500),
        # 20% of 1500 is exactly 300
        (1500, [pct(20)], 1200),
        # 10% of 25 is 2.5: half-up makes the discount 3 (banker's rounding would say 2)
        (25, [pct(10)], 22),
        # 50% of 5 is 2.5: half-up again, discount 3
        (5, [pct(50)], 2),
        # 33.33% of 1000 is 333.3: rounds down to 333
        (1000, [pct(33.33)], 667),
        # 17.5% of 1010 is 176.75: rounds up to 177 (the percentage is taken as a decimal)
        (1010, [pct(17.5)], 833),
        # 0.1% of 4 is 0.004: rounds to no discount at all
        (4, [pct(0.1)], 4),
        # two percentages compound: 1000 - 10% = 900, then 900 - 10% = 810 (not 800)
        (1000, [pct(10, "A"), pct(10, "B")], 810),
        # fixed amounts come after percentages whatever the order given:
        # (1500 - 20%) - 500 = 700, where fixed-first would give (1500 - 500) - 20% = 800
        (1500, [fixed(500), pct(20)], 700),
        # several fixed amounts add up
        (1500, [fixed(200, "A"), fixed(300, "B")], 1000),
        # a fixed amount larger than the price stops at zero
        (1500, [fixed(2000)], 0),
        # ... also after a percentage
        (1000, [pct(50), fixed(600)], 0),
        # 100% off is free
        (4900, [pct(100)], 0),
        # nothing to discount
        (0, [pct(20), fixed(100)], 0),
        # a percentage coupon without its percentage discounts nothing
        (1500, [Coupon("X", "broken", "percentage", None, None)], 1500),
        # a fixed coupon without its amount discounts nothing
        (1500, [Coupon("Y", "broken", "fixed_amount", None, None)], 1500),
    ],
)
def test_discounted(amount: int, coupons: list[Coupon], expected: int) -> None:
    assert discounted(amount, coupons) == expected


NOW = datetime(2026, 3, 10, tzinfo=UTC)
DAY = timedelta(days=1)
PLANS = {
    "basic": Plan("basic", "Basic", 1500, "USD", "month"),
    "yen": Plan("yen", "Yen plan", 1000, "JPY", "month"),
}
COUPONS = {"SAVE20": pct(20, "SAVE20"), "TEN": fixed(1000, "TEN")}
TRIAL_END = NOW + 5 * DAY
TERM_END = NOW + 20 * DAY
PAUSE_UNTIL = NOW + 60 * DAY


def state(status: str, **fields: object) -> SubscriptionState:
    values: dict[str, object] = {
        "status": status,
        "plan_id": "basic",
        "trial_end": TRIAL_END,
        "current_term_end": TERM_END,
        "pause_until": PAUSE_UNTIL,
        "cancel_at": TERM_END,
        "cancelled_at": NOW,
    }
    values.update(fields)
    return SubscriptionState(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "next_at"),
    [
        # a trial first charges when it ends
        ("in_trial", TRIAL_END),
        # an active subscription charges at its term's end
        ("active", TERM_END),
        # a paused one charges again when the pause is over
        ("paused", PAUSE_UNTIL),
        # a non_renewing one ends at cancel_at: no next charge
        ("non_renewing", None),
        # a cancelled one never charges again
        ("cancelled", None),
    ],
)
def test_next_charge_date_per_status(status: str, next_at: datetime | None) -> None:
    # every date is set on the state, so only the status can pick one
    summary = summarize(state(status, coupon_ids=("SAVE20",)), PLANS, COUPONS)
    assert summary.next_charge_at == next_at
    # with a date there is an amount (1500 - 20%), without one there is none
    assert summary.next_charge == (1200 if next_at else None)


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        # the list price is per seat: 3 x 1500; SAVE20 then takes 900 off
        (
            state("active", quantity=3, coupon_ids=("SAVE20",)),
            Summary("active", "Basic", 3, 4500, "USD", ("20% off",), 3600, TERM_END),
        ),
        # coupons are listed by name in the order applied; percentage first, then $10
        (
            state("active", coupon_ids=("TEN", "SAVE20")),
            Summary("active", "Basic", 1, 1500, "USD", ("1000 off", "20% off"), 200, TERM_END),
        ),
        # a coupon the catalog no longer has is skipped, not an error
        (
            state("active", coupon_ids=("GONE",)),
            Summary("active", "Basic", 1, 1500, "USD", (), 1500, TERM_END),
        ),
        # an unknown plan shows its id, costs nothing and defaults to USD
        (
            state("active", plan_id="legacy"),
            Summary("active", "legacy", 1, 0, "USD", (), 0, TERM_END),
        ),
        # the plan's currency carries over
        (
            state("in_trial", plan_id="yen"),
            Summary("in_trial", "Yen plan", 1, 1000, "JPY", (), 1000, TRIAL_END),
        ),
        # active without a known term end: no next charge
        (
            state("active", current_term_end=None),
            Summary("active", "Basic", 1, 1500, "USD", (), None, None),
        ),
    ],
)
def test_summarize(sub: SubscriptionState, expected: Summary) -> None:
    assert summarize(sub, PLANS, COUPONS) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        # minor units to major with two decimals
        (4900, "USD", "$49.00"),
        # cents keep their leading zero
        (5, "USD", "$0.05"),
        # zero is shown, not blank
        (0, "EUR", "€0.00"),
        # pounds
        (1999, "GBP", "£19.99"),
        # rupees, with thousands separators
        (150000, "INR", "₹1,500.00"),
        # thousands separators
        (123456789, "USD", "$1,234,567.89"),
        # yen have no minor unit: 1500 is ¥1,500
        (1500, "JPY", "¥1,500"),
        # a zero-decimal currency without a symbol puts the code after
        (1000, "KRW", "1,000 KRW"),
        # an unknown symbol puts the code after
        (4900, "CHF", "49.00 CHF"),
        # integer money stays exact to the cent at any size the ledger accepts: the largest
        # price the admin API takes ($9,999,999,999.99) for 9,007 seats ends in 93 cents
        (999_999_999_999 * 9_007, "USD", "$90,069,999,999,909.93"),
    ],
)
def test_money(amount: int, currency: str, expected: str) -> None:
    assert money(amount, currency) == expected
