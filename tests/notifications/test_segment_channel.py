"""Segment channels against a real HTTP receiver standing in for Segment's HTTP Tracking API:
Track calls through ``/v1/batch`` with the write key as Basic auth, the named events, several
pending deliveries of a channel going out in one batch, and an event over Segment's 32 KB limit
failing alone without holding back the others."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.notifications.flows import (
    ALL_TYPES,
    accept,
    advance_to,
    attempts_of,
    delivery,
    gap_to_next_attempt,
    notifications,
    put_channel,
    report,
    send_job,
    send_jobs,
    update,
    within_jitter,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import seed
from tests.support.receiver import Receiver, Reply

WRITE_KEY = "wk_test_5eGm3nT"

NAMES = {
    "accepted": "Offer Accepted",
    "fulfilled": "Offer Fulfilled",
    "failed": "Offer Fulfillment Failed",
    "viewed": "Offer Viewed",
    "dismissed": "Offer Dismissed",
}


async def segment(
    app: TestApp, receiver: Receiver, event_types: list[str] | None = None
) -> dict[str, str]:
    keys = await seed(app)
    await put_channel(
        app,
        "analytics",
        {
            "type": "segment",
            "write_key": WRITE_KEY,
            "endpoint": receiver.url,
            "event_types": event_types or ALL_TYPES,
        },
    )
    return keys


def tracks(receiver: Receiver) -> list[dict[str, Any]]:
    """Every Track call received, in the order the batches arrived."""
    out = []
    for request in receiver.received("POST", "/v1/batch"):
        out.extend(request.json()["batch"])
    return out


async def test_track_calls_through_v1_batch(app: TestApp, receiver: Receiver) -> None:
    keys = await segment(app, receiver)
    await report(app, keys, "viewed")
    await report(app, keys, "dismissed")
    completed = await accept(app, keys)
    await update(app, keys, completed["id"], "completed")
    failed = await accept(app, keys)
    await update(app, keys, failed["id"], "failed")
    await work(app)

    events = {e["id"]: e for e in await app.fetch("SELECT * FROM offer_events")}
    assert len(events) == 6
    requests = receiver.received()
    assert requests and all(r.path == "/v1/batch" and r.method == "POST" for r in requests)
    for request in requests:
        assert (
            request.headers["authorization"]
            == "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        )
        assert request.headers["content-type"] == "application/json"
        body = request.json()
        assert isinstance(body["sentAt"], str)
    sent = tracks(receiver)
    assert sorted(t["messageId"] for t in sent) == sorted(events)  # each event, once
    fulfillments = {completed["id"]: completed, failed["id"]: failed}
    for track in sent:
        event = events[track["messageId"]]
        assert track["type"] == "track"
        assert track["event"] == NAMES[event["type"]]
        assert track["userId"] == "cus_1"
        when = datetime.fromisoformat(track["timestamp"].replace("Z", "+00:00"))
        assert when.tzinfo is not None
        assert abs(when - event["occurred_at"].astimezone(UTC)).total_seconds() < 1
        props = track["properties"]
        assert props["offer_id"] == "stay"
        assert props["personalized_offer_id"] == event["personalized_offer_id"]
        assert props["subscription_id"] == "sub_1"
        if event["fulfillment_id"] is None:
            assert props.get("fulfillment_id") is None
        else:
            assert props["fulfillment_id"] in fulfillments
            assert props["option_id"] == "talk"
            assert props["processing_type"] == "url_redirect"
    statuses = {d["status"] for d in await notifications(app)}
    assert statuses == {"succeeded"}
    assert await send_jobs(app) == []


async def test_pending_deliveries_of_a_channel_go_in_one_batch(
    app: TestApp, receiver: Receiver
) -> None:
    keys = await segment(app, receiver, ["offer_viewed"])
    for _ in range(5):
        await report(app, keys, "viewed")
    pending = await notifications(app)
    assert [d["status"] for d in pending] == ["pending"] * 5

    await work(app)
    calls = receiver.received("POST", "/v1/batch")
    sizes = [len(r.json()["batch"]) for r in calls]
    assert len(calls) == 1, f"one call for the five pending deliveries, got batches of {sizes}"
    batch = calls[0].json()["batch"]
    assert sorted(t["messageId"] for t in batch) == sorted(d["event_id"] for d in pending)
    for d in await notifications(app):
        assert (d["status"], d["attempts"]) == ("succeeded", 1)
        assert len(await attempts_of(app, d["id"])) == 1
    assert await send_jobs(app) == []


async def inflate(app: TestApp, delivery_id: str, chars: int) -> None:
    """Make a delivery's stored event render to a Track call of about ``chars`` bytes. Through
    the API no Track call gets near Segment's limits: it carries ids, not texts."""
    await app.fetch(
        "UPDATE deliveries SET payload = jsonb_set(payload,"
        " '{content,personalized_offer,offer_id}', to_jsonb(repeat('x', %s)))"
        " WHERE id = %s RETURNING id",
        chars,
        delivery_id,
    )


# The default worker claims every due job at once; a worker with one slot leaves the channel's
# other deliveries for the first one to take along: both ways must keep Segment's limits.
CONCURRENCY = pytest.mark.parametrize("concurrency", [1, 32], ids=["one-slot", "32-slots"])


@CONCURRENCY
async def test_an_event_over_32_kb_fails_alone(
    db_url: str, receiver: Receiver, concurrency: int
) -> None:
    async with running_app(db_url, worker_concurrency=concurrency) as app:
        keys = await segment(app, receiver, ["offer_viewed"])
        for _ in range(3):
            await report(app, keys, "viewed")
        small_1, huge, small_2 = await notifications(app)
        await inflate(app, huge["id"], 40_000)
        await work(app)

        huge = await delivery(app, huge["id"])
        assert huge["status"] == "failed"
        assert "32 KB" in huge["last_error"]
        assert await send_job(app, huge["id"]) is None
        sent = tracks(receiver)
        assert sorted(t["messageId"] for t in sent) == sorted(
            [small_1["event_id"], small_2["event_id"]]
        )
        for d in (small_1, small_2):
            assert (await delivery(app, d["id"]))["status"] == "succeeded"
        assert all(len(r.body) < 32 * 1024 for r in receiver.requests)
        assert await send_jobs(app) == []


@CONCURRENCY
async def test_batches_stay_under_500_kb(db_url: str, receiver: Receiver, concurrency: int) -> None:
    async with running_app(db_url, worker_concurrency=concurrency) as app:
        keys = await segment(app, receiver, ["offer_viewed"])
        for _ in range(20):
            await report(app, keys, "viewed")
        pending = await notifications(app)
        for d in pending:
            await inflate(app, d["id"], 30_000)  # each under 32 KB, together over 500 KB
        await work(app)

        sizes = [len(r.body) for r in receiver.received("POST", "/v1/batch")]
        assert len(sizes) >= 2 and max(sizes) <= 500 * 1024, sizes
        sent = tracks(receiver)
        assert sorted(t["messageId"] for t in sent) == sorted(d["event_id"] for d in pending)
        assert {d["status"] for d in await notifications(app)} == {"succeeded"}
        assert await send_jobs(app) == []


@pytest.mark.parametrize(
    ("reply", "status", "gap"),
    [
        (Reply(429, {"retry-after": "45"}), "pending", 45.0),
        (Reply(500), "pending", 120.0),
        (Reply(400, body={"success": False}), "failed", None),
        (Reply(401), "failed", None),
    ],
    ids=["429", "500", "400", "401"],
)
async def test_failures(
    app: TestApp, receiver: Receiver, reply: Reply, status: str, gap: float | None
) -> None:
    keys = await segment(app, receiver, ["offer_viewed"])
    receiver.respond_with(reply)
    await report(app, keys, "viewed")
    await work(app)
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"]) == (status, reply.status)
    if gap is None:
        assert await send_job(app, d["id"]) is None
        return
    waited = await gap_to_next_attempt(app, d["id"])
    if reply.status == 429:
        assert gap <= waited <= gap + 5, waited
    else:
        assert within_jitter(waited, gap), waited
    advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
    await work(app)
    assert (await delivery(app, d["id"]))["status"] == "succeeded"
    (first, second) = receiver.requests
    assert first.json()["batch"] == second.json()["batch"]
