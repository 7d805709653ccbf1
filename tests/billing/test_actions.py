"""The eight billing actions as pure functions of subscription state, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from offerd.billing.actions import (
    ActionError,
    Coupon,
    Plan,
    Status,
    SubscriptionState,
    add_months,
    add_period,
    apply_action,
    parse_action,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
DAY = timedelta(days=1)

PLANS = {
    "basic": Plan("basic", "Basic", 1500, "USD", "month"),
    "pro": Plan("pro", "Pro", 4900, "USD", "month"),
    "annual": Plan("annual", "Annual", 15000, "USD", "year"),
}
COUPONS = {
    "SAVE20": Coupon("SAVE20", "20% off", "percentage", 20.0, None),
    "TEN": Coupon("TEN", "$10 off", "fixed_amount", None, 1000),
}

# One subscription per status, shaped the way such a subscription looks in the ledger; every
# allowed action succeeds on these, so a refusal can only come from the status.
STATES: dict[str, SubscriptionState] = {
    "in_trial": SubscriptionState(
        status="in_trial",
        plan_id="basic",
        trial_end=NOW + 5 * DAY,
        current_term_end=NOW + 40 * DAY,
    ),
    "active": SubscriptionState(
        status="active",
        plan_id="basic",
        quantity=3,
        current_term_start=NOW - 10 * DAY,
        current_term_end=NOW + 20 * DAY,
    ),
    "non_renewing": SubscriptionState(
        status="non_renewing",
        plan_id="basic",
        current_term_start=NOW - 10 * DAY,
        current_term_end=NOW + 20 * DAY,
        cancel_at=NOW + 20 * DAY,
    ),
    "paused": SubscriptionState(
        status="paused",
        plan_id="basic",
        current_term_end=NOW + 20 * DAY,
        pause_until=NOW + 30 * DAY,
    ),
    "cancelled": SubscriptionState(
        status="cancelled",
        plan_id="basic",
        current_term_end=NOW - 1 * DAY,
        cancelled_at=NOW - 1 * DAY,
    ),
}
ALL_STATUSES: tuple[Status, ...] = ("in_trial", "active", "non_renewing", "paused", "cancelled")


def apply(state: SubscriptionState, raw: dict[str, Any], now: datetime = NOW) -> SubscriptionState:
    return apply_action(state, parse_action(raw), now=now, plans=PLANS, coupons=COUPONS)


# --- preconditions: every action against every status ------------------------------------------

PRECONDITIONS: list[tuple[dict[str, Any], str, tuple[Status, ...]]] = [
    # a coupon discounts future charges: anything still going to renew or in a trial
    (
        {"type": "apply_coupon", "coupon_id": "SAVE20"},
        "apply_coupon",
        ("in_trial", "active", "non_renewing"),
    ),
    # a plan change needs a live subscription; a paused or cancelled one has no charges to change
    (
        {"type": "change_plan", "plan_id": "pro"},
        "change_plan",
        ("in_trial", "active", "non_renewing"),
    ),
    # only a paying, renewing subscription can be paused
    ({"type": "pause_subscription", "pause_months": 1}, "pause_subscription", ("active",)),
    # only what is paused can resume
    ({"type": "resume_subscription"}, "resume_subscription", ("paused",)),
    # only a trial has a trial to extend
    ({"type": "extend_trial", "days": 7}, "extend_trial", ("in_trial",)),
    # only a trial can convert to paid
    ({"type": "convert_trial"}, "convert_trial", ("in_trial",)),
    # cancelling at term end needs a renewing subscription (non_renewing already is scheduled)
    (
        {"type": "cancel_subscription", "end_of_term": True},
        "cancel_subscription (end of term)",
        ("in_trial", "active"),
    ),
    # cancelling now works on anything not already cancelled
    (
        {"type": "cancel_subscription", "end_of_term": False},
        "cancel_subscription",
        ("in_trial", "active", "non_renewing", "paused"),
    ),
    # only a scheduled cancellation can be removed
    ({"type": "remove_scheduled_cancellation"}, "remove_scheduled_cancellation", ("non_renewing",)),
]

MATRIX = [
    pytest.param(raw, label, allowed, status, id=f"{label.replace(' ', '_')}-{status}")
    for raw, label, allowed in PRECONDITIONS
    for status in ALL_STATUSES
]


@pytest.mark.parametrize(("raw", "label", "allowed", "status"), MATRIX)
def test_preconditions(
    raw: dict[str, Any], label: str, allowed: tuple[Status, ...], status: Status
) -> None:
    state = STATES[status]
    if status in allowed:
        after = apply(state, raw)
        assert after != state
        return
    with pytest.raises(ActionError) as info:
        apply(state, raw)
    message = str(info.value)
    # names the action, what it needs, and what the subscription is
    # "an in_trial", "an active", "a paused": the article fits the first status named
    article = "an" if allowed[0][0] in "aeiou" else "a"
    assert message.startswith(f"{label} needs {article} ")
    for wanted in allowed:
        assert wanted in message
    assert message.endswith(f"this one is {status}")


def test_every_action_type_is_in_the_matrix() -> None:
    assert {raw["type"] for raw, _, _ in PRECONDITIONS} == {
        "apply_coupon",
        "change_plan",
        "pause_subscription",
        "resume_subscription",
        "extend_trial",
        "convert_trial",
        "cancel_subscription",
        "remove_scheduled_cancellation",
    }


# --- what each action does, field by field (the whole state is compared) ---------------------

RESULTS = [
    # apply_coupon appends the coupon and changes nothing else
    pytest.param(
        STATES["active"],
        {"type": "apply_coupon", "coupon_id": "SAVE20"},
        replace(STATES["active"], coupon_ids=("SAVE20",)),
        id="apply_coupon-active",
    ),
    # coupons already there stay first: the order is the order they were applied in
    pytest.param(
        replace(STATES["in_trial"], coupon_ids=("TEN",)),
        {"type": "apply_coupon", "coupon_id": "SAVE20"},
        replace(STATES["in_trial"], coupon_ids=("TEN", "SAVE20")),
        id="apply_coupon-appends",
    ),
    # a non_renewing subscription keeps its scheduled cancellation when it gets a coupon
    pytest.param(
        STATES["non_renewing"],
        {"type": "apply_coupon", "coupon_id": "TEN"},
        replace(STATES["non_renewing"], coupon_ids=("TEN",)),
        id="apply_coupon-non_renewing",
    ),
    # change_plan without quantity keeps the subscription's quantity (3)
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "pro"},
        replace(STATES["active"], plan_id="pro"),
        id="change_plan-keeps-quantity",
    ),
    # change_plan with a quantity sets both
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "pro", "quantity": 2},
        replace(STATES["active"], plan_id="pro", quantity=2),
        id="change_plan-with-quantity",
    ),
    # the same plan with another quantity is a change (seats only)
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "basic", "quantity": 5},
        replace(STATES["active"], quantity=5),
        id="change_plan-quantity-only",
    ),
    # a trial changes plan and stays a trial, trial_end untouched
    pytest.param(
        STATES["in_trial"],
        {"type": "change_plan", "plan_id": "pro"},
        replace(STATES["in_trial"], plan_id="pro"),
        id="change_plan-in_trial",
    ),
    # pausing for 1 month from Mar 10 resumes on Apr 10 at the same time of day; the term stays
    pytest.param(
        STATES["active"],
        {"type": "pause_subscription", "pause_months": 1},
        replace(
            STATES["active"], status="paused", pause_until=datetime(2026, 4, 10, 12, 30, tzinfo=UTC)
        ),
        id="pause-1-month",
    ),
    # 12 months (the maximum) is the same date next year
    pytest.param(
        STATES["active"],
        {"type": "pause_subscription", "pause_months": 12},
        replace(
            STATES["active"], status="paused", pause_until=datetime(2027, 3, 10, 12, 30, tzinfo=UTC)
        ),
        id="pause-12-months",
    ),
    # resuming clears pause_until and nothing else
    pytest.param(
        STATES["paused"],
        {"type": "resume_subscription"},
        replace(STATES["paused"], status="active", pause_until=None),
        id="resume",
    ),
    # a trial still running is extended from its end (5 days left + 7 = 12 days from now)
    pytest.param(
        STATES["in_trial"],
        {"type": "extend_trial", "days": 7},
        replace(STATES["in_trial"], trial_end=NOW + 12 * DAY),
        id="extend_trial-from-trial_end",
    ),
    # a trial whose end already passed is extended from now, not from the past end
    pytest.param(
        replace(STATES["in_trial"], trial_end=NOW - 2 * DAY),
        {"type": "extend_trial", "days": 7},
        replace(STATES["in_trial"], trial_end=NOW + 7 * DAY),
        id="extend_trial-lapsed",
    ),
    # a trial without a known end is extended from now
    pytest.param(
        replace(STATES["in_trial"], trial_end=None),
        {"type": "extend_trial", "days": 30},
        replace(STATES["in_trial"], trial_end=NOW + 30 * DAY),
        id="extend_trial-no-end",
    ),
    # convert_trial on a monthly plan: active now, term = one month, trial_end cleared
    pytest.param(
        STATES["in_trial"],
        {"type": "convert_trial"},
        replace(
            STATES["in_trial"],
            status="active",
            trial_end=None,
            current_term_start=NOW,
            current_term_end=datetime(2026, 4, 10, 12, 30, tzinfo=UTC),
        ),
        id="convert_trial-monthly",
    ),
    # converting onto a yearly plan makes the term one year
    pytest.param(
        STATES["in_trial"],
        {"type": "convert_trial", "plan_id": "annual"},
        replace(
            STATES["in_trial"],
            status="active",
            plan_id="annual",
            trial_end=None,
            current_term_start=NOW,
            current_term_end=datetime(2027, 3, 10, 12, 30, tzinfo=UTC),
        ),
        id="convert_trial-yearly",
    ),
    # the discount-led conversion: the coupon is added as the trial converts
    pytest.param(
        STATES["in_trial"],
        {"type": "convert_trial", "plan_id": "pro", "coupon_id": "SAVE20"},
        replace(
            STATES["in_trial"],
            status="active",
            plan_id="pro",
            coupon_ids=("SAVE20",),
            trial_end=None,
            current_term_start=NOW,
            current_term_end=datetime(2026, 4, 10, 12, 30, tzinfo=UTC),
        ),
        id="convert_trial-with-coupon",
    ),
    # a coupon the trial already has is not added twice (and is no reason to refuse)
    pytest.param(
        replace(STATES["in_trial"], coupon_ids=("SAVE20",)),
        {"type": "convert_trial", "coupon_id": "SAVE20"},
        replace(
            STATES["in_trial"],
            status="active",
            coupon_ids=("SAVE20",),
            trial_end=None,
            current_term_start=NOW,
            current_term_end=datetime(2026, 4, 10, 12, 30, tzinfo=UTC),
        ),
        id="convert_trial-coupon-already-there",
    ),
    # cancelling a trial at term end ends it when the trial ends (not at current_term_end)
    pytest.param(
        STATES["in_trial"],
        {"type": "cancel_subscription", "end_of_term": True},
        replace(STATES["in_trial"], status="non_renewing", cancel_at=NOW + 5 * DAY),
        id="cancel-end_of_term-in_trial",
    ),
    # cancelling an active subscription at term end schedules it for current_term_end
    pytest.param(
        STATES["active"],
        {"type": "cancel_subscription", "end_of_term": True},
        replace(STATES["active"], status="non_renewing", cancel_at=NOW + 20 * DAY),
        id="cancel-end_of_term-active",
    ),
    # end_of_term defaults to true
    pytest.param(
        STATES["active"],
        {"type": "cancel_subscription"},
        replace(STATES["active"], status="non_renewing", cancel_at=NOW + 20 * DAY),
        id="cancel-default-end_of_term",
    ),
    # cancelling now: cancelled at now
    pytest.param(
        STATES["active"],
        {"type": "cancel_subscription", "end_of_term": False},
        replace(STATES["active"], status="cancelled", cancelled_at=NOW),
        id="cancel-now-active",
    ),
    # cancelling now supersedes a scheduled cancellation
    pytest.param(
        STATES["non_renewing"],
        {"type": "cancel_subscription", "end_of_term": False},
        replace(STATES["non_renewing"], status="cancelled", cancelled_at=NOW, cancel_at=None),
        id="cancel-now-non_renewing",
    ),
    # cancelling a paused subscription drops the planned resume
    pytest.param(
        STATES["paused"],
        {"type": "cancel_subscription", "end_of_term": False},
        replace(STATES["paused"], status="cancelled", cancelled_at=NOW, pause_until=None),
        id="cancel-now-paused",
    ),
    # removing the scheduled cancellation makes it renew again
    pytest.param(
        STATES["non_renewing"],
        {"type": "remove_scheduled_cancellation"},
        replace(STATES["non_renewing"], status="active", cancel_at=None),
        id="remove_scheduled_cancellation",
    ),
]


@pytest.mark.parametrize(("before", "raw", "expected"), RESULTS)
def test_results(
    before: SubscriptionState, raw: dict[str, Any], expected: SubscriptionState
) -> None:
    assert apply(before, raw) == expected


def test_pause_from_jan_31_ends_on_the_last_day_of_february() -> None:
    at = datetime(2026, 1, 31, 9, tzinfo=UTC)
    after = apply(STATES["active"], {"type": "pause_subscription", "pause_months": 1}, now=at)
    assert after.pause_until == datetime(2026, 2, 28, 9, tzinfo=UTC)


def test_convert_trial_in_a_leap_year_from_jan_31() -> None:
    at = datetime(2028, 1, 31, tzinfo=UTC)
    after = apply(STATES["in_trial"], {"type": "convert_trial"}, now=at)
    assert (after.current_term_start, after.current_term_end) == (
        at,
        datetime(2028, 2, 29, tzinfo=UTC),
    )


def test_the_input_state_is_left_alone() -> None:
    before = STATES["active"]
    copy = replace(before)
    apply(before, {"type": "cancel_subscription", "end_of_term": False})
    assert before == copy


# --- refusals other than the status -----------------------------------------------------------

REFUSALS = [
    # the coupon must exist in the catalog
    pytest.param(
        STATES["active"],
        {"type": "apply_coupon", "coupon_id": "GHOST"},
        ["apply_coupon", "'GHOST'", "does not exist"],
        id="apply_coupon-unknown",
    ),
    # applying a coupon twice is refused, not silently ignored
    pytest.param(
        replace(STATES["active"], coupon_ids=("SAVE20",)),
        {"type": "apply_coupon", "coupon_id": "SAVE20"},
        ["apply_coupon", "'SAVE20'", "already applied"],
        id="apply_coupon-twice",
    ),
    # the target plan must exist
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "gold"},
        ["change_plan", "'gold'", "does not exist"],
        id="change_plan-unknown",
    ),
    # the same plan, quantity omitted (so unchanged): nothing would change
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "basic"},
        ["change_plan", "already on", "'basic'", "x3"],
        id="change_plan-same-implicit-quantity",
    ),
    # the same plan and the same quantity spelled out: still nothing to change
    pytest.param(
        STATES["active"],
        {"type": "change_plan", "plan_id": "basic", "quantity": 3},
        ["change_plan", "already on", "'basic'", "x3"],
        id="change_plan-same-explicit-quantity",
    ),
    # convert_trial to a plan that does not exist
    pytest.param(
        STATES["in_trial"],
        {"type": "convert_trial", "plan_id": "gold"},
        ["convert_trial", "'gold'", "does not exist"],
        id="convert_trial-unknown-plan",
    ),
    # convert_trial keeping a plan the catalog no longer has
    pytest.param(
        replace(STATES["in_trial"], plan_id="legacy"),
        {"type": "convert_trial"},
        ["convert_trial", "'legacy'", "does not exist"],
        id="convert_trial-current-plan-gone",
    ),
    # convert_trial with a coupon that does not exist
    pytest.param(
        STATES["in_trial"],
        {"type": "convert_trial", "coupon_id": "GHOST"},
        ["convert_trial", "'GHOST'", "does not exist"],
        id="convert_trial-unknown-coupon",
    ),
    # an active subscription without a term end has no date to cancel at
    pytest.param(
        replace(STATES["active"], current_term_end=None),
        {"type": "cancel_subscription", "end_of_term": True},
        ["cancel_subscription (end of term)", "no term end"],
        id="cancel-end_of_term-active-no-term-end",
    ),
    # a trial without trial_end has no date to cancel at, even with a current_term_end
    pytest.param(
        replace(STATES["in_trial"], trial_end=None),
        {"type": "cancel_subscription", "end_of_term": True},
        ["cancel_subscription (end of term)", "no term end"],
        id="cancel-end_of_term-in_trial-no-trial-end",
    ),
]


@pytest.mark.parametrize(("before", "raw", "words"), REFUSALS)
def test_refusals(before: SubscriptionState, raw: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ActionError) as info:
        apply(before, raw)
    for word in words:
        assert word in str(info.value)


# --- dates past what a datetime holds (the year 9999) -------------------------------------------

LAST_DECEMBER = datetime(9999, 12, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "raw", "now"),
    [
        # a trial ending Dec 20, 9999 plus 30 days is in the year 10000
        (
            replace(STATES["in_trial"], trial_end=LAST_DECEMBER),
            {"type": "extend_trial", "days": 30},
            NOW,
        ),
        # a pause from Dec 9999 for a month ends in the year 10000
        (STATES["active"], {"type": "pause_subscription", "pause_months": 1}, LAST_DECEMBER),
        # converting a trial in Dec 9999 starts a term that ends in the year 10000
        (STATES["in_trial"], {"type": "convert_trial"}, LAST_DECEMBER),
    ],
    ids=["extend_trial", "pause_subscription", "convert_trial"],
)
def test_a_date_past_9999_is_the_actions_error(
    before: SubscriptionState, raw: dict[str, Any], now: datetime
) -> None:
    """An ActionError is permanent (billing_update_failed); the OverflowError it was, retried."""
    with pytest.raises(ActionError) as info:
        apply(before, raw, now=now)
    assert raw["type"] in str(info.value) and "9999" in str(info.value)


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        # pause is 1..12 months
        {"type": "pause_subscription", "pause_months": 0},
        {"type": "pause_subscription", "pause_months": 13},
        # a trial extension is 1..365 days
        {"type": "extend_trial", "days": 0},
        {"type": "extend_trial", "days": 366},
        # a quantity is at least 1
        {"type": "change_plan", "plan_id": "pro", "quantity": 0},
        # required fields
        {"type": "apply_coupon"},
        {"type": "change_plan"},
        # unknown fields are refused so a typo is not silently ignored
        {"type": "resume_subscription", "months": 1},
        # not one of the eight
        {"type": "refund"},
    ],
)
def test_parse_action_refuses(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_action(raw)


# --- add_months ------------------------------------------------------------------------------


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 8, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        # the plain case: same day next month
        (at(2026, 3, 10), 1, at(2026, 4, 10)),
        # Jan 31 + 1 clamps to February's last day in a common year
        (at(2026, 1, 31), 1, at(2026, 2, 28)),
        # ... and to Feb 29 in a leap year
        (at(2028, 1, 31), 1, at(2028, 2, 29)),
        # 2100 is not a leap year (divisible by 100, not by 400)
        (at(2100, 1, 31), 1, at(2100, 2, 28)),
        # 2000 was (divisible by 400)
        (at(2000, 1, 30), 1, at(2000, 2, 29)),
        # Feb 29 + 12 months lands on Feb 28 of the common year after
        (at(2028, 2, 29), 12, at(2029, 2, 28)),
        # Feb 29 + 48 months is Feb 29 again
        (at(2028, 2, 29), 48, at(2032, 2, 29)),
        # Mar 31 + 1 clamps to Apr 30 (a 30-day month)
        (at(2026, 3, 31), 1, at(2026, 4, 30)),
        # December rolls into January of the next year
        (at(2026, 12, 15), 1, at(2027, 1, 15)),
        # Dec 31 + 2 crosses the year and clamps in February
        (at(2026, 12, 31), 2, at(2027, 2, 28)),
        # Nov 30 + 3 crosses the year into February
        (at(2026, 11, 30), 3, at(2027, 2, 28)),
        # the clamp does not stick: Jan 31 + 2 is Mar 31, not Mar 28
        (at(2026, 1, 31), 2, at(2026, 3, 31)),
        # 24 months is two years to the day
        (at(2026, 5, 17), 24, at(2028, 5, 17)),
        # zero months is the same instant
        (at(2026, 5, 17), 0, at(2026, 5, 17)),
    ],
)
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    result = add_months(start, months)
    assert result == expected
    # time of day and time zone are kept
    assert (result.time(), result.tzinfo) == (start.time(), start.tzinfo)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        # a monthly period is one month
        ("month", at(2026, 2, 28)),
        # a yearly period is twelve months
        ("year", at(2027, 1, 31)),
    ],
)
def test_add_period(unit: Any, expected: datetime) -> None:
    assert add_period(at(2026, 1, 31), unit) == expected


def test_as_dict_is_json_ready() -> None:
    state = replace(STATES["active"], coupon_ids=("SAVE20", "TEN"))
    assert state.as_dict() == {
        "status": "active",
        "plan_id": "basic",
        "quantity": 3,
        "coupon_ids": ["SAVE20", "TEN"],
        "trial_end": None,
        "current_term_start": int((NOW - 10 * DAY).timestamp()),
        "current_term_end": int((NOW + 20 * DAY).timestamp()),
        "pause_until": None,
        "cancel_at": None,
        "cancelled_at": None,
    }
