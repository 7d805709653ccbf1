"""billing_update fulfillments end to end: accepted through the public API, carried out by the
worker through the billing provider, polled with GET; on real PostgreSQL and the real queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from offerd.billing.actions import BillingAction
from offerd.billing.ledger import LedgerProvider
from offerd.billing.provider import Applied, Preview, TransientProviderError
from offerd.db import Conn
from offerd.fulfillments.processors import billing_update
from offerd.queue.runtime import build_worker
from tests.fulfillments.helpers import accept_option, event_types, retrieve
from tests.support.app import TestApp
from tests.support.catalog import offer, seed


async def accept(
    app: TestApp, keys: dict[str, str], option: str = "discount", **ask: Any
) -> dict[str, Any]:
    po = None
    if ask:
        r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=ask)
        assert r.status_code == 200, r.text
        (po,) = r.json()["personalized_offers"]
    _, f = await accept_option(app, keys, option, po=po)
    assert f["status"] == "in_progress"
    return f


async def subscription(app: TestApp) -> dict[str, Any]:
    (row,) = await app.fetch("SELECT * FROM subscriptions WHERE site_id = 'acme' AND id = 'sub_1'")
    return row


async def changes(app: TestApp) -> list[dict[str, Any]]:
    return await app.fetch("SELECT * FROM subscription_changes ORDER BY id")


async def jobs_of(app: TestApp, fulfillment_id: str) -> list[dict[str, Any]]:
    return await app.fetch(
        "SELECT * FROM jobs WHERE payload->>'fulfillment_id' = %s", fulfillment_id
    )


async def one_option_offer(app: TestApp, billing_action: dict[str, Any]) -> None:
    """Replace the seeded offer with one whose only option takes ``billing_action``."""
    option = {
        "id": "discount",
        "label": "Do it",
        "processing_type": "billing_update",
        "billing_action": billing_action,
    }
    await app.put("acme", "offers/stay", offer(options=[option]))


async def test_success_completes_once_with_one_change(app: TestApp) -> None:
    keys = await seed(app)
    before = await subscription(app)
    f = await accept(app, keys)
    worker = build_worker(app.services)

    assert await worker.run_once() == 1

    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "completed"
    assert isinstance(done["completed_at"], int)
    assert done["completed_at"] >= done["created_at"]
    assert "error" not in done and "failed_at" not in done
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]
    after = await subscription(app)
    assert after["coupon_ids"] == ["SAVE20"]
    assert after["version"] == before["version"] + 1
    (change,) = await changes(app)
    assert change["fulfillment_id"] == f["id"]
    assert change["idempotency_key"] == f["id"]
    assert change["action"] == {"type": "apply_coupon", "coupon_id": "SAVE20"}
    assert await jobs_of(app, f["id"]) == []

    # the admin view ties the change to the fulfillment
    sub = (await app.admin("GET", "/sites/acme/subscriptions/sub_1")).json()
    assert [c["fulfillment_id"] for c in sub["changes"]] == [f["id"]]
    assert [c["id"] for c in sub["coupons"]] == ["SAVE20"]

    # nothing left to do
    assert await worker.run_once() == 0


async def test_the_same_job_run_again_changes_nothing(app: TestApp) -> None:
    keys = await seed(app)
    f = await accept(app, keys)
    worker = build_worker(app.services)
    assert await worker.run_once() == 1
    done = await retrieve(app, keys, f["id"])
    sub = await subscription(app)
    app.clock.advance(60)

    # at-least-once delivery: the same job comes again
    await app.fetch(
        "INSERT INTO jobs (kind, payload, run_at, created_at) VALUES (%s, %s, %s, %s) RETURNING id",
        billing_update.KIND,
        Jsonb({"fulfillment_id": f["id"]}),
        app.clock.now(),
        app.clock.now(),
    )
    assert await worker.run_once() == 1

    assert await retrieve(app, keys, f["id"]) == done
    assert await subscription(app) == sub
    assert len(await changes(app)) == 1
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]
    assert await jobs_of(app, f["id"]) == []


@pytest.mark.parametrize(
    ("billing_action", "words"),
    [
        # sub_1 is active: there is no trial to extend
        ({"type": "extend_trial", "days": 14}, ["extend_trial", "in_trial", "active"]),
        # sub_1 is not paused, so it cannot resume
        ({"type": "resume_subscription"}, ["resume_subscription", "paused", "active"]),
        # the offer names a coupon the site's catalog does not have
        ({"type": "apply_coupon", "coupon_id": "GHOST"}, ["apply_coupon", "'GHOST'", "exist"]),
        # sub_1 already is on basic x1: nothing to change
        ({"type": "change_plan", "plan_id": "basic"}, ["change_plan", "already on 'basic'"]),
        # sub_1 is active: it has no scheduled cancellation to remove
        ({"type": "remove_scheduled_cancellation"}, ["non_renewing", "active"]),
    ],
)
async def test_a_domain_error_fails_with_billing_update_failed(
    app: TestApp, billing_action: dict[str, Any], words: list[str]
) -> None:
    keys = await seed(app)
    await one_option_offer(app, billing_action)
    before = await subscription(app)
    f = await accept(app, keys)
    worker = build_worker(app.services)

    assert await worker.run_once() == 1

    failed = await retrieve(app, keys, f["id"])
    assert failed["status"] == "failed"
    assert isinstance(failed["failed_at"], int)
    assert "completed_at" not in failed
    assert failed["error"]["code"] == "billing_update_failed"
    for word in words:
        assert word in failed["error"]["message"]
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    assert await subscription(app) == before
    assert await changes(app) == []
    # failed for good: no retry left in the queue
    assert await jobs_of(app, f["id"]) == []


# the last day a datetime can add 30 days to is Dec 1, 9999: a trial ending on Dec 20 cannot be
# extended by 30 days, and that is the action's error, not a crash retried 8 times
LAST_DECEMBER = int(datetime(9999, 12, 20, tzinfo=UTC).timestamp())


async def test_an_action_whose_date_overflows_fails_for_good(app: TestApp) -> None:
    keys = await seed(app)
    trial = {"customer_id": "cus_1", "plan_id": "basic", "status": "in_trial"}
    await app.put("acme", "subscriptions/sub_1", {**trial, "trial_end": LAST_DECEMBER})
    await one_option_offer(app, {"type": "extend_trial", "days": 30})
    before = await subscription(app)
    f = await accept(app, keys)
    worker = build_worker(app.services)

    assert await worker.run_once() == 1

    failed = await retrieve(app, keys, f["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "billing_update_failed"
    assert "extend_trial" in failed["error"]["message"]
    assert "9999" in failed["error"]["message"]
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    assert await subscription(app) == before
    assert await changes(app) == []
    assert await jobs_of(app, f["id"]) == []  # no retry: it would overflow every time


@pytest.mark.parametrize(
    ("ask", "words"),
    [
        # cus_2 has no subscription in the ledger, and the request named none
        ({"customer_id": "cus_2"}, ["no subscription"]),
        # the request named a subscription the ledger does not have
        ({"customer_id": "cus_2", "subscription_id": "sub_ghost"}, ["'sub_ghost'", "not exist"]),
    ],
)
async def test_no_known_subscription_fails_with_billing_update_failed(
    app: TestApp, ask: dict[str, Any], words: list[str]
) -> None:
    keys = await seed(app)
    await app.put("acme", "customers/cus_2", {"email": "bob@example.com"})
    f = await accept(app, keys, **ask)
    worker = build_worker(app.services)

    assert await worker.run_once() == 1

    failed = await retrieve(app, keys, f["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "billing_update_failed"
    for word in words:
        assert word in failed["error"]["message"]
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    assert await changes(app) == []


class FlakyProvider:
    """The billing provider seam with an unreliable upstream: ``failures`` transient errors
    (``None``: forever), then the real ledger."""

    remote = False  # it is the ledger: it applies in the job's transaction

    def __init__(
        self, failures: int | None, *, after_write: bool = False, retry_after: float | None = None
    ) -> None:
        self.failures = failures
        self.after_write = after_write
        self.retry_after = retry_after
        self.calls = 0
        self.ledger = LedgerProvider()

    async def apply(
        self,
        conn: Conn,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        idempotency_key: str,
        now: datetime,
    ) -> Applied:
        self.calls += 1
        failing = self.failures is None or self.calls <= self.failures
        if failing and not self.after_write:
            raise TransientProviderError("upstream busy (503)", retry_after=self.retry_after)
        applied = await self.ledger.apply(
            conn,
            site_id=site_id,
            subscription_id=subscription_id,
            action=action,
            idempotency_key=idempotency_key,
            now=now,
        )
        if failing:
            # the change was written, then the connection to the upstream timed out
            raise TransientProviderError("upstream timed out after writing")
        return applied

    async def preview(
        self,
        conn: Conn,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview:
        return await self.ledger.preview(
            conn, site_id=site_id, subscription_id=subscription_id, action=action, now=now
        )


def ceiling(attempt: int) -> float:
    """The backoff's upper bound for an attempt: 2 s doubling, capped at 300 s."""
    return min(300.0, 2.0 * 2 ** (attempt - 1))


async def test_a_transient_error_is_retried_with_backoff_then_succeeds(app: TestApp) -> None:
    keys = await seed(app)
    flaky = FlakyProvider(failures=2)
    app.services.billing.ledger = flaky
    f = await accept(app, keys)
    worker = build_worker(app.services)

    for attempt in (1, 2):
        start = app.clock.now()
        assert await worker.run_once() == 1
        end = app.clock.now()
        (job,) = await jobs_of(app, f["id"])
        assert job["attempts"] == attempt
        assert "upstream busy (503)" in job["last_error"]
        assert job["locked_by"] is None
        # rescheduled between half the ceiling and the ceiling from now (jitter)
        assert start + timedelta(seconds=ceiling(attempt) / 2) <= job["run_at"]
        assert job["run_at"] <= end + timedelta(seconds=ceiling(attempt))
        # still waiting: no decision yet, nothing applied
        assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
        assert await changes(app) == []
        app.clock.advance(ceiling(attempt) + 1)

    assert await worker.run_once() == 1

    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "completed"
    assert isinstance(done["completed_at"], int)
    assert flaky.calls == 3
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]
    assert (await subscription(app))["coupon_ids"] == ["SAVE20"]
    assert len(await changes(app)) == 1
    assert await jobs_of(app, f["id"]) == []


async def test_a_transient_error_with_retry_after_waits_as_long_as_the_provider_asked(
    app: TestApp,
) -> None:
    keys = await seed(app)
    app.services.billing.ledger = FlakyProvider(failures=1, retry_after=600.0)
    f = await accept(app, keys)
    worker = build_worker(app.services)
    start = app.clock.now()
    assert await worker.run_once() == 1
    end = app.clock.now()
    (job,) = await jobs_of(app, f["id"])
    assert job["attempts"] == 1  # an attempt (not a deferral), rescheduled at Retry-After
    assert start + timedelta(seconds=600) <= job["run_at"] <= end + timedelta(seconds=600)
    app.clock.advance(601)
    assert await worker.run_once() == 1
    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"


async def test_a_transient_error_after_writing_rolls_the_write_back(app: TestApp) -> None:
    keys = await seed(app)
    before = await subscription(app)
    flaky = FlakyProvider(failures=1, after_write=True)
    app.services.billing.ledger = flaky
    f = await accept(app, keys)
    worker = build_worker(app.services)

    assert await worker.run_once() == 1
    # the ledger's write went with the failed attempt's transaction
    assert await subscription(app) == before
    assert await changes(app) == []
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"

    app.clock.advance(ceiling(1) + 1)
    assert await worker.run_once() == 1

    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"
    after = await subscription(app)
    assert after["coupon_ids"] == ["SAVE20"]
    assert after["version"] == before["version"] + 1
    assert len(await changes(app)) == 1


async def test_a_provider_that_keeps_failing_ends_in_internal_error(app: TestApp) -> None:
    keys = await seed(app)
    before = await subscription(app)
    flaky = FlakyProvider(failures=None)
    app.services.billing.ledger = flaky
    f = await accept(app, keys)
    worker = build_worker(app.services)
    attempts = billing_update.MAX_ATTEMPTS
    assert attempts == 8

    for attempt in range(1, attempts):
        assert await worker.run_once() == 1
        (job,) = await jobs_of(app, f["id"])
        assert job["attempts"] == attempt
        assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
        app.clock.advance(ceiling(attempt) + 1)

    assert await worker.run_once() == 1

    failed = await retrieve(app, keys, f["id"])
    assert failed["status"] == "failed"
    assert isinstance(failed["failed_at"], int)
    assert failed["error"]["code"] == "internal_error"
    assert f"{attempts} attempts" in failed["error"]["message"]
    assert "upstream busy (503)" in failed["error"]["message"]
    assert flaky.calls == attempts
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    # the job is kept as failed, for an admin to read (and retry: it finds the fulfillment final)
    assert [(j["status"], j["locked_by"]) for j in await jobs_of(app, f["id"])] == [
        ("failed", None)
    ]
    assert await subscription(app) == before
    # given up: more time brings no more attempts
    app.clock.advance(3600)
    assert await worker.run_once() == 0
    assert flaky.calls == attempts


@pytest.mark.unit
@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        # the first retry waits 1-2 s: base 2 s with full jitter above half
        (1, 1.0, 2.0),
        # each attempt doubles the ceiling
        (2, 2.0, 4.0),
        (3, 4.0, 8.0),
        # the seventh retry, the last before giving up at eight attempts: 64-128 s
        (7, 64.0, 128.0),
        # 2 * 2^8 = 512 s is over the cap: 150-300 s
        (9, 150.0, 300.0),
        # far out the cap still holds
        (30, 150.0, 300.0),
    ],
)
def test_backoff_is_capped_exponential_with_jitter(attempt: int, low: float, high: float) -> None:
    (task,) = billing_update.TASKS
    delays = [task.backoff(attempt) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    # jittered: not one fixed delay
    assert len(set(delays)) > 1
