"""Webhook channels against a real HTTP receiver on 127.0.0.1: the Chargebee-style event, Standard
Webhooks signatures (verified with the ``standardwebhooks`` package), Basic auth, and delivery
over time on the injected clock: Chargebee's retry schedule with jitter, a 410 stopping, a 3xx
failing, a receiver that is down for a while, and the channel disabled after 5 failing days."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.notifications.flows import (
    SCHEDULE,
    PinnedReceiver,
    accept,
    advance_to,
    attempts_of,
    basic,
    delivery,
    free_port,
    gap_to_next_attempt,
    get_channel,
    notifications,
    put_channel,
    report,
    send_job,
    send_jobs,
    update,
    verified,
    within_jitter,
    work,
)
from tests.support.app import TestApp
from tests.support.catalog import seed
from tests.support.receiver import Receiver, Reply

DAY = timedelta(days=1)


async def hook(
    app: TestApp, url: str, event_types: list[str] | None = None, **extra: Any
) -> tuple[dict[str, str], str]:
    """Seed the site and add webhook channel ``hooks``; returns the keys and its secret."""
    keys = await seed(app)
    body: dict[str, Any] = {"type": "webhook", "url": url, **extra}
    if event_types is not None:
        body["event_types"] = event_types
    created = await put_channel(app, "hooks", body)
    return keys, created.get("secret") or extra["secret"]


# --- what is sent ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "source", "fulfillment_status"),
    [
        ("offer_accepted", "api", "in_progress"),
        ("offer_fulfillment_completed", None, "completed"),
        ("offer_fulfillment_failed", None, "failed"),
        ("offer_viewed", "api", None),
        ("offer_dismissed", "api", None),
    ],
)
async def test_the_event_and_its_signature(
    app: TestApp,
    receiver: Receiver,
    event_type: str,
    source: str | None,
    fulfillment_status: str | None,
) -> None:
    keys, secret = await hook(app, receiver.url_for("/offers/events"), [event_type])
    fulfillment_id = None
    if event_type in ("offer_viewed", "offer_dismissed"):
        po_id = await report(app, keys, event_type.removeprefix("offer_"))
        (logged,) = await app.fetch(
            "SELECT id FROM offer_events WHERE personalized_offer_id = %s", po_id
        )
    else:
        f = await accept(app, keys)
        fulfillment_id, po_id = f["id"], f["personalized_offer_id"]
        if event_type != "offer_accepted":
            await update(app, keys, f["id"], fulfillment_status or "")
        kind = {"offer_accepted": "accepted", "offer_fulfillment_completed": "fulfilled"}.get(
            event_type, "failed"
        )
        (logged,) = await app.fetch(
            "SELECT id FROM offer_events WHERE fulfillment_id = %s AND type = %s", f["id"], kind
        )
    assert await work(app) == 1

    request = receiver.only()
    assert request.method == "POST"
    assert request.path == "/offers/events"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # no Basic auth configured
    event = verified(secret, request)
    assert event["id"] == logged["id"] == request.headers["webhook-id"]
    assert event["id"].startswith("ev_")
    assert event["object"] == "event"
    assert event["api_version"] == "v2"
    assert event["event_type"] == event_type
    assert isinstance(event["occurred_at"], int)
    assert abs(event["occurred_at"] - int(request.headers["webhook-timestamp"])) <= 60
    if source is not None:
        assert event["source"] == source
    else:
        assert event["source"] in ("api", "system")
    po = event["content"]["personalized_offer"]
    assert po["id"] == po_id
    assert po["object"] == "personalized_offer"
    assert po["offer_id"] == "stay"
    assert po["content"]["title"] == "Before you go"
    if fulfillment_status is None:
        assert "offer_fulfillment" not in event["content"]
    else:
        f_sent = event["content"]["offer_fulfillment"]
        assert f_sent["id"] == fulfillment_id
        assert f_sent["object"] == "offer_fulfillment"
        assert f_sent["status"] == fulfillment_status
        assert f_sent["option_id"] == "talk"
        assert f_sent["processing_type"] == "url_redirect"
        if fulfillment_status == "failed":
            assert f_sent["error"]["message"] == "the customer changed their mind"

    (d,) = await notifications(app)
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("succeeded", 1, 200)
    assert d["event_id"] == event["id"]
    assert await send_jobs(app) == []


async def test_basic_auth_is_sent(app: TestApp, receiver: Receiver) -> None:
    keys, secret = await hook(
        app,
        receiver.url_for("/hook"),
        ["offer_viewed"],
        basic_auth={"username": "acme-hooks", "password": "p@ss:word é"},
    )
    await report(app, keys, "viewed")
    await work(app)
    request = receiver.only()
    assert request.headers["authorization"] == basic("acme-hooks", "p@ss:word é")
    verified(secret, request)


async def test_each_subscribed_channel_gets_its_own_signed_copy(
    app: TestApp, receiver: Receiver
) -> None:
    keys = await seed(app)
    one = (await put_channel(app, "one", {"type": "webhook", "url": receiver.url_for("/one")}))[
        "secret"
    ]
    two = (await put_channel(app, "two", {"type": "webhook", "url": receiver.url_for("/two")}))[
        "secret"
    ]
    await put_channel(
        app,
        "viewers",
        {"type": "webhook", "url": receiver.url_for("/v"), "event_types": ["offer_viewed"]},
    )
    f = await accept(app, keys)
    await update(app, keys, f["id"])
    assert await work(app) == 2
    (to_one,) = receiver.received("POST", "/one")
    (to_two,) = receiver.received("POST", "/two")
    assert receiver.received(path="/v") == []
    assert verified(one, to_one) == verified(two, to_two)
    assert to_one.headers["webhook-id"] == to_two.headers["webhook-id"]
    assert to_one.headers["webhook-signature"] != to_two.headers["webhook-signature"]


@pytest.mark.parametrize("status", [200, 202, 204, 299])
async def test_any_2xx_is_success(app: TestApp, receiver: Receiver, status: int) -> None:
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.respond_with(status)
    await report(app, keys, "viewed")
    await work(app)
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"], d["attempts"]) == ("succeeded", status, 1)
    assert await send_jobs(app) == []


# --- retries on the injected clock -----------------------------------------------------------


async def test_retry_waits_for_the_schedule(app: TestApp, receiver: Receiver) -> None:
    keys, secret = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.respond_with(Reply(503, body="maintenance"))
    await report(app, keys, "viewed")
    assert await work(app) == 1
    (d,) = await notifications(app)
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("pending", 1, 503)
    gap = await gap_to_next_attempt(app, d["id"])
    assert within_jitter(gap, 120), gap

    # not due before 2 minutes less the jitter
    app.clock.advance(100)
    assert await work(app) == 0
    assert len(receiver.requests) == 1
    # due after 2 minutes plus the jitter
    app.clock.advance(33)
    assert await work(app) == 1
    first, second = receiver.requests
    assert verified(secret, first) == verified(secret, second)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == d["event_id"]
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) >= 133

    d = await delivery(app, d["id"])
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("succeeded", 2, 200)
    assert [a["status_code"] for a in await attempts_of(app, d["id"])] == [503, 200]
    assert await send_job(app, d["id"]) is None


async def test_the_whole_schedule_then_give_up(app: TestApp, receiver: Receiver) -> None:
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.always(500)
    await report(app, keys, "viewed")
    assert await work(app) == 1
    (d,) = await notifications(app)
    for n, base in enumerate(SCHEDULE, start=1):
        gap = await gap_to_next_attempt(app, d["id"])
        assert within_jitter(gap, base), (n, gap, base)
        app.clock.advance(gap * 0.85)  # well before it is due
        assert await work(app) == 0, n
        job = await send_job(app, d["id"])
        assert job is not None
        advance_to(app, job["run_at"])
        assert await work(app) == 1, n
        assert len(receiver.requests) == n + 1

    # 1 + 7 retries, then it stops for good
    d = await delivery(app, d["id"])
    assert d["status"] == "failed"
    assert d["attempts"] == 1 + len(SCHEDULE)
    assert [a["status_code"] for a in await attempts_of(app, d["id"])] == [500] * 8
    kept = await send_job(app, d["id"])  # kept as failed for an admin, never claimed again
    assert kept is not None and (kept["status"], kept["locked_by"]) == ("failed", None)
    app.clock.advance(30 * DAY)
    assert await work(app) == 0
    assert len(receiver.requests) == 8
    # about 3 days 7 hours of failures is not 5 days: the channel stays on
    assert (await get_channel(app, "hooks"))["enabled"] is True
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


async def test_410_stops_retries(app: TestApp, receiver: Receiver) -> None:
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.respond_with(Reply(410, body="gone"))
    await report(app, keys, "viewed")
    assert await work(app) == 1
    (d,) = await notifications(app)
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("failed", 1, 410)
    assert await send_job(app, d["id"]) is None
    app.clock.advance(3 * DAY)
    assert await work(app) == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_failure_and_is_not_followed(
    app: TestApp, receiver: Receiver, status: int
) -> None:
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.respond_with(Reply(status, {"location": receiver.url_for("/moved")}))
    await report(app, keys, "viewed")
    assert await work(app) == 1
    assert [r.path for r in receiver.requests] == ["/hook"]
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"]) == ("pending", status)
    assert "redirect" in d["last_error"]
    assert within_jitter(await gap_to_next_attempt(app, d["id"]), 120)
    # the retry goes to the configured URL again, not to the Location
    advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
    assert await work(app) == 1
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
    assert (await delivery(app, d["id"]))["status"] == "succeeded"


async def test_a_receiver_down_for_a_while_gets_it_when_back(app: TestApp) -> None:
    down = PinnedReceiver(free_port()).start()
    try:
        keys, secret = await hook(app, down.url_for("/hook"), ["offer_accepted"])
        down.respond_with(Reply(502, body="bad gateway"))
        f = await accept(app, keys)
        assert await work(app) == 1  # a 502 from the proxy in front of it
        down.stop()  # then nothing listens at all
        (d,) = await notifications(app)
        for _ in range(2):
            advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
            assert await work(app) == 1
        assert (await delivery(app, d["id"]))["status"] == "pending"
        down.start()  # back up, at the same address
        advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
        assert await work(app) == 1
    finally:
        down.stop()

    first, last = down.requests
    event = verified(secret, last, app.clock.now())
    assert verified(secret, first, app.clock.now()) == event
    assert first.headers["webhook-id"] == last.headers["webhook-id"] == event["id"]
    assert event["id"] == d["event_id"]
    assert event["content"]["offer_fulfillment"]["id"] == f["id"]
    assert first.headers["webhook-timestamp"] != last.headers["webhook-timestamp"]
    d = await delivery(app, d["id"])
    assert (d["status"], d["attempts"]) == ("succeeded", 4)
    attempts = await attempts_of(app, d["id"])
    assert [a["status_code"] for a in attempts] == [502, None, None, 200]
    assert all(a["error"] for a in attempts[1:3])
    assert attempts[0]["response_excerpt"] == "bad gateway"


# --- disabling a failing endpoint ------------------------------------------------------------


async def test_an_endpoint_failing_for_5_days_is_disabled(app: TestApp, receiver: Receiver) -> None:
    keys, secret = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.always(500)
    # failures at day 0, 2 and 4 (with their retries in between): still on
    for _ in range(3):
        await report(app, keys, "viewed")
        await work(app)
        assert (await get_channel(app, "hooks"))["enabled"] is True
        app.clock.advance(2 * DAY)
    # day 6: failing since day 0
    await report(app, keys, "viewed")
    await work(app)
    channel = await get_channel(app, "hooks")
    assert channel["enabled"] is False
    assert "5 days" in channel["disabled_reason"]

    # no new deliveries while disabled, and the pending ones are not sent any more
    requests = len(receiver.requests)
    await report(app, keys, "viewed")
    assert len(await notifications(app)) == 4
    app.clock.advance(3 * DAY)
    await work(app)
    assert len(receiver.requests) == requests
    statuses = {d["status"] for d in await notifications(app)}
    assert statuses == {"failed"}
    assert await send_jobs(app) == []

    # a PUT turns it back on, with its secret
    receiver.always(200)
    again = await put_channel(app, "hooks", {"type": "webhook", "url": receiver.url_for("/hook")})
    assert (again["enabled"], again["disabled_reason"]) == (True, None)
    assert "secret" not in again
    await put_channel(
        app,
        "hooks",
        {"type": "webhook", "url": receiver.url_for("/hook"), "event_types": ["offer_viewed"]},
    )
    await report(app, keys, "viewed")
    assert await work(app) == 1
    verified(secret, receiver.requests[-1], app.clock.now())
    assert (await notifications(app))[-1]["status"] == "succeeded"


async def test_a_success_resets_the_5_days(app: TestApp, receiver: Receiver) -> None:
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    receiver.always(500)
    for _ in range(2):  # failing on days 0 and 2
        await report(app, keys, "viewed")
        await work(app)
        app.clock.advance(2 * DAY)
    receiver.respond_with(200)  # day 4: one gets through
    await report(app, keys, "viewed")
    await work(app)
    for _ in range(2):  # failing again on days 6 and 8: 4 days since the success
        app.clock.advance(2 * DAY)
        await report(app, keys, "viewed")
        await work(app)
    assert (await get_channel(app, "hooks"))["enabled"] is True
    assert "succeeded" in {d["status"] for d in await notifications(app)}


async def test_no_connection_is_held_while_the_destination_answers(
    app: TestApp, receiver: Receiver
) -> None:
    """A slow receiver must not take the pool from the API and the other jobs: while three
    deliveries wait for their answers, none of them has a database connection."""
    keys, _ = await hook(app, receiver.url_for("/hook"), ["offer_viewed"])
    for _ in range(3):
        await report(app, keys, "viewed")
    arrived = threading.Semaphore(0)
    answer = threading.Event()

    def slow(request: Any) -> Reply:
        arrived.release()
        answer.wait(30)
        return Reply(200)

    receiver.always(slow)
    pool = app.services.db.pool
    running = asyncio.create_task(work(app))
    try:
        for _ in range(3):
            assert await asyncio.to_thread(arrived.acquire, True, 30)
        # the pool's own upkeep (a connection checked or replaced) can take one for a moment:
        # a delivery holding one would show in every sample
        in_use = []
        for _ in range(10):
            stats = pool.get_stats()
            in_use.append(stats["pool_size"] - stats["pool_available"])
            await asyncio.sleep(0.01)
        assert min(in_use) == 0, in_use
    finally:
        answer.set()
        assert await running == 3
    assert [d["status"] for d in await notifications(app)] == ["succeeded"] * 3
