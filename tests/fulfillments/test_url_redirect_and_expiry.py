"""url_redirect completing at creation (a site setting), and the sweep that fails fulfillments
left in progress past the site's time limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from offerd.queue.runtime import build_worker, periodic_tasks
from offerd.queue.worker import Periodic
from tests.fulfillments.helpers import PATH, accept_option, event_types, retrieve
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed

DAY = timedelta(days=1)


async def accept(app: TestApp, keys: dict[str, str], option: str = "talk") -> dict[str, Any]:
    _, f = await accept_option(app, keys, option)
    return f


def expire_fulfillments() -> Periodic:
    (sweep,) = [p for p in periodic_tasks() if p.name == "expire_fulfillments"]
    return sweep


async def sweep(app: TestApp) -> int:
    return await build_worker(app.services).run_periodic(expire_fulfillments())


# --- url_redirect_auto_complete ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "option", "status", "events"),
    [
        # with the setting, a url_redirect is complete at creation and logs fulfilled at once
        ({"url_redirect_auto_complete": True}, "talk", "completed", ["accepted", "fulfilled"]),
        # by default the merchant completes it later with an update
        ({}, "talk", "in_progress", ["accepted"]),
        # explicitly off is the default
        ({"url_redirect_auto_complete": False}, "talk", "in_progress", ["accepted"]),
        # the setting is about url_redirect only: a webhook option still waits for the merchant
        ({"url_redirect_auto_complete": True}, "gift", "in_progress", ["accepted"]),
    ],
)
async def test_url_redirect_auto_complete(
    app: TestApp, settings: dict[str, Any], option: str, status: str, events: list[str]
) -> None:
    keys = await seed(app, **settings)
    f = await accept(app, keys, option)

    assert f["status"] == status
    if status == "completed":
        assert isinstance(f["completed_at"], int)
        assert f["completed_at"] >= f["created_at"]
    else:
        assert "completed_at" not in f
    assert "error" not in f and "failed_at" not in f
    if option == "talk":
        # completed or not, the subscriber is still sent to the merchant
        assert f["redirect_url"].startswith("https://merchant.example/save?")
    assert await retrieve(app, keys, f["id"]) == f
    assert await event_types(app, f["id"]) == events


async def test_an_auto_completed_url_redirect_is_final(app: TestApp) -> None:
    keys = await seed(app, url_redirect_auto_complete=True)
    po = await personalized_offer(app, keys["publishable"])
    body = {"personalized_offer_id": po["id"], "option_id": "talk"}
    first = await app.post(PATH, keys["publishable"], json=body)
    f = first.json()["offer_fulfillment"]
    # accepting it again returns the same completed fulfillment, with no second event
    again = await app.post(PATH, keys["publishable"], json=body)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    # the merchant cannot move it any more
    r = await app.post(
        f"{PATH}/{f['id']}",
        keys["full_access"],
        json={"id": f["id"], "status": "failed", "failure_reason": "late"},
    )
    assert r.status_code == 409, r.text
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]
    # and the expiry sweep has nothing to do with it
    app.clock.advance(8 * DAY)
    assert await sweep(app) == 0
    assert (await retrieve(app, keys, f["id"]))["status"] == "completed"


# --- expiry -----------------------------------------------------------------------------------


async def test_a_url_redirect_left_in_progress_expires_after_seven_days(app: TestApp) -> None:
    keys = await seed(app)
    f = await accept(app, keys)

    # a minute short of seven days: still the merchant's to complete
    app.clock.advance(7 * DAY - timedelta(minutes=1))
    assert await sweep(app) == 0
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"

    app.clock.advance(timedelta(minutes=2))
    assert await sweep(app) == 1

    failed = await retrieve(app, keys, f["id"])
    assert failed["status"] == "failed"
    assert isinstance(failed["failed_at"], int)
    assert failed["failed_at"] >= failed["created_at"] + 7 * 86400
    assert failed["error"]["code"] == "fulfillment_expired"
    assert "7 days" in failed["error"]["message"]
    assert "completed_at" not in failed
    assert await event_types(app, f["id"]) == ["accepted", "failed"]

    # the sweep does it once
    assert await sweep(app) == 0
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    # and the merchant can no longer complete it
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 409, r.text


@pytest.mark.parametrize(
    ("advance", "expired"),
    [
        # a day in: well inside the 2-day limit
        (1 * DAY, False),
        # an hour short of two days: still inside
        (2 * DAY - timedelta(hours=1), False),
        # a minute past two days: expired, five days before the default would have said so
        (2 * DAY + timedelta(minutes=1), True),
    ],
)
async def test_the_sites_own_timeout(app: TestApp, advance: timedelta, expired: bool) -> None:
    keys = await seed(app, fulfillment_timeout_days=2)
    f = await accept(app, keys)
    app.clock.advance(advance)

    assert await sweep(app) == int(expired)

    got = await retrieve(app, keys, f["id"])
    if expired:
        assert got["status"] == "failed"
        assert got["error"]["code"] == "fulfillment_expired"
        assert "2 days" in got["error"]["message"]
        assert await event_types(app, f["id"]) == ["accepted", "failed"]
    else:
        assert got["status"] == "in_progress"
        assert await event_types(app, f["id"]) == ["accepted"]


@pytest.mark.parametrize(
    "option",
    [
        # the merchant never reported on the webhook
        "gift",
        # nor on the email
        "call",
    ],
)
async def test_every_merchant_driven_type_expires(app: TestApp, option: str) -> None:
    keys = await seed(app)
    f = await accept(app, keys, option)
    app.clock.advance(7 * DAY + timedelta(minutes=1))
    assert await sweep(app) >= 1
    got = await retrieve(app, keys, f["id"])
    assert (got["status"], got["error"]["code"]) == ("failed", "fulfillment_expired")


async def test_only_what_is_still_in_progress_expires(app: TestApp) -> None:
    keys = await seed(app)
    completed = await accept(app, keys)
    failed = await accept(app, keys)
    waiting = await accept(app, keys)
    for f, body in (
        (completed, {"status": "completed"}),
        (failed, {"status": "failed", "failure_reason": "no agent free"}),
    ):
        r = await app.post(f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], **body})
        assert r.status_code == 200, r.text
    app.clock.advance(8 * DAY)

    assert await sweep(app) == 1

    assert (await retrieve(app, keys, completed["id"]))["status"] == "completed"
    kept = await retrieve(app, keys, failed["id"])
    assert kept["error"]["code"] == "external_fulfillment_failed"
    assert (await retrieve(app, keys, waiting["id"]))["error"]["code"] == "fulfillment_expired"


async def test_an_expired_billing_update_is_not_applied_afterwards(app: TestApp) -> None:
    keys = await seed(app)
    (before,) = await app.fetch("SELECT * FROM subscriptions WHERE id = 'sub_1'")
    f = await accept(app, keys, "discount")
    # no worker ran for eight days; the sweep fails it first
    app.clock.advance(8 * DAY)
    assert await sweep(app) == 1

    # the job, when it finally runs, finds the fulfillment final and changes nothing
    assert await build_worker(app.services).run_once() == 1

    got = await retrieve(app, keys, f["id"])
    assert (got["status"], got["error"]["code"]) == ("failed", "fulfillment_expired")
    assert await event_types(app, f["id"]) == ["accepted", "failed"]
    assert await app.fetch("SELECT * FROM subscriptions WHERE id = 'sub_1'") == [before]
    assert await app.fetch("SELECT * FROM subscription_changes") == []
    assert await app.fetch("SELECT * FROM jobs") == []


async def test_the_sweep_runs_through_the_worker_periodics(app: TestApp) -> None:
    # the sweep is registered with the worker under its name, not only importable
    worker = build_worker(app.services)
    assert "expire_fulfillments" in {p.name for p in worker.periodic}
