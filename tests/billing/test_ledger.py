"""The built-in ledger provider against real PostgreSQL: one change, once per key, in the
caller's transaction; and the admin view of a subscription with its change log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from offerd.billing.actions import add_months, parse_action
from offerd.billing.ledger import LedgerProvider, state_of
from offerd.billing.pricing import Summary
from offerd.billing.provider import Applied, PermanentProviderError
from offerd.db import transaction
from tests.support.app import TestApp
from tests.support.catalog import NOW_TERM, seed

TERM_END = datetime.fromtimestamp(NOW_TERM + 29 * 86400, UTC)


async def apply(
    app: TestApp,
    action: dict[str, Any],
    key: str = "of_key_1",
    *,
    subscription_id: str = "sub_1",
    now: datetime | None = None,
) -> Applied:
    async with app.services.db.connection() as conn, transaction(conn):
        return await LedgerProvider().apply(
            conn,
            site_id="acme",
            subscription_id=subscription_id,
            action=parse_action(action),
            idempotency_key=key,
            now=now or app.clock.now(),
        )


async def subscription(app: TestApp, subscription_id: str = "sub_1") -> dict[str, Any]:
    (row,) = await app.fetch(
        "SELECT * FROM subscriptions WHERE site_id = 'acme' AND id = %s", subscription_id
    )
    return row


async def changes(app: TestApp) -> list[dict[str, Any]]:
    return await app.fetch("SELECT * FROM subscription_changes ORDER BY id")


async def test_apply_writes_the_subscription_and_exactly_one_change(app: TestApp) -> None:
    await seed(app)
    before_row = await subscription(app)
    now = app.clock.now()

    applied = await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"}, now=now)

    before = state_of(before_row)
    assert applied == Applied(before, replace(before, coupon_ids=("SAVE20",)), replayed=False)
    row = await subscription(app)
    assert row["coupon_ids"] == ["SAVE20"]
    assert row["version"] == before_row["version"] + 1
    assert row["updated_at"] == now
    assert state_of(row) == applied.after
    (change,) = await changes(app)
    assert {k: v for k, v in change.items() if k != "id"} == {
        "site_id": "acme",
        "subscription_id": "sub_1",
        "idempotency_key": "of_key_1",
        "fulfillment_id": "of_key_1",
        "action": {"type": "apply_coupon", "coupon_id": "SAVE20"},
        "before": before.as_dict(),
        "after": applied.after.as_dict(),
        "created_at": now,
    }


TRIAL_END = NOW_TERM + 10 * 86400


@dataclass(frozen=True)
class Now:
    """An expected timestamp relative to the ``now`` the action is applied at."""

    months: int = 0


# Each row starts sub_1 somewhere (the admin PUT) and applies one action: every column the
# ledger writes is exercised by at least one row.
WRITES = [
    # a coupon lands in coupon_ids
    pytest.param(
        {},
        {"type": "apply_coupon", "coupon_id": "SAVE20"},
        {"coupon_ids": ["SAVE20"]},
        id="apply_coupon",
    ),
    # a plan change writes plan_id and quantity
    pytest.param(
        {},
        {"type": "change_plan", "plan_id": "pro", "quantity": 4},
        {"plan_id": "pro", "quantity": 4},
        id="change_plan",
    ),
    # a pause writes status and pause_until (two months from now)
    pytest.param(
        {},
        {"type": "pause_subscription", "pause_months": 2},
        {"status": "paused", "pause_until": Now(months=2)},
        id="pause",
    ),
    # resuming clears pause_until
    pytest.param(
        {"status": "paused", "pause_until": NOW_TERM},
        {"type": "resume_subscription"},
        {"status": "active", "pause_until": None},
        id="resume",
    ),
    # extending a trial moves trial_end by the days given
    pytest.param(
        {"status": "in_trial", "trial_end": TRIAL_END},
        {"type": "extend_trial", "days": 3},
        {"trial_end": datetime.fromtimestamp(TRIAL_END + 3 * 86400, UTC)},
        id="extend_trial",
    ),
    # converting a trial writes the new term and clears trial_end
    pytest.param(
        {"status": "in_trial", "trial_end": TRIAL_END},
        {"type": "convert_trial", "plan_id": "pro"},
        {
            "status": "active",
            "plan_id": "pro",
            "trial_end": None,
            "current_term_start": Now(),
            "current_term_end": Now(months=1),
        },
        id="convert_trial",
    ),
    # cancelling at term end writes cancel_at = current_term_end
    pytest.param(
        {},
        {"type": "cancel_subscription", "end_of_term": True},
        {"status": "non_renewing", "cancel_at": TERM_END},
        id="cancel_end_of_term",
    ),
    # cancelling now writes cancelled_at
    pytest.param(
        {},
        {"type": "cancel_subscription", "end_of_term": False},
        {"status": "cancelled", "cancelled_at": Now()},
        id="cancel_now",
    ),
    # removing a scheduled cancellation clears cancel_at
    pytest.param(
        {"status": "non_renewing", "cancel_at": NOW_TERM + 29 * 86400},
        {"type": "remove_scheduled_cancellation"},
        {"status": "active", "cancel_at": None},
        id="remove_scheduled_cancellation",
    ),
]


@pytest.mark.parametrize(("setup", "action", "expected"), WRITES)
async def test_each_action_writes_its_columns(
    app: TestApp, setup: dict[str, Any], action: dict[str, Any], expected: dict[str, Any]
) -> None:
    await seed(app)
    if setup:
        await app.put(
            "acme",
            "subscriptions/sub_1",
            {
                "customer_id": "cus_1",
                "plan_id": "basic",
                "status": "active",
                "current_term_start": NOW_TERM - 86400,
                "current_term_end": NOW_TERM + 29 * 86400,
                **setup,
            },
        )
    now = app.clock.now()
    applied = await apply(app, action, now=now)
    row = await subscription(app)
    for column, value in expected.items():
        if isinstance(value, Now):
            value = add_months(now, value.months)
        assert row[column] == value, column
    assert state_of(row) == applied.after
    assert len(await changes(app)) == 1


async def test_the_same_key_replays_and_changes_nothing(app: TestApp) -> None:
    await seed(app)
    first = await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"})
    row = await subscription(app)
    app.clock.advance(60)

    # even another action under the same key: the key names the change already made
    again = await apply(app, {"type": "change_plan", "plan_id": "pro"})

    assert again == replace(first, replayed=True)
    assert await subscription(app) == row
    assert len(await changes(app)) == 1


async def test_another_key_is_another_change(app: TestApp) -> None:
    await seed(app)
    await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"}, "of_a")
    await apply(app, {"type": "change_plan", "plan_id": "pro"}, "of_b")
    row = await subscription(app)
    assert (row["plan_id"], row["coupon_ids"], row["version"]) == ("pro", ["SAVE20"], 3)
    assert [c["idempotency_key"] for c in await changes(app)] == ["of_a", "of_b"]


@pytest.mark.parametrize(
    ("action", "subscription_id", "words"),
    [
        # sub_1 is active: there is no trial to extend
        ({"type": "extend_trial", "days": 7}, "sub_1", ["extend_trial", "in_trial", "active"]),
        # sub_1 is not paused
        ({"type": "resume_subscription"}, "sub_1", ["resume_subscription", "paused", "active"]),
        # the coupon is not in the site's catalog
        ({"type": "apply_coupon", "coupon_id": "GHOST"}, "sub_1", ["'GHOST'", "does not exist"]),
        # sub_1 is already on basic x1
        ({"type": "change_plan", "plan_id": "basic"}, "sub_1", ["already on 'basic'"]),
        # there is no such subscription in the ledger
        (
            {"type": "apply_coupon", "coupon_id": "SAVE20"},
            "sub_ghost",
            ["'sub_ghost'", "does not exist"],
        ),
    ],
)
async def test_a_domain_error_is_permanent_and_writes_nothing(
    app: TestApp, action: dict[str, Any], subscription_id: str, words: list[str]
) -> None:
    await seed(app)
    row = await subscription(app)
    # the caller commits its own transaction after the refusal (as billing_update does when it
    # records the failure): the provider itself must have written nothing
    async with app.services.db.connection() as conn, transaction(conn):
        with pytest.raises(PermanentProviderError) as info:
            await LedgerProvider().apply(
                conn,
                site_id="acme",
                subscription_id=subscription_id,
                action=parse_action(action),
                idempotency_key="of_key_1",
                now=app.clock.now(),
            )
    for word in words:
        assert word in str(info.value)
    assert await subscription(app) == row
    assert await changes(app) == []


async def test_the_change_rolls_back_with_the_callers_transaction(app: TestApp) -> None:
    await seed(app)
    row = await subscription(app)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with app.services.db.connection() as conn, transaction(conn):
            await LedgerProvider().apply(
                conn,
                site_id="acme",
                subscription_id="sub_1",
                action=parse_action({"type": "apply_coupon", "coupon_id": "SAVE20"}),
                idempotency_key="of_key_1",
                now=app.clock.now(),
            )
            raise Crash
    assert await subscription(app) == row
    assert await changes(app) == []
    # the key was not used up: the retry applies for real
    retried = await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"})
    assert not retried.replayed
    assert (await subscription(app))["coupon_ids"] == ["SAVE20"]


async def test_concurrent_applies_with_one_key_apply_once_and_replay(app: TestApp) -> None:
    """Two callers with the same key at the same time: the second waits for the first and then
    sees its change as a replay (not a refusal, not a unique violation)."""
    await seed(app)
    action = parse_action({"type": "apply_coupon", "coupon_id": "SAVE20"})
    provider = LedgerProvider()

    async def second() -> Applied:
        async with app.services.db.connection() as conn, transaction(conn):
            return await provider.apply(
                conn,
                site_id="acme",
                subscription_id="sub_1",
                action=action,
                idempotency_key="of_key_1",
                now=app.clock.now(),
            )

    async with app.services.db.connection() as conn, transaction(conn):
        first = await provider.apply(
            conn,
            site_id="acme",
            subscription_id="sub_1",
            action=action,
            idempotency_key="of_key_1",
            now=app.clock.now(),
        )
        waiting = asyncio.create_task(second())
        await blocked_on_a_lock(app)
    replay = await waiting

    assert replay == replace(first, replayed=True)
    assert (await subscription(app))["coupon_ids"] == ["SAVE20"]
    assert len(await changes(app)) == 1


async def blocked_on_a_lock(app: TestApp) -> None:
    """Wait (bounded) until some session of this database waits for a row lock."""
    for _ in range(1500):
        (row,) = await app.fetch(
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if row["n"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the second apply never waited for the subscription's lock")


async def test_preview_summarizes_and_writes_nothing(app: TestApp) -> None:
    await seed(app)
    row = await subscription(app)
    async with app.services.db.connection() as conn:
        preview = await LedgerProvider().preview(
            conn,
            site_id="acme",
            subscription_id="sub_1",
            action=parse_action({"type": "apply_coupon", "coupon_id": "SAVE20"}),
            now=app.clock.now(),
        )
        with pytest.raises(PermanentProviderError, match="extend_trial"):
            await LedgerProvider().preview(
                conn,
                site_id="acme",
                subscription_id="sub_1",
                action=parse_action({"type": "extend_trial", "days": 3}),
                now=app.clock.now(),
            )
    # $15 a month, then 20% off: $12 at the end of the term
    assert preview.before == Summary("active", "Basic", 1, 1500, "USD", (), 1500, TERM_END)
    assert preview.after == Summary("active", "Basic", 1, 1500, "USD", ("20% off",), 1200, TERM_END)
    assert await subscription(app) == row
    assert await changes(app) == []


async def test_admin_view_shows_coupons_and_the_change_log(app: TestApp) -> None:
    await seed(app)
    # another subscription's changes do not show up in sub_1's log
    await app.put(
        "acme",
        "subscriptions/sub_2",
        {"customer_id": "cus_1", "plan_id": "basic", "status": "active"},
    )
    t1 = app.clock.now()
    first = await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"}, "of_one", now=t1)
    app.clock.advance(3600)
    t2 = app.clock.now()
    second = await apply(
        app, {"type": "change_plan", "plan_id": "pro", "quantity": 2}, "of_two", now=t2
    )
    await apply(
        app, {"type": "apply_coupon", "coupon_id": "SAVE20"}, "of_other", subscription_id="sub_2"
    )

    r = await app.admin("GET", "/sites/acme/subscriptions/sub_1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "sub_1" and body["object"] == "subscription"
    assert (body["status"], body["plan_id"], body["quantity"]) == ("active", "pro", 2)
    assert body["coupon_ids"] == ["SAVE20"]
    assert body["trial_end"] is None
    assert body["current_term_start"] == NOW_TERM - 86400
    assert body["current_term_end"] == NOW_TERM + 29 * 86400
    assert body["version"] == 3
    (coupon,) = body["coupons"]
    assert {k: coupon[k] for k in ("id", "object", "name", "discount_type")} == {
        "id": "SAVE20",
        "object": "coupon",
        "name": "20% off",
        "discount_type": "percentage",
    }
    assert coupon["discount_percentage"] == 20
    assert coupon["duration_type"] == "forever"

    log = body["changes"]
    assert [{k: c[k] for k in ("fulfillment_id", "action", "before", "after")} for c in log] == [
        {
            "fulfillment_id": "of_one",
            "action": {"type": "apply_coupon", "coupon_id": "SAVE20"},
            "before": first.before.as_dict(),
            "after": first.after.as_dict(),
        },
        {
            "fulfillment_id": "of_two",
            "action": {"type": "change_plan", "plan_id": "pro", "quantity": 2},
            "before": second.before.as_dict(),
            "after": second.after.as_dict(),
        },
    ]
    assert log[1]["before"]["plan_id"] == "basic" and log[1]["after"]["plan_id"] == "pro"
    assert [c["created_at"] for c in log] == [int(t1.timestamp()), int(t2.timestamp())]
    assert log[0]["id"] < log[1]["id"]


async def test_admin_view_lists_coupons_in_the_order_applied(app: TestApp) -> None:
    await seed(app)
    await app.put(
        "acme",
        "coupons/A10",
        {
            "name": "$10 off",
            "discount_type": "fixed_amount",
            "discount_amount": 1000,
            "currency": "USD",
            "duration_type": "one_time",
        },
    )
    # SAVE20 first, then A10: the view follows the subscription, not the coupon ids' order
    await apply(app, {"type": "apply_coupon", "coupon_id": "SAVE20"}, "of_one")
    await apply(app, {"type": "apply_coupon", "coupon_id": "A10"}, "of_two")
    body = (await app.admin("GET", "/sites/acme/subscriptions/sub_1")).json()
    assert body["coupon_ids"] == ["SAVE20", "A10"]
    assert [(c["id"], c["object"]) for c in body["coupons"]] == [
        ("SAVE20", "coupon"),
        ("A10", "coupon"),
    ]
    assert body["coupons"][1]["discount_amount"] == 1000
