"""kill -9 the worker again and again while it sends the webhook notifications of a burst of
fulfillment completions: every delivery is still made at least once and ends ``succeeded``, and
the receiver, deduplicating by ``webhook-id`` (the event id, as Standard Webhooks asks), counts
each completion exactly once.

Setup: url_redirect fulfillments accepted beforehand (no channel hears ``offer_accepted``), one
webhook channel subscribed to ``offer_fulfillment_completed`` pointing at a real HTTP receiver on
127.0.0.1, and real ``python -m offerd worker`` processes (lease 2 s,
``OFFERD_ALLOW_PRIVATE_DESTINATIONS=1``). The merchant's completions (``POST
/api/v2/offer_fulfillments/{id}``) then arrive in a burst while workers are started and
SIGKILLed: each worker is killed once the receiver has seen a random few of its requests, i.e.
while deliveries are going out. A worker killed after the receiver answered but before the
delivery was recorded leaves a job whose lease runs out; the next worker sends it again (a
duplicate the receiver recognises by its ``webhook-id``).

Size: 1,000 completions (the issue's number) and up to 15 kills, both times OFFERD_FAULT_SCALE
(about 2 minutes at 1 on two busy cores; the kills are what takes the time, a worker needs a
second or two to start). The seed of the kill schedule is printed and can be replayed with
OFFERD_FAULT_SEED.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from standardwebhooks.webhooks import Webhook

from tests.fault.harness import (
    ACCEPT,
    ASK,
    REPORT,
    SITE,
    Api,
    Workers,
    add_subscribers,
    fetch,
    scalar,
    scaled,
    timeout_mark,
)
from tests.fault.test_worker_killed import kill_and_count
from tests.support.app import TestApp
from tests.support.catalog import seed
from tests.support.receiver import Receiver, Recorded

pytestmark = [pytest.mark.fault, timeout_mark(600)]

LEASE = 2.0
IDLE_POLL = 0.5
CONCURRENCY = 16
PARALLEL = 8  # API requests in flight

T = TypeVar("T")


@dataclass(frozen=True)
class Kill:
    seen: int  # requests the receiver had from this worker when it was killed
    pending: int  # deliveries still pending just before the kill
    stranded: int  # send jobs the dead worker still held


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def signed(secret: str, request: Recorded, window: tuple[int, int]) -> dict[str, Any]:
    """The event, its Standard Webhooks signature checked with ``standardwebhooks``; its
    timestamp is checked against the test's run (the library's own check allows 5 minutes, less
    than a scaled-up run lasts)."""
    timestamp = int(request.headers["webhook-timestamp"])
    assert window[0] <= timestamp <= window[1], (timestamp, window)
    expected = Webhook(secret).sign(
        request.headers["webhook-id"], datetime.fromtimestamp(timestamp, UTC), request.text
    )
    assert expected in request.headers["webhook-signature"].split(" "), request.headers
    event: dict[str, Any] = json.loads(request.body)
    return event


def whole(request: Recorded) -> bool:
    return len(request.body) == int(request.headers.get("content-length", "-1"))


async def pending_deliveries(app: TestApp) -> int:
    n: int = await scalar(app, "SELECT count(*) FROM deliveries WHERE status = 'pending'")
    return n


async def accept_talk(api: Api, customer_id: str, subscription_id: str) -> str:
    r = await api.post(ASK, {"customer_id": customer_id, "subscription_id": subscription_id})
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    r = await api.post(ACCEPT, {"personalized_offer_id": po["id"], "option_id": "talk"})
    assert r.status_code == 202, r.text
    fulfillment_id: str = r.json()["offer_fulfillment"]["id"]
    return fulfillment_id


async def complete(api: Api, fulfillment_id: str) -> None:
    r = await api.post(f"{ACCEPT}/{fulfillment_id}", {"id": fulfillment_id, "status": "completed"})
    assert r.status_code == 200, r.text
    assert r.json()["offer_fulfillment"]["status"] == "completed", r.text


async def in_parallel(n: int, jobs: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``jobs`` with at most ``n`` in flight; their results in order."""
    gate = asyncio.Semaphore(n)

    async def one(job: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def test_kill_9_while_webhook_notifications_go_out(
    app: TestApp, workers: Workers, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = scaled(1000)
    seed_value = int(os.environ.get("OFFERD_FAULT_SEED", random.randrange(1 << 32)))
    replay = f"OFFERD_FAULT_SEED={seed_value}"
    rng = random.Random(seed_value)
    monkeypatch.setenv("OFFERD_ALLOW_PRIVATE_DESTINATIONS", "1")  # the receiver is on 127.0.0.1
    started_at, wall_started = time.monotonic(), time.time()

    keys = await seed(app)
    r = await app.admin(
        "PUT",
        f"/sites/{SITE}/notification_channels/hooks",
        {"type": "webhook", "url": receiver.url_for("/hook")},  # offer_fulfillment_completed
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert r.json()["event_types"] == ["offer_fulfillment_completed"]

    api = Api(app, keys["full_access"])
    subscribers = await add_subscribers(app, "n", n)
    fulfillment_ids = await in_parallel(PARALLEL, [accept_talk(api, c, s) for c, s in subscribers])
    assert len(set(fulfillment_ids)) == n
    assert await scalar(app, "SELECT count(*) FROM deliveries") == 0

    # The burst of completions, while workers are started and killed.
    burst = asyncio.create_task(in_parallel(PARALLEL, [complete(api, f) for f in fulfillment_ids]))
    max_kills = scaled(15)
    kill_phase_ends = time.monotonic() + 120 * max(1.0, n / 1000)
    kills: list[Kill] = []
    while len(kills) < max_kills and time.monotonic() < kill_phase_ends:
        if burst.done() and await pending_deliveries(app) == 0:
            break
        w = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
        await w.wait_started()
        before = len(receiver.requests)
        target = rng.randint(1, 3 * CONCURRENCY)
        guard = time.monotonic() + 60
        # kill it while it is sending: once the receiver has had a few of its requests
        while len(receiver.requests) - before < target:
            assert w.alive(), f"the worker died on its own\n{w.tail()}"
            if burst.done() and await pending_deliveries(app) == 0:
                break
            if time.monotonic() > guard:
                break  # nothing more coming its way: kill it anyway
            await asyncio.sleep(0.005)
        pending = await pending_deliveries(app)
        seen = len(receiver.requests) - before
        kills.append(Kill(seen, pending, await kill_and_count(app, w)))
    await burst  # every completion was taken (each with its event and delivery, or the test fails)

    # Finishing phase: one worker left alone until every delivery is final.
    last = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
    await last.wait_started()
    deadline = time.monotonic() + 300 * max(1.0, n / 1000)
    while (left := await pending_deliveries(app)) > 0:
        assert last.alive(), f"the worker died with {left} deliveries left\n{last.tail()}"
        if time.monotonic() > deadline:
            jobs = await fetch(app, "SELECT * FROM jobs ORDER BY id LIMIT 10")
            raise AssertionError(
                f"{left} deliveries still pending; jobs: {jobs}\n{workers.tails()}"
            )
        await asyncio.sleep(0.1)
    assert await last.terminate() == 0, last.tail()

    # The outcome: every completion's event delivered, each at least once.
    fulfilled = await fetch(
        app, "SELECT id, fulfillment_id FROM offer_events WHERE type = 'fulfilled'"
    )
    assert len(fulfilled) == n
    assert {e["fulfillment_id"] for e in fulfilled} == set(fulfillment_ids)
    event_ids = {e["id"] for e in fulfilled}

    deliveries = await fetch(app, "SELECT * FROM deliveries")
    assert len(deliveries) == n, "one delivery per completion"
    not_done = [d for d in deliveries if d["status"] != "succeeded"]
    assert not not_done, f"{len(not_done)} not succeeded, e.g. {not_done[:3]}"
    assert {d["event_id"] for d in deliveries} == event_ids
    assert {(d["channel_id"], d["event_type"]) for d in deliveries} == {
        ("hooks", "offer_fulfillment_completed")
    }
    assert await fetch(app, "SELECT id, kind, locked_by FROM jobs") == []

    # The receiver's view: deduplicated by webhook-id, exactly one per completion.
    # A worker killed in the middle of a request leaves the receiver a request cut short (its
    # body shorter than its content-length): no server would act on it, so neither does this one.
    requests = [r for r in receiver.received("POST", "/hook") if whole(r)]
    cut = len(receiver.received("POST", "/hook")) - len(requests)
    window = (int(wall_started) - 1, int(time.time()) + 1)
    for request in requests:
        event = signed(secret, request, window)
        assert event["id"] == request.headers["webhook-id"]
        assert event["event_type"] == "offer_fulfillment_completed"
    by_id = Counter(r.headers["webhook-id"] for r in requests)
    assert len(by_id) == n
    assert set(by_id) == event_ids
    duplicates = sum(c - 1 for c in by_id.values())

    with_work = [k for k in kills if k.pending > 0]
    stranded = sum(k.stranded for k in kills)
    REPORT.append(
        f"kill -9 during webhook notifications: n={n}, {len(kills)} kills ({len(with_work)} with "
        f"deliveries pending, {stranded} send jobs stranded), {len(requests)} requests for "
        f"{len(by_id)} events ({duplicates} duplicates, {cut} cut short), "
        f"{len(workers.started)} worker processes, {time.monotonic() - started_at:.0f} s, {replay}"
    )
    # The crash path was really taken: workers died while sending, holding claimed jobs.
    assert len(with_work) >= 3, (replay, kills)
    assert stranded > 0, (replay, kills)
