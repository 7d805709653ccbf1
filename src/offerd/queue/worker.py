"""The worker loop: claim due jobs, run them with bounded concurrency, keep their leases alive,
run periodic sweeps, and ride out PostgreSQL going away and coming back.

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
from typing import Any

import psycopg
import structlog

from offerd.common.clock import Clock
from offerd.db import Conn, Database, execute, fetchone, transaction
from offerd.queue import jobs

log = structlog.get_logger("offerd.queue.worker")

PeriodicFn = Callable[[Conn, datetime, Any], Awaitable[int]]


@dataclass(frozen=True)
class Periodic:
    """A sweep run every ``every`` seconds by exactly one worker at a time (advisory lock)."""

    name: str
    every: float
    fn: PeriodicFn


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        db: Database,
        registry: jobs.Registry,
        clock: Clock,
        *,
        resources: Any = None,
        concurrency: int = 32,
        lease: float = 30.0,
        idle_poll: float = 5.0,
        periodic: list[Periodic] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        self.resources = resources
        self.concurrency = max(1, concurrency)
        self.lease = lease
        self.idle_poll = idle_poll
        self.periodic = periodic or []
        self.id = worker_id()
        self.running: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._to_release: set[int] = set()
        self._periodic_due: dict[str, float] = {}

    @property
    def kinds(self) -> list[str]:
        return list(self.registry.tasks)

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()``; then finish in-flight jobs (up to ``lease`` seconds) or release them."""
        log.info("worker.start", worker=self.id, concurrency=self.concurrency, kinds=self.kinds)
        listener = asyncio.create_task(self._listen(), name="offerd-listen")
        beater = asyncio.create_task(self._heartbeat_loop(), name="offerd-heartbeat")
        failures = 0
        try:
            while not self._stopping.is_set():
                # cleared before looking, so a NOTIFY that arrives while _fill runs is not lost
                self._wakeup.clear()
                try:
                    await self._release_pending()
                    await self._run_periodic()
                    timeout = await self._fill()
                    failures = 0
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    failures += 1
                    delay = min(5.0, 0.2 * 2 ** min(failures, 5))
                    log.warning("worker.db_unavailable", error=str(exc), retry_in=delay)
                    with contextlib.suppress(Exception):
                        await self.db.check()
                    timeout = delay
                waiters: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(self._wakeup.wait()),
                    asyncio.ensure_future(self._stopping.wait()),
                ]
                if self.running and len(self.running) >= self.concurrency:
                    waiters.append(asyncio.ensure_future(self._any_finished()))
                _, pending = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for w in pending:
                    w.cancel()
        finally:
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
        """Claim as many due jobs as there are free slots; return how long to wait before looking again."""
        free = self.concurrency - len(self.running)
        if free <= 0:
            return self.idle_poll
        now = self.clock.now()
        async with self.db.connection() as conn:
            claimed = await jobs.claim(
                conn, me=self.id, kinds=self.kinds, limit=free, now=now, lease=self.lease
            )
            for job in claimed:
                self.running[job.id] = asyncio.create_task(self._dispatch(job))
            if len(claimed) == free:
                return 0.0 if len(self.running) < self.concurrency else self.idle_poll
            due = await jobs.next_due(conn, kinds=self.kinds)
        if due is None:
            return self.idle_poll
        return max(0.01, min(self.idle_poll, (due - self.clock.now()).total_seconds()))

    async def run_once(self) -> int:
        """Run every job due now, one batch after another, until none is left; return how many ran.

        For tests and ``offerd worker --drain``: with an injected clock, this is how time passes.
        """
        done = 0
        while True:
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
                return done
            await asyncio.gather(*(self._dispatch(job) for job in claimed))
            done += len(claimed)

    # --- one job ---------------------------------------------------------------------------

    async def _dispatch(self, job: jobs.Job) -> None:
        task = self.registry.tasks[job.kind]
        ctx = jobs.JobContext(job, self.id, self.clock.now, self.resources)
        bound = log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts)
        try:
            try:
                await task.handler(ctx)
                if not ctx.finished:
                    async with self.db.connection() as conn:
                        await ctx.finish(conn)
            except jobs.LeaseLost:
                bound.warning("job.lease_lost")
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                bound.warning("job.db_unavailable", error=str(exc))
                self._release_later(job.id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(task, ctx, exc, bound)
        finally:
            self.running.pop(job.id, None)

    async def _failed(
        self, task: jobs.Task, ctx: jobs.JobContext, exc: Exception, bound: Any
    ) -> None:
        job = ctx.job
        permanent = isinstance(exc, jobs.Permanent)
        if not permanent and job.attempts < task.max_attempts:
            delay = exc.delay if isinstance(exc, jobs.Retry) and exc.delay is not None else None
            delay = task.backoff(job.attempts) if delay is None else delay
            bound.info("job.retry", error=repr(exc), delay=round(delay, 3))
            try:
                async with self.db.connection() as conn:
                    await jobs.reschedule(
                        conn,
                        job,
                        me=self.id,
                        at=self.clock.now() + timedelta(seconds=delay),
                        error=repr(exc),
                    )
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self._release_later(job.id)
            return
        if not isinstance(exc, jobs.Retry | jobs.Permanent):
            bound.error("job.failed", exc_info=exc)
        else:
            bound.warning("job.gave_up", error=str(exc))
        try:
            async with self.db.connection() as conn, transaction(conn):
                if task.on_exhausted is not None:
                    await task.on_exhausted(ctx, conn, exc)
                await ctx.finish(conn)
        except jobs.LeaseLost:
            bound.warning("job.lease_lost")
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._release_later(job.id)

    # --- leases, wake-ups, shutdown ----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = list(self.running)
            if not ids:
                continue
            try:
                async with self.db.connection() as conn:
                    await jobs.heartbeat(
                        conn, me=self.id, ids=ids, now=self.clock.now(), lease=self.lease
                    )
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
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

    async def _run_periodic(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        for p in self.periodic:
            if self._periodic_due.get(p.name, 0.0) > loop_now:
                continue
            self._periodic_due[p.name] = loop_now + p.every
            await self.run_periodic(p)

    async def run_periodic(self, p: Periodic) -> int:
        async with self.db.connection() as conn, transaction(conn):
            got = await fetchone(
                conn, "SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (p.name,)
            )
            if not got or not got["ok"]:
                return 0
            n = await p.fn(conn, self.clock.now(), self.resources)
            if n:
                log.info("worker.periodic", task=p.name, affected=n)
            return n


async def purge_idempotency_keys(conn: Conn, now: datetime, _resources: Any) -> int:
    return await execute(conn, "DELETE FROM idempotency_keys WHERE expires_at < %s", (now,))
