"""The job queue and the worker loop, against real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from offerd.common.clock import FrozenClock
from offerd.db import Database, execute, fetchall, fetchone, transaction
from offerd.edge.idempotency import purge_expired
from offerd.queue import jobs
from offerd.queue.worker import Periodic, Worker


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
    return Worker(
        db,
        registry,
        clock,
        # these jobs use no services
        **{"resources": None, "concurrency": 4, "lease": 10.0, "idle_poll": 30.0, **kw},
    )


async def expire_leases(db: Database) -> None:
    """What a lease's running out looks like: leases are on the database's clock, not the
    injected one, so the test moves them rather than the clock."""
    await execute_sql(db, "UPDATE jobs SET locked_until = now() - interval '1 second'")


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
        await expire_leases(db)
        (taken,) = await jobs.claim(conn, me="b", kinds=["k"], limit=5, now=clock.now(), lease=10)
    assert taken.id == held.id
    assert taken.attempts == 2


async def test_finish_is_fenced_by_the_lease(db: Database) -> None:
    """A worker that lost its job to another rolls its effects back: they happen once."""
    clock = FrozenClock()
    await enqueue(db, clock)
    async with db.connection() as conn:
        (job,) = await jobs.claim(conn, me="slow", kinds=["k"], limit=1, now=clock.now(), lease=10)
        await expire_leases(db)
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
    (kept,) = await rows(db, "SELECT status, attempts, locked_by, last_error FROM jobs")
    assert kept == {
        "status": "failed",
        "attempts": 3,
        "locked_by": None,
        "last_error": "RuntimeError: upstream down",
    }
    clock.advance(3600)
    assert await w.run_once() == 0  # a failed job is not claimed again
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
    assert await rows(db, "SELECT status, attempts FROM jobs") == [
        {"status": "failed", "attempts": 1}
    ]


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
    w = Racing(db, registry, clock, resources=None, concurrency=4, lease=10.0, idle_poll=300.0)
    running = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.5)  # let it reach its idle wait
        w.inject = True
        w._wakeup.set()
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        w.stop()
        await running


async def test_a_full_pool_whose_jobs_ended_while_it_looked_is_filled_again_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a second pool (deliveries), the worker asks when the next delivery is due after
    filling the jobs pool; jobs that end meanwhile left a full-then-empty pool and nothing to
    wake the loop, which slept idle_poll between batches (a 10,000-job drain ran at 19/s)."""
    clock = FrozenClock()
    done: list[int] = []
    all_done = asyncio.Event()

    async def quick(ctx: jobs.JobContext) -> None:
        done.append(ctx.job.id)
        if len(done) == 12:
            all_done.set()

    async def never(ctx: jobs.JobContext) -> None:
        raise AssertionError("no delivery is queued")

    next_due = jobs.next_due

    async def slow_next_due(conn: Any, *, kinds: Any) -> Any:
        await asyncio.sleep(0.3)  # the batch's jobs end while this looks
        return await next_due(conn, kinds=kinds)

    monkeypatch.setattr(jobs, "next_due", slow_next_due)
    w = worker(
        db,
        clock,
        jobs.Task("k", quick),
        jobs.Task("delivery.x", never),
        concurrency=4,
        idle_poll=300.0,
    )
    for _ in range(12):
        await enqueue(db, clock)
    running = asyncio.create_task(w.run())
    try:
        await asyncio.wait_for(all_done.wait(), timeout=60)  # a hang guard: idle_poll is 300 s
    finally:
        w.stop()
        await running
    assert len(done) == 12


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
    assert await w.run_periodic(Periodic("purge", 60, purge_expired)) == 1
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


# --- the queue never strands or loops on a job (issue 10, item 4) ------------------------------


async def test_leases_are_on_the_database_clock(db: Database) -> None:
    """A host whose clock runs an hour ahead sees another's fresh lease as what it is: held. (With
    leases on each host's clock it took the job over while its worker was still running it.)"""
    clock = FrozenClock()
    ahead = FrozenClock(clock.now() + timedelta(hours=1))
    await enqueue(db, clock)
    async with db.connection() as conn:
        (held,) = await jobs.claim(conn, me="a", kinds=["k"], limit=1, now=clock.now(), lease=10)
        assert await jobs.claim(conn, me="b", kinds=["k"], limit=1, now=ahead.now(), lease=10) == []
        await jobs.heartbeat(conn, me="a", ids=[held.id], lease=10)
        assert await jobs.claim(conn, me="b", kinds=["k"], limit=1, now=ahead.now(), lease=10) == []
    (row,) = await rows(db, "SELECT locked_by, locked_until > now() AS live FROM jobs")
    assert row == {"locked_by": "a", "live": True}


async def test_a_failing_sweep_is_logged_and_counted_and_the_worker_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the fix the sweep's exception ended Worker.run(): no job ran after it."""
    clock = FrozenClock()
    done = asyncio.Event()
    sweeps = 0

    async def broken_sweep(_conn: Any, _now: Any) -> int:
        nonlocal sweeps
        sweeps += 1
        raise ValueError("a bug in a sweep")

    async def handle(ctx: jobs.JobContext) -> None:
        done.set()

    before = REGISTRY.get_sample_value("offerd_sweep_failures_total", {"task": "broken"}) or 0.0
    w = worker(
        db,
        clock,
        jobs.Task("k", handle),
        idle_poll=0.05,
        periodic=[Periodic("broken", 0.01, broken_sweep)],
    )
    running = asyncio.create_task(w.run())
    try:
        while sweeps < 2:  # it failed, and the loop came round to it again
            assert not running.done(), running
            await asyncio.sleep(0.01)
        await enqueue(db, clock)
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        w.stop()
        await asyncio.wait_for(running, timeout=30)
    after = REGISTRY.get_sample_value("offerd_sweep_failures_total", {"task": "broken"})
    assert after is not None and after - before >= 2
    logged = [r for r in caplog.records if "worker.periodic_failed" in str(r.msg)]
    assert logged and logged[0].levelname == "ERROR"
    assert "a bug in a sweep" in caplog.text  # the traceback


async def test_jobs_run_while_a_sweep_is_still_running_and_it_is_not_started_twice(
    db: Database,
) -> None:
    """A sweep runs beside the loop: before, the loop awaited it, so while a sweep worked off a
    backlog (seconds) no job was claimed. Due again every 10 ms, it is not started a second
    time while its run goes on, and runs again once that run has ended."""
    clock = FrozenClock()
    released, done = asyncio.Event(), asyncio.Event()
    runs = 0

    async def long_sweep(_conn: Any, _now: Any) -> int:
        nonlocal runs
        runs += 1
        await released.wait()
        return 0

    async def handle(ctx: jobs.JobContext) -> None:
        done.set()

    w = worker(
        db, clock, jobs.Task("k", handle), idle_poll=0.05,
        periodic=[Periodic("long", 0.01, long_sweep)],
    )  # fmt: skip
    running = asyncio.create_task(w.run())
    try:
        while runs < 1:
            assert not running.done(), running
            await asyncio.sleep(0.01)
        await enqueue(db, clock)
        await asyncio.wait_for(done.wait(), timeout=30)  # run while the sweep is still going
        assert runs == 1 and not released.is_set()
        released.set()
        while runs < 2:  # the next run, once the first has ended
            assert not running.done(), running
            await asyncio.sleep(0.01)
    finally:
        released.set()
        w.stop()
        await asyncio.wait_for(running, timeout=30)


async def test_a_sweep_running_at_shutdown_is_cancelled_and_rolled_back(db: Database) -> None:
    """Stopping does not wait for a sweep: it is cancelled, and what it wrote is not kept."""
    clock = FrozenClock()
    started = asyncio.Event()

    async def stuck_sweep(conn: Any, _now: Any) -> int:
        await execute(conn, "CREATE TABLE swept (n int)")
        started.set()
        await asyncio.Event().wait()  # never set
        return 1

    async def handle(ctx: jobs.JobContext) -> None:
        pass

    w = worker(
        db, clock, jobs.Task("k", handle), idle_poll=0.05,
        periodic=[Periodic("stuck", 60, stuck_sweep)],
    )  # fmt: skip
    running = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), timeout=30)
    w.stop()
    await asyncio.wait_for(running, timeout=30)
    (row,) = await rows(db, "SELECT to_regclass('swept') IS NULL AS gone")
    assert row == {"gone": True}


async def test_a_raising_on_exhausted_still_ends_the_job(db: Database) -> None:
    """The hook's own writes roll back, and the job is kept as failed and unlocked. Before the
    fix it stayed locked by the live worker, which never re-claims its own jobs: stranded."""
    clock = FrozenClock()

    async def broken(ctx: jobs.JobContext) -> None:
        raise jobs.Permanent("cannot ever work")

    async def bad_hook(ctx: jobs.JobContext, conn: Any, exc: BaseException) -> None:
        await conn.execute("INSERT INTO effects VALUES (%s, 'hook')", (ctx.job.id,))
        raise KeyError("a bug in on_exhausted")

    w = worker(db, clock, jobs.Task("k", broken, on_exhausted=bad_hook))
    await enqueue(db, clock)
    await w.run_once()
    (job,) = await rows(db, "SELECT status, locked_by, locked_until, last_error FROM jobs")
    assert (job["status"], job["locked_by"], job["locked_until"]) == ("failed", None, None)
    assert "cannot ever work" in job["last_error"]
    assert "a bug in on_exhausted" in job["last_error"]
    assert await rows(db, "SELECT * FROM effects") == []


async def test_a_job_that_kills_its_worker_is_given_up_at_claim(db: Database) -> None:
    """Claimed max_attempts times by workers that died running it: the next claim does not run
    it again; on_exhausted runs and it is kept as failed. (One was claimable at attempts = 21
    with max 12.)"""
    clock = FrozenClock()
    ran: list[int] = []
    gave_up: list[BaseException] = []

    async def deadly(ctx: jobs.JobContext) -> None:
        ran.append(ctx.job.attempts)

    async def give_up(ctx: jobs.JobContext, conn: Any, exc: BaseException) -> None:
        gave_up.append(exc)

    await enqueue(db, clock)
    # three workers claimed it and died running it (the last one's lease ran out)
    await execute_sql(db, "UPDATE jobs SET attempts = 3")
    w = worker(db, clock, jobs.Task("k", deadly, max_attempts=3, on_exhausted=give_up))
    assert await w.run_once() == 1
    assert ran == []
    assert [type(e) for e in gave_up] == [jobs.Abandoned]
    (row,) = await rows(db, "SELECT status, attempts, locked_by, last_error FROM jobs")
    assert (row["status"], row["attempts"], row["locked_by"]) == ("failed", 4, None)
    assert "worker died" in row["last_error"]
    assert await w.run_once() == 0


async def test_a_failed_job_is_kept_listed_and_can_be_retried(db: Database) -> None:
    clock = FrozenClock()
    fixed = False

    async def handle(ctx: jobs.JobContext) -> None:
        if not fixed:
            raise jobs.Permanent("the catalog has no such plan")
        await record_effect(ctx, db, "retried")

    w = worker(db, clock, jobs.Task("k", handle))
    job_id = await enqueue(db, clock, fulfillment_id="of_1")
    await w.run_once()
    async with db.connection() as conn:
        (failed,) = await jobs.list_failed(conn, before=None, limit=10)
        assert await jobs.list_failed(conn, before=job_id, limit=10) == []
    assert (failed["id"], failed["kind"], failed["status"]) == (job_id, "k", "failed")
    assert failed["payload"] == {"fulfillment_id": "of_1"}
    assert failed["attempts"] == 1
    assert failed["last_error"] == "Permanent: the catalog has no such plan"
    assert failed["failed_at"] == clock.now()

    fixed = True
    async with db.connection() as conn:
        again = await jobs.retry(conn, job_id, now=clock.now())
        assert await jobs.retry(conn, job_id, now=clock.now()) is None  # queued, not failed
    assert again is not None and (again["status"], again["attempts"]) == ("queued", 0)
    assert await w.run_once() == 1
    assert await rows(db, "SELECT * FROM jobs") == []
    assert await rows(db, "SELECT note FROM effects") == [{"note": "retried"}]


async def test_a_deferred_run_is_not_an_attempt(db: Database) -> None:
    clock = FrozenClock()
    seen: list[int] = []

    async def busy(ctx: jobs.JobContext) -> None:
        seen.append(ctx.job.attempts)
        if len(seen) < 3:
            raise jobs.Defer("its destination is busy", delay=5)

    w = worker(db, clock, jobs.Task("k", busy, max_attempts=1))
    await enqueue(db, clock)
    # a drain takes a deferred job up again in its next batch, and stops when a batch only
    # deferred (what holds the slots is outside it): two drains end deferred, the third runs it
    assert [await w.run_once() for _ in range(3)] == [0, 0, 1]
    assert seen == [1, 1, 1]
    assert await rows(db, "SELECT * FROM jobs") == []
