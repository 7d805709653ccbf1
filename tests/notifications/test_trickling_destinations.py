"""Destinations that answer a byte at a time (issue 10, item 2): each attempt is bounded as a
whole, billing_update fulfillments complete while deliveries to such hosts are under way
(deliveries have slots of their own), and one host gets at most its share of the delivery slots.

Before: the client's timeout applied to each read, so a destination trickling a byte every
0.2 s held its worker slot for as long as it trickled; with the trickling deliveries queued
first, they took every slot and no billing_update ran (the hang guard below fails the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from offerd.queue.runtime import build_worker
from tests.fault.harness import Api, add_subscribers, in_progress
from tests.notifications.flows import (
    advance_to,
    delivery,
    notifications,
    put_channel,
    report,
    send_job,
    work,
)
from tests.support.app import running_app
from tests.support.catalog import seed
from tests.support.receiver import Receiver
from tests.support.trickle import Trickle

DEADLINE = 1.5
PER_HOST = 2
HANG_GUARD = 90.0  # fails the test, never measures


@pytest.fixture
def trickles() -> Iterator[list[Trickle]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Trickle(f"127.0.0.{n}")) for n in (2, 3, 4)]


async def test_trickling_destinations_do_not_stop_billing_updates(
    db_url: str, trickles: list[Trickle]
) -> None:
    async with running_app(
        db_url,
        worker_concurrency=2,
        delivery_concurrency=4,
        delivery_per_host_concurrency=PER_HOST,
        delivery_deadline_seconds=DEADLINE,
    ) as app:
        keys = await seed(app)
        for n, slow in enumerate(trickles):
            for m in range(2):
                await put_channel(
                    app,
                    f"slow-{n}-{m}",
                    {"type": "webhook", "url": slow.url + "/hook", "event_types": ["offer_viewed"]},
                )
        for _ in range(3):  # 3 events x 6 channels: 18 deliveries, queued before the billing jobs
            await report(app, keys, "viewed")
        subscribers = await add_subscribers(app, "t", 4)
        api = Api(app, keys["full_access"])
        fulfillment_ids = await api.accept_all(subscribers, parallel=2)

        worker = build_worker(app.services)
        running = asyncio.create_task(worker.run())
        try:
            deadline = time.monotonic() + HANG_GUARD
            while await in_progress(app) > 0:
                assert not running.done(), running
                assert time.monotonic() < deadline, (
                    f"billing_update fulfillments still in progress; trickles accepted "
                    f"{[t.accepted for t in trickles]} connections"
                )
                await asyncio.sleep(0.05)
            # the trickling deliveries were under way meanwhile, and are still being tried
            assert sum(t.accepted for t in trickles) > 0
            while not await app.fetch("SELECT 1 FROM delivery_attempts LIMIT 1"):
                assert time.monotonic() < deadline, "no delivery attempt ended"
                await asyncio.sleep(0.05)
        finally:
            worker.stop()
            await asyncio.wait_for(running, timeout=HANG_GUARD)

        statuses = await app.fetch(
            "SELECT status, count(*) AS n FROM offer_fulfillments GROUP BY status"
        )
        assert statuses == [{"status": "completed", "n": len(fulfillment_ids)}]

        # a trickling attempt ends, failed, at the deadline; its retry is scheduled
        attempt, *_ = await app.fetch(
            "SELECT delivery_id, status_code, latency_ms, error FROM delivery_attempts ORDER BY id"
        )
        assert attempt["status_code"] is None
        assert attempt["error"] == (
            f"no complete answer within {DEADLINE:g} s (connect, send and read together)"
        )
        assert attempt["latency_ms"] == int(DEADLINE * 1000)
        (delivery,) = await app.fetch(
            "SELECT status, attempts FROM deliveries WHERE id = %s", attempt["delivery_id"]
        )
        assert delivery == {"status": "pending", "attempts": 1}
        (job,) = await app.fetch(
            "SELECT status, locked_by, run_at > now() AS later FROM jobs "
            "WHERE payload->>'delivery_id' = %s",
            attempt["delivery_id"],
        )
        assert job == {"status": "queued", "locked_by": None, "later": True}


async def test_a_host_with_every_slot_taken_waits_in_the_queue_not_in_a_slot(
    db_url: str, receiver: Receiver
) -> None:
    """Its delivery is deferred (no attempt made or counted) and goes out once a slot is free."""
    async with running_app(db_url, delivery_per_host_concurrency=PER_HOST) as app:
        keys = await seed(app)
        await put_channel(
            app,
            "hook",
            {"type": "webhook", "url": receiver.url_for("/h"), "event_types": ["offer_viewed"]},
        )
        await report(app, keys, "viewed")
        slots = app.services.delivery_hosts
        for _ in range(PER_HOST):  # two deliveries to 127.0.0.1 are under way
            assert slots.take("127.0.0.1")
        assert await work(app) == 0  # deferred: the drain stops rather than spin on it
        assert receiver.requests == []
        (d,) = await notifications(app)
        assert (d["status"], d["attempts"]) == ("pending", 0)
        job = await send_job(app, d["id"])
        assert job is not None and job["attempts"] == 0 and job["locked_by"] is None
        assert await work(app) == 0  # still deferred while the slots are taken

        slots.give("127.0.0.1")
        advance_to(app, job["run_at"])
        assert await work(app) == 1
        assert len(receiver.requests) == 1
        assert (await delivery(app, d["id"]))["status"] == "succeeded"
        assert slots.busy == {"127.0.0.1": PER_HOST - 1}  # its own slot was given back
