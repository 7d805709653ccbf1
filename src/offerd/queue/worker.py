"""The worker loop: claim due jobs, run them with bounded concurrency, keep their leases alive,
run periodic sweeps beside them (as tasks: a long sweep never holds up claiming), and ride out
PostgreSQL going away and coming back.

Jobs run in slot pools: with ``delivery_concurrency`` set, ``delivery.*`` jobs (which wait on
destinations merchants configure) have slots of their own, so billing and checkout jobs never
wait behind them. Nothing a job or a sweep raises ends the loop: a failing sweep is logged and
counted, a job that fails for good is kept as ``failed`` even when its ``on_exhausted`` raises,
and a job claimed more often than its task allows (its handler kills the worker) is not run again.

Wake-ups come from ``NOTIFY offerd_jobs`` (sent by a trigger when jobs are inserted), from the
next scheduled ``run_at``, and at the latest every ``idle_poll`` seconds (expired leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import structlog

from offerd.common.clock import Clock
from offerd.db import Conn, Database, fetchone, transaction
from offerd.observability import JOB_RUNS, SWEEP_FAILURES
from offerd.queue import jobs

if TYPE_CHECKING:
    from offerd.edge.deps import Services

log = structlog.get_logger("offerd.queue.worker")

PeriodicFn = Callable[[Conn, datetime], Awaitable[int]]


@dataclass(frozen=True)
class Periodic:
    """A sweep run every ``every`` seconds by exactly one worker at a time (advisory lock)."""

    name: str
    every: float
    fn: PeriodicFn


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


_DB_DOWN = (psycopg.OperationalError, psycopg.InterfaceError)
DELIVERY_PREFIX = "delivery."


@dataclass
class Pool:
    """Slots for some job kinds: at most ``size`` of them run at once."""

    name: str
    kinds: list[str]
    size: int
    running: set[int]

    @property
    def free(self) -> int:
        return self.size - len(self.running)


def _ids(payload: dict[str, Any]) -> dict[str, Any]:
    """The domain ids a job carries (``fulfillment_id``, ``delivery_id``), for its log lines."""
    return {k: v for k, v in payload.items() if k.endswith("_id") and isinstance(v, str | int)}


class Worker:
    def __init__(
        self,
        db: Database,
        registry: jobs.Registry,
        clock: Clock,
        *,
        resources: Services,
        concurrency: int = 32,
        delivery_concurrency: int | None = None,
        lease: float = 30.0,
        idle_poll: float = 5.0,
        periodic: list[Periodic] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        self.resources = resources
        self.concurrency = max(1, concurrency)
        self.pools = self._pools(delivery_concurrency)
        self.lease = lease
        self.idle_poll = idle_poll
        self.periodic = periodic or []
        self.id = worker_id()
        self.running: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._to_release: set[int] = set()
        self._periodic_due: dict[str, float] = {}
        self._sweeps: dict[str, asyncio.Task[None]] = {}  # the sweeps running beside the loop
        self._draining = False  # in run_once: a deferred job is due again at once
        self._deferred_in_drain = 0

    @property
    def kinds(self) -> list[str]:
        return list(self.registry.tasks)

    def _pools(self, delivery_concurrency: int | None) -> list[Pool]:
        """One pool for every kind; or, with ``delivery_concurrency``, one for ``delivery.*``
        kinds and one (``concurrency`` slots) for the others."""
        if not delivery_concurrency:
            return [Pool("all", self.kinds, self.concurrency, set())]
        deliveries = [k for k in self.kinds if k.startswith(DELIVERY_PREFIX)]
        others = [k for k in self.kinds if not k.startswith(DELIVERY_PREFIX)]
        pools = [Pool("jobs", others, self.concurrency, set())]
        if deliveries:
            pools.append(Pool("deliveries", deliveries, max(1, delivery_concurrency), set()))
        return [p for p in pools if p.kinds]

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()``; then finish in-flight jobs (up to ``lease`` seconds) or release them."""
        log.info(
            "worker.start",
            worker=self.id,
            concurrency=self.concurrency,
            pools={p.name: p.size for p in self.pools},
            kinds=self.kinds,
        )
        listener = asyncio.create_task(self._listen(), name="offerd-listen")
        beater = asyncio.create_task(self._heartbeat_loop(), name="offerd-heartbeat")
        failures = 0
        try:
            while not self._stopping.is_set():
                # cleared before looking, so a NOTIFY that arrives while _fill runs is not lost
                self._wakeup.clear()
                try:
                    await self._release_pending()
                    self._start_periodic()
                    timeout = await self._fill()
                    failures = 0
                except _DB_DOWN as exc:
                    failures += 1
                    delay = min(5.0, 0.2 * 2 ** min(failures, 5))
                    log.warning("worker.db_unavailable", error=str(exc), retry_in=delay)
                    with contextlib.suppress(Exception):
                        await self.db.check()
                    timeout = delay
                except Exception as exc:
                    # a bug here must not stop the jobs while the API keeps serving
                    failures += 1
                    delay = min(5.0, 0.2 * 2 ** min(failures, 5))
                    log.error("worker.loop_failed", exc_info=exc, retry_in=delay)
                    timeout = delay
                waiters: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(self._wakeup.wait()),
                    asyncio.ensure_future(self._stopping.wait()),
                ]
                if self.running and any(p.free <= 0 for p in self.pools):
                    waiters.append(asyncio.ensure_future(self._any_finished()))
                _, pending = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for w in pending:
                    w.cancel()
        finally:
            # a sweep cut short rolls back (each is idempotent: the next run does its work)
            for sweep in self._sweeps.values():
                sweep.cancel()
            for sweep in self._sweeps.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await sweep
            await self._drain()
            with contextlib.suppress(Exception):
                await self._release_pending()
            listener.cancel()
            beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            with contextlib.suppress(asyncio.CancelledError):
                await beater
            log.info("worker.stop", worker=self.id)

    def stop(self) -> None:
        self._stopping.set()

    async def _any_finished(self) -> None:
        if self.running:
            await asyncio.wait(list(self.running.values()), return_when=asyncio.FIRST_COMPLETED)

    async def _fill(self) -> float:
        """Claim as many due jobs as each pool has free slots; return how long to wait before
        looking again (a full pool is looked at again when one of its jobs ends)."""
        now = self.clock.now()
        waiting: list[str] = []  # kinds of the pools that still have free slots
        filled: list[Pool] = []  # pools that took all they could: more may be due
        due = None
        async with self.db.connection() as conn:
            for pool in self.pools:
                free = pool.free
                if free <= 0:
                    continue
                claimed = await jobs.claim(
                    conn, me=self.id, kinds=pool.kinds, limit=free, now=now, lease=self.lease
                )
                for job in claimed:
                    pool.running.add(job.id)
                    self.running[job.id] = asyncio.create_task(self._dispatch(job, pool))
                if len(claimed) < free:
                    waiting += pool.kinds
                else:
                    filled.append(pool)
            if waiting:
                due = await jobs.next_due(conn, kinds=waiting)
        # Jobs ran while this looked (the claims and next_due are awaits): a filled pool whose
        # jobs have already ended is looked at again now. Nothing runs between this check and the
        # caller's wait, which wakes on the next job to end of a pool that is still full.
        if any(pool.free > 0 for pool in filled):
            return 0.0
        if due is None:
            return self.idle_poll
        return max(0.01, min(self.idle_poll, (due - self.clock.now()).total_seconds()))

    async def run_once(self) -> int:
        """Run every job due now, one batch after another, until none is left; return how many ran.

        For tests and ``offerd worker --drain``: with an injected clock, this is how time passes.
        A job deferred for want of capacity (its destination's slots) is due again at once here:
        the batch that held those slots has ended when the next one is claimed. A batch in which
        every job was deferred ends the drain (nothing else would free the slots).
        """
        done = 0
        self._draining = True
        try:
            while True:
                ran = await self._drain_batch()
                if ran is None:
                    return done
                done += ran
        finally:
            self._draining = False

    async def _drain_batch(self) -> int | None:
        """One batch of ``run_once``: how many ran (deferrals not counted), or None when no job
        was due or every job of the batch was deferred."""
        self._deferred_in_drain = 0
        async with self.db.connection() as conn:
            claimed = await jobs.claim(
                conn,
                me=self.id,
                kinds=self.kinds,
                limit=self.concurrency,
                now=self.clock.now(),
                lease=self.lease,
            )
        if not claimed:
            return None
        await asyncio.gather(*(self._dispatch(job) for job in claimed))
        ran = len(claimed) - self._deferred_in_drain
        return ran or None

    # --- one job ---------------------------------------------------------------------------

    async def _dispatch(self, job: jobs.Job, pool: Pool | None = None) -> None:
        task = self.registry.tasks[job.kind]
        ctx = jobs.JobContext(job, self.id, self.clock.now, self.resources)
        bound = log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts, **_ids(job.payload))
        outcome = "succeeded"
        try:
            try:
                if job.attempts > task.max_attempts:
                    # claimed again and again, never finished: its worker died running it
                    raise jobs.Abandoned(
                        f"claimed {job.attempts} times (at most {task.max_attempts} attempts) "
                        "without finishing: its worker died running it"
                    )
                await task.handler(ctx)
                if not ctx.finished:
                    async with self.db.connection() as conn:
                        await ctx.finish(conn)
            except jobs.LeaseLost:
                bound.warning("job.lease_lost")
                outcome = "lease_lost"
            except _DB_DOWN as exc:
                bound.warning("job.db_unavailable", error=str(exc))
                self._release_later(job.id)
                outcome = "released"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcome = await self._failed(task, ctx, exc, bound)
        finally:
            self.running.pop(job.id, None)
            if pool is not None:
                pool.running.discard(job.id)
        JOB_RUNS.labels(job.kind, outcome).inc()

    async def _failed(
        self, task: jobs.Task, ctx: jobs.JobContext, exc: Exception, bound: Any
    ) -> str:
        """Retry, defer or give up; returns the run's outcome (for the metrics)."""
        job = ctx.job
        if isinstance(exc, jobs.Defer):
            wait = 0.0 if self._draining else exc.delay
            self._deferred_in_drain += self._draining
            bound.info("job.deferred", reason=str(exc), delay=wait)
            return await self._put_back(job, wait, None)
        permanent = isinstance(exc, jobs.Permanent)
        if not permanent and job.attempts < task.max_attempts:
            delay = exc.delay if isinstance(exc, jobs.Retry) and exc.delay is not None else None
            delay = task.backoff(job.attempts) if delay is None else delay
            bound.info("job.retry", error=repr(exc), delay=round(delay, 3))
            return await self._put_back(job, delay, repr(exc))
        # a permanent failure is logged at warning (an unexpected error with its traceback) with
        # the job's ids; the job is kept as failed for an admin to read and retry
        if not isinstance(exc, jobs.Retry | jobs.Permanent):
            bound.error("job.gave_up", exc_info=exc)
        else:
            bound.warning("job.gave_up", error=str(exc))
        return await self._give_up(task, ctx, exc, bound)

    async def _put_back(self, job: jobs.Job, delay: float, error: str | None) -> str:
        """Back in the queue after ``delay``: a retry (``error`` set) or a deferral."""
        at = self.clock.now() + timedelta(seconds=delay)
        try:
            async with self.db.connection() as conn:
                if error is None:
                    await jobs.defer(conn, job, me=self.id, at=at)
                else:
                    await jobs.reschedule(conn, job, me=self.id, at=at, error=error)
        except _DB_DOWN:
            self._release_later(job.id)
            return "released"
        return "retried" if error is not None else "deferred"

    async def _give_up(
        self, task: jobs.Task, ctx: jobs.JobContext, exc: Exception, bound: Any
    ) -> str:
        """Run ``on_exhausted`` and keep the job as failed, in one transaction. When the hook
        itself raises, its transaction rolls back and the job is still kept as failed (in a
        transaction of its own): a live worker never takes its own jobs back, so a job left
        locked here would stay stranded for as long as this worker lives."""
        job = ctx.job
        error = f"{type(exc).__name__}: {exc}"
        try:
            try:
                async with self.db.connection() as conn, transaction(conn):
                    if task.on_exhausted is not None:
                        await task.on_exhausted(ctx, conn, exc)
                    if not ctx.finished:
                        await jobs.fail(conn, job, me=self.id, now=self.clock.now(), error=error)
            except (jobs.LeaseLost, *_DB_DOWN):
                raise
            except Exception as hook_exc:
                bound.error("job.on_exhausted_failed", exc_info=hook_exc)
                error += f" (and on_exhausted raised {type(hook_exc).__name__}: {hook_exc})"
                async with self.db.connection() as conn:
                    await jobs.fail(conn, job, me=self.id, now=self.clock.now(), error=error)
        except jobs.LeaseLost:
            bound.warning("job.lease_lost")
            return "lease_lost"
        except _DB_DOWN:
            self._release_later(job.id)
            return "released"
        return "failed"

    # --- leases, wake-ups, shutdown ----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = list(self.running)
            if not ids:
                continue
            try:
                async with self.db.connection() as conn:
                    await jobs.heartbeat(conn, me=self.id, ids=ids, lease=self.lease)
            except Exception as exc:  # the next beat tries again; the loop must not end
                log.warning("worker.heartbeat_failed", error=str(exc))

    def _release_later(self, job_id: int) -> None:
        """The database went away mid-job: give the job back as soon as it is reachable again."""
        self._to_release.add(job_id)
        self._wakeup.set()

    async def _release_pending(self) -> None:
        if not self._to_release:
            return
        ids = [i for i in self._to_release if i not in self.running]
        async with self.db.connection() as conn:
            await jobs.release(conn, me=self.id, ids=ids)
        self._to_release.difference_update(ids)

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, reconnecting for as long as the worker runs."""
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.db.url, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN offerd_jobs")
                    failures = 0
                    self._wakeup.set()  # catch up on anything sent while we were not listening
                    async for _ in conn.notifies():
                        self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(5.0, 0.2 * 2 ** min(failures, 5))
                log.warning("worker.listen_failed", error=str(exc), retry_in=delay)
                self._wakeup.set()
                await asyncio.sleep(delay)

    async def _drain(self) -> None:
        if not self.running:
            return
        log.info("worker.draining", jobs=len(self.running))
        pending = list(self.running.values())
        _, still = await asyncio.wait(pending, timeout=self.lease / 2)
        if still:
            ids = list(self.running)
            for t in still:
                t.cancel()
            await asyncio.gather(*still, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with self.db.connection() as conn:
                    await jobs.release(conn, me=self.id, ids=ids)
            log.info("worker.released", jobs=len(ids))

    def _start_periodic(self) -> None:
        """Start each due sweep that is not still running, as a task beside the loop: a sweep's
        run (seconds, when it works off a backlog) never holds up the claiming of jobs."""
        loop_now = asyncio.get_running_loop().time()
        for p in self.periodic:
            if self._periodic_due.get(p.name, 0.0) > loop_now:
                continue
            running = self._sweeps.get(p.name)
            if running is not None and not running.done():
                continue  # due again once this run has ended
            self._periodic_due[p.name] = loop_now + p.every
            self._sweeps[p.name] = asyncio.create_task(self._sweep(p), name=f"offerd-{p.name}")

    async def _sweep(self, p: Periodic) -> None:
        try:
            await self.run_periodic(p)
        except _DB_DOWN as exc:
            # the loop sees it too and waits; this sweep runs again when next due
            log.warning("worker.periodic_db_unavailable", task=p.name, error=str(exc))
        except Exception as exc:
            # a sweep's bug must not stop the jobs: say so, count it, go on
            SWEEP_FAILURES.labels(p.name).inc()
            log.error("worker.periodic_failed", task=p.name, exc_info=exc)

    async def run_periodic(self, p: Periodic) -> int:
        async with self.db.connection() as conn, transaction(conn):
            got = await fetchone(
                conn, "SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (p.name,)
            )
            if not got or not got["ok"]:
                return 0
            n = await p.fn(conn, self.clock.now())
            if n:
                log.info("worker.periodic", task=p.name, affected=n)
            return n
