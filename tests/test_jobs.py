"""The job queue and the worker loop, against real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from offerd.common.clock import FrozenClock
from offerd.db import Database, execute, fetchall, fetchone, transaction
from offerd.queue import jobs
from offerd.queue.worker import Periodic, Worker, purge_idempotency_keys


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, min_size=1, max_size=10)
    await database.open()
    await execute_sql(database, "CREATE TABLE effects (job_id bigint, note text)")
    yield database
    await database.close()


async def execute_sql(db: Database, sql: str, *params: Any) -> None:
    async with db.connection() as conn:
        await execute(conn, sql, params or None)


async def rows(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        return [dict(r) for r in await fetchall(conn, sql, params or None)]


async def enqueue(db: Database, clock: FrozenClock, kind: str = "k", **payload: Any) -> int:
    async with db.connection() as conn:
        return await jobs.enqueue(conn, kind, payload, now=clock.now())


def worker(db: Database, clock: FrozenClock, *tasks: jobs.Task, **kw: Any) -> Worker:
    registry = jobs.Registry()
    for task in tasks:
        registry.add(task)
    return Worker(db, registry, clock, **{"concurrency": 4, "lease": 10.0, "idle_poll": 30.0, **kw})


async def record_effect(ctx: jobs.JobContext, db: Database, note: str = "done") -> None:
    async with db.connection() as conn, transaction(conn):
        await conn.execute("INSERT INTO effects VALUES (%s, %s)", (ctx.job.id, note))
        await ctx.finish(conn)


async def test_enqueue_rolls_back_with_its_transaction(db: Database) -> None:
    clock = FrozenClock()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.connection() as conn, transaction(conn):
            await jobs.enqueue(conn, "k", {}, now=clock.now())
            raise Boom
    assert await rows(db, "SELECT * FROM jobs") == []


async def test_a_job_runs_once_and_leaves_the_queue_with_its_effects(db: Database) -> None:
    clock = FrozenClock()

    async def handle(ctx: jobs.JobContext) -> None:
        await record_effect(ctx, db)

    w = worker(db, clock, jobs.Task("k", handle))
    job_id = await enqueue(db, clock)
    assert await w.run_once() == 1
    assert await rows(db, "SELECT * FROM jobs") == []
    assert await rows(db, "SELECT * FROM effects") == [{"job_id": job_id, "note": "done"}]
    assert await w.run_once() == 0


async def test_jobs_wait_for_their_run_at(db: Database) -> None:
    clock = FrozenClock()
    ran: list[int] = []

    async def handle(ctx: jobs.JobContext) -> None:
        ran.append(ctx.job.id)

    w = worker(db, clock, jobs.Task("k", handle))
    async with db.connection() as conn:
        await jobs.enqueue(
            conn, "k", {}, now=clock.now(), run_at=clock.now() + timedelta(minutes=5)
        )
    assert await w.run_once() == 0
    clock.advance(timedelta(minutes=5))
    assert await w.run_once() == 1


async def test_a_lease_keeps_others_off_until_it_expires(db: Database) -> None:
    clock = FrozenClock()
    await enqueue(db, clock)
    async with db.connection() as conn:
        (held,) = await jobs.claim(conn, me="a", kinds=["k"], limit=5, now=clock.now(), lease=10)
        assert await jobs.claim(conn, me="b", kinds=["k"], limit=5, now=clock.now(), lease=10) == []
        clock.advance(11)
        (taken,) = await jobs.claim(conn, me="b", kinds=["k"], limit=5, now=clock.now(), lease=10)
    assert taken.id == held.id
    assert taken.attempts == 2


async def test_finish_is_fenced_by_the_lease(db: Database) -> None:
    """A worker that lost its job to another rolls its effects back: they happen once."""
    clock = FrozenClock()
    await enqueue(db, clock)
    async with db.connection() as conn:
        (job,) = await jobs.claim(conn, me="slow", kinds=["k"], limit=1, now=clock.now(), lease=10)
        clock.advance(11)
        await jobs.claim(conn, me="fast", kinds=["k"], limit=1, now=clock.now(), lease=10)
    with pytest.raises(jobs.LeaseLost):
        async with db.connection() as conn, transaction(conn):
            await conn.execute("INSERT INTO effects VALUES (%s, 'slow')", (job.id,))
            await jobs.finish(conn, job, me="slow")
    assert await rows(db, "SELECT * FROM effects") == []
    async with db.connection() as conn, transaction(conn):
        await conn.execute("INSERT INTO effects VALUES (%s, 'fast')", (job.id,))
        await jobs.finish(conn, job, me="fast")
    assert await rows(db, "SELECT note FROM effects") == [{"note": "fast"}]


async def test_failures_are_retried_with_backoff_then_given_up(db: Database) -> None:
    clock = FrozenClock()
    seen: list[int] = []
    exhausted: list[str] = []

    async def flaky(ctx: jobs.JobContext) -> None:
        seen.append(ctx.job.attempts)
        raise RuntimeError("upstream down")

    async def give_up(ctx: jobs.JobContext, conn: Any, exc: BaseException) -> None:
        await conn.execute("INSERT INTO effects VALUES (%s, %s)", (ctx.job.id, f"gave up: {exc}"))
        exhausted.append(str(exc))

    task = jobs.Task("k", flaky, max_attempts=3, backoff=lambda n: 60.0 * n, on_exhausted=give_up)
    w = worker(db, clock, task)
    await enqueue(db, clock)
    assert await w.run_once() == 1
    (job,) = await rows(db, "SELECT run_at, locked_by, last_error FROM jobs")
    assert job["locked_by"] is None
    assert job["run_at"] == clock.now() + timedelta(seconds=60)
    assert "upstream down" in job["last_error"]
    assert await w.run_once() == 0  # not due yet
    clock.advance(60)
    assert await w.run_once() == 1
    clock.advance(120)
    assert await w.run_once() == 1
    assert seen == [1, 2, 3]
    assert exhausted == ["upstream down"]
    assert await rows(db, "SELECT * FROM jobs") == []
    assert [r["note"] for r in await rows(db, "SELECT note FROM effects")] == [
        "gave up: upstream down"
    ]


async def test_permanent_failures_are_not_retried(db: Database) -> None:
    clock = FrozenClock()
    calls = 0

    async def broken(ctx: jobs.JobContext) -> None:
        nonlocal calls
        calls += 1
        raise jobs.Permanent("cannot ever work")

    gave_up: list[str] = []

    async def give_up(ctx: jobs.JobContext, conn: Any, exc: BaseException) -> None:
        gave_up.append(str(exc))

    w = worker(db, clock, jobs.Task("k", broken, on_exhausted=give_up))
    await enqueue(db, clock)
    await w.run_once()
    assert (calls, gave_up) == (1, ["cannot ever work"])
    assert await rows(db, "SELECT * FROM jobs") == []


async def test_retry_can_name_its_delay(db: Database) -> None:
    clock = FrozenClock()

    async def later(ctx: jobs.JobContext) -> None:
        raise jobs.Retry("rate limited", delay=17)

    w = worker(db, clock, jobs.Task("k", later))
    await enqueue(db, clock)
    await w.run_once()
    (job,) = await rows(db, "SELECT run_at FROM jobs")
    assert job["run_at"] == clock.now() + timedelta(seconds=17)


async def test_the_running_worker_is_woken_by_notify(db: Database) -> None:
    """idle_poll is 5 minutes: only NOTIFY can wake it within the wait below."""
    clock = FrozenClock()
    done = asyncio.Event()

    async def handle(ctx: jobs.JobContext) -> None:
        done.set()

    w = worker(db, clock, jobs.Task("k", handle), idle_poll=300.0)
    running = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.5)  # let it reach its idle wait
        await enqueue(db, clock)
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        w.stop()
        await running
    assert await rows(db, "SELECT * FROM jobs") == []


async def test_a_notify_that_arrives_while_the_worker_looks_is_not_lost(db: Database) -> None:
    """A job enqueued while the worker is claiming (its NOTIFY lands mid-_fill, after the claim
    query) runs at once; before the fix its wakeup was cleared and it waited for idle_poll."""
    clock = FrozenClock()
    done = asyncio.Event()

    async def handle(ctx: jobs.JobContext) -> None:
        done.set()

    class Racing(Worker):
        inject = False

        async def _fill(self) -> float:
            timeout = await super()._fill()
            if self.inject:
                self.inject = False
                self._wakeup.clear()
                await enqueue(db, clock)
                await asyncio.wait_for(self._wakeup.wait(), timeout=30)  # its NOTIFY is in
            return timeout

    registry = jobs.Registry()
    registry.add(jobs.Task("k", handle))
    w = Racing(db, registry, clock, concurrency=4, lease=10.0, idle_poll=300.0)
    running = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.5)  # let it reach its idle wait
        w.inject = True
        w._wakeup.set()
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        w.stop()
        await running


async def test_stop_releases_jobs_it_cannot_finish(db: Database) -> None:
    clock = FrozenClock()
    started = asyncio.Event()

    async def stuck(ctx: jobs.JobContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    w = worker(db, clock, jobs.Task("k", stuck), lease=1.0, idle_poll=0.1)
    running = asyncio.create_task(w.run())
    await enqueue(db, clock)
    await asyncio.wait_for(started.wait(), timeout=30)
    w.stop()
    await asyncio.wait_for(running, timeout=30)
    (job,) = await rows(db, "SELECT locked_by, locked_until, attempts FROM jobs")
    assert job == {"locked_by": None, "locked_until": None, "attempts": 0}


async def test_periodic_sweeps(db: Database) -> None:
    clock = FrozenClock()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys VALUES ('s', 'k', 'POST', '/p', 'old', '', 200, '', '{}', %s, %s),"
            " ('s', 'k', 'POST', '/p', 'new', '', 200, '', '{}', %s, %s)",
            (
                clock.now() - timedelta(hours=1),
                clock.now() - timedelta(minutes=30),
                clock.now(),
                clock.now() + timedelta(minutes=30),
            ),
        )
    w = worker(db, clock)
    assert await w.run_periodic(Periodic("purge", 60, purge_idempotency_keys)) == 1
    assert [r["key"] for r in await rows(db, "SELECT key FROM idempotency_keys")] == ["new"]


async def test_next_due_skips_held_jobs(db: Database) -> None:
    clock = FrozenClock()
    await enqueue(db, clock)
    async with db.connection() as conn:
        await jobs.enqueue(
            conn, "k", {}, now=clock.now(), run_at=clock.now() + timedelta(seconds=42)
        )
        await jobs.claim(conn, me="a", kinds=["k"], limit=1, now=clock.now(), lease=10)
        due = await jobs.next_due(conn, kinds=["k"])
        found = await fetchone(conn, "SELECT count(*) AS n FROM jobs WHERE locked_by = 'a'")
    assert found is not None and found["n"] == 1
    assert due == clock.now() + timedelta(seconds=42)
