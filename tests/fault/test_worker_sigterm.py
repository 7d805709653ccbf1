"""SIGTERM (what a deploy or ``docker stop`` sends): the worker stops claiming, finishes or releases
what it holds, and exits 0. No job stays locked by the stopped worker, none is lost, and the
next worker completes the rest exactly once."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tests.fault.harness import (
    REPORT,
    Api,
    Workers,
    add_subscribers,
    assert_each_applied_exactly_once,
    fetch,
    in_progress,
    scaled,
    timeout_mark,
    wait_until_final,
)
from tests.support.app import TestApp
from tests.support.catalog import seed

pytestmark = [pytest.mark.fault, timeout_mark(300)]


async def test_sigterm_finishes_or_releases_claimed_jobs_and_exits_0(
    app: TestApp, workers: Workers
) -> None:
    keys = await seed(app)
    subscribers = await add_subscribers(app, "t", scaled(300))
    api = Api(app, keys["full_access"])
    ids = await api.accept_all(subscribers)

    # A long lease: the drain (up to lease/2) has room to finish what is in flight.
    w = workers.start(lease=10.0, idle_poll=0.5, concurrency=16)
    await w.wait_started()
    held: set[int] = set()
    deadline = time.monotonic() + 120
    while not held:  # stop it while it holds jobs
        assert w.alive() and time.monotonic() < deadline, w.tail()
        assert await in_progress(app) > 0, "the worker finished everything before the signal"
        rows = await fetch(app, "SELECT id FROM jobs WHERE locked_by = %s", w.worker_id)
        held = {r["id"] for r in rows}
    rc = await w.terminate()

    assert rc == 0, w.tail()
    assert w.events("worker.stop"), w.tail()
    locked = await fetch(
        app, "SELECT id, locked_by, locked_until FROM jobs WHERE locked_by IS NOT NULL"
    )
    assert locked == [], f"jobs still locked after a clean stop: {locked}\n{w.tail()}"
    # Nothing lost: each fulfillment still in progress has its job, waiting in the queue.
    waiting = await fetch(
        app,
        "SELECT f.id, count(j.id) AS jobs FROM offer_fulfillments f "
        "LEFT JOIN jobs j ON j.payload->>'fulfillment_id' = f.id "
        "WHERE f.status = 'in_progress' GROUP BY f.id",
    )
    assert all(r["jobs"] == 1 for r in waiting), [r for r in waiting if r["jobs"] != 1][:5]
    done_at_stop = len(ids) - len(waiting)
    held_left = await fetch(app, "SELECT id FROM jobs WHERE id = ANY(%s)", list(held))
    REPORT.append(
        f"SIGTERM: exit {rc}; {len(held)} jobs held at the signal, {len(held) - len(held_left)} "
        f"of them finished, {len(held_left)} released; {done_at_stop}/{len(ids)} done at the stop"
    )

    successor = workers.start(lease=10.0, idle_poll=0.5, concurrency=16)
    await successor.wait_started()
    await wait_until_final(app, workers, timeout=180, alive=[successor])
    await assert_each_applied_exactly_once(app, ids, [s for _, s in subscribers])
    # Idle, it stops just as cleanly.
    assert await successor.terminate() == 0, successor.tail()


async def test_sigterm_releases_a_job_it_cannot_finish_in_time(
    app: TestApp, workers: Workers, db_url: str
) -> None:
    """A job stuck past the drain (here: waiting for a subscription row another transaction
    holds) is cancelled and handed back unlocked, with nothing applied; the next worker does it."""
    keys = await seed(app)
    ((customer_id, subscription_id),) = await add_subscribers(app, "s", 1)
    api = Api(app, keys["full_access"])
    fulfillment_id = await api.accept_discount(customer_id, subscription_id)

    blocker = await psycopg.AsyncConnection.connect(db_url)
    try:
        await blocker.execute(
            "SELECT 1 FROM subscriptions WHERE id = %s FOR UPDATE", [subscription_id]
        )
        w = workers.start(lease=4.0, idle_poll=0.5, concurrency=4)
        await w.wait_started()
        deadline = time.monotonic() + 120
        while not await fetch(
            app,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            w.app_name,
        ):  # the job is claimed and waits for the row
            assert w.alive() and time.monotonic() < deadline, w.tail()
            await asyncio.sleep(0.05)
        (job,) = await fetch(app, "SELECT id, locked_by FROM jobs")
        assert job["locked_by"] == w.worker_id

        rc = await w.terminate()

        assert rc == 0, w.tail()
        assert w.events("worker.released"), w.tail()
        (job,) = await fetch(app, "SELECT id, locked_by, locked_until FROM jobs")
        assert job["locked_by"] is None and job["locked_until"] is None, (job, w.tail())
        assert await in_progress(app) == 1
        assert await fetch(app, "SELECT id FROM subscription_changes") == []
    finally:
        await blocker.rollback()
        await blocker.close()

    successor = workers.start(lease=4.0, idle_poll=0.5, concurrency=4)
    await successor.wait_started()
    await wait_until_final(app, workers, timeout=120, alive=[successor])
    await assert_each_applied_exactly_once(app, [fulfillment_id], [subscription_id])
    assert await successor.terminate() == 0, successor.tail()


async def test_sigterm_releases_a_job_whose_connection_was_lost(
    app: TestApp, workers: Workers, db_url: str
) -> None:
    """A job whose database session died (here: terminated by an administrator while it waited for
    a row) is set aside to be released; a SIGTERM that comes before the worker got round to it
    must still hand it back, not leave it locked until its lease runs out."""
    keys = await seed(app)
    ((customer_id, subscription_id),) = await add_subscribers(app, "d", 1)
    api = Api(app, keys["full_access"])
    fulfillment_id = await api.accept_discount(customer_id, subscription_id)

    blocker = await psycopg.AsyncConnection.connect(db_url)
    try:
        await blocker.execute(
            "SELECT 1 FROM subscriptions WHERE id = %s FOR UPDATE", [subscription_id]
        )
        # The default lease and poll (30 s, 5 s).
        w = workers.start(lease=30.0, idle_poll=5.0, concurrency=4)
        await w.wait_started()
        deadline = time.monotonic() + 120
        while not (
            waiting := await fetch(
                app,
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'",
                w.app_name,
            )
        ):
            assert w.alive() and time.monotonic() < deadline, w.tail()
            await asyncio.sleep(0.05)
        await fetch(app, "SELECT pg_terminate_backend(%s)", waiting[0]["pid"])
        while not w.events("job.db_unavailable"):
            assert w.alive() and time.monotonic() < deadline, w.tail()
            await asyncio.sleep(0.05)

        rc = await w.terminate()

        assert rc == 0, w.tail()
        (job,) = await fetch(app, "SELECT id, locked_by, locked_until FROM jobs")
        assert job["locked_by"] is None, (
            f"the stopped worker left its job locked: {job}\n{w.tail()}"
        )
    finally:
        await blocker.rollback()
        await blocker.close()

    successor = workers.start(lease=4.0, idle_poll=0.5, concurrency=4)
    await successor.wait_started()
    await wait_until_final(app, workers, timeout=120, alive=[successor])
    await assert_each_applied_exactly_once(app, [fulfillment_id], [subscription_id])
    assert await successor.terminate() == 0, successor.tail()
