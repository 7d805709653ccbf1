"""The job queue on PostgreSQL: enqueue in the caller's transaction, claim with a lease, finish
by deleting the row in the same transaction as the job's effects. Every statement that touches
the ``jobs`` table is here; a store that writes a job with its own change in one statement
composes ``enqueue_select`` into it, and ``ByPayload`` reaches the jobs of one domain row.

Why not a queue library: every state change here must be written together with the job that
continues it (a plain INSERT on the caller's connection, often a CTE of the very statement that
makes the change: the accept and the fan-out take no extra round trip), and a job's effects must
commit together with its removal from the queue, fenced by the lease (``finish`` refuses when
another worker took the job over, rolling the effects back). Both are one statement each on our
own table; the libraries we looked at (procrastinate, pgqueuer) enqueue through their own
connection or API and finish outside the handler's transaction.

Delivery is at-least-once: a worker that dies mid-job leaves a lease that expires after
``job_lease_seconds``; the job is then claimed again, by another worker (a live worker never
re-claims its own jobs, which it may still be running). Handlers are idempotent. Leases are
taken, renewed and compared on the database's clock (``now()``), so hosts whose clocks disagree
cannot steal each other's jobs; ``run_at`` stays on the injected clock (tests move it).

A job that fails for good (its attempts used up, a ``Permanent`` error, or claimed more than
``max_attempts`` times because its worker kept dying) is kept with status ``failed`` and its last
error; ``retry`` puts it back in the queue with its attempts reset.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, execute, fetchall, fetchone

if TYPE_CHECKING:  # the services are built by the app, which builds the queue too
    from offerd.edge.deps import Services


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    run_at: datetime


class LeaseLost(Exception):
    """Another worker holds this job now; whatever this one did in its transaction rolls back."""


class Retry(Exception):
    """Raised by a handler for a transient failure; ``delay`` overrides the task's backoff."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Defer(Exception):
    """Raised by a handler that could not start its work now (e.g. its destination's slots are
    all taken): the job runs again after ``delay`` seconds and this run is not an attempt."""

    def __init__(self, reason: str, *, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


class Permanent(Exception):
    """Raised by a handler for a failure that no retry will fix; goes straight to ``on_exhausted``."""


class Abandoned(Permanent):
    """The job was claimed more often than its task allows without ever finishing: whatever it
    does kills its worker (or the workers running it kept dying). It is not run again."""


_ENQUEUE = """
INSERT INTO jobs (kind, payload, run_at, created_at) VALUES (%s, %s, %s, %s) RETURNING id
"""


# A job for ``payload["key"]`` unless one is already queued and not yet started (a started one
# may have read what changed before the change: a new one is queued behind it).
_ENQUEUE_ONCE = """
INSERT INTO jobs (kind, payload, run_at, created_at)
SELECT %(kind)s, %(payload)s, %(now)s, %(now)s
WHERE NOT EXISTS (
    SELECT 1 FROM jobs
    WHERE kind = %(kind)s AND payload ? 'key' AND payload->>'key' = %(key)s
      AND status = 'queued' AND locked_by IS NULL
)
"""


def enqueue_select(*, kind: str, payload: str, run_at: str, source: str) -> str:
    """An INSERT of one job per row of ``source``, for a store to put in a CTE of the statement
    that makes the change the jobs continue (no extra round trip). The arguments are SQL: the
    kind, the payload (jsonb) and the run_at expressions, and what follows ``FROM``."""
    return (
        f"INSERT INTO jobs (kind, payload, run_at, created_at) "
        f"SELECT {kind}, {payload}, {run_at}, {run_at} FROM {source}"
    )


# A job is due when queued, its run_at (injected clock) has come and no live lease holds it
# (database clock). jobs_due covers queued jobs only.
_CLAIM = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE status = 'queued'
      AND run_at <= %(now)s
      AND (locked_until IS NULL OR locked_until < now())
      AND locked_by IS DISTINCT FROM %(me)s
      AND kind = ANY(%(kinds)s)
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET locked_by = %(me)s, locked_until = now() + make_interval(secs => %(lease)s),
    attempts = j.attempts + 1
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.kind, j.payload, j.attempts, j.run_at
"""

_FINISH = "DELETE FROM jobs WHERE id = %s AND locked_by = %s"

_RESCHEDULE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_at = %(at)s, last_error = %(error)s
WHERE id = %(id)s AND locked_by = %(me)s
"""

_DEFER = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_at = %(at)s,
    attempts = greatest(attempts - 1, 0)
WHERE id = %(id)s AND locked_by = %(me)s
"""

_FAIL = """
UPDATE jobs SET status = 'failed', failed_at = %(now)s, last_error = %(error)s,
    locked_by = NULL, locked_until = NULL
WHERE id = %(id)s AND locked_by = %(me)s
"""

_HEARTBEAT = """
UPDATE jobs SET locked_until = now() + make_interval(secs => %(lease)s)
WHERE locked_by = %(me)s AND id = ANY(%(ids)s)
"""

_RELEASE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
WHERE locked_by = %(me)s AND id = ANY(%(ids)s)
"""

_NEXT_DUE = """
SELECT run_at FROM jobs WHERE status = 'queued' AND locked_by IS NULL AND kind = ANY(%(kinds)s)
ORDER BY run_at, id LIMIT 1
"""

_LIST_FAILED = """
SELECT id, kind, payload, status, attempts, last_error, run_at, failed_at, created_at FROM jobs
WHERE status = 'failed' AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s
"""

_GET = """
SELECT id, kind, payload, status, attempts, last_error, run_at, failed_at, created_at FROM jobs
WHERE id = %s
"""

# Back in the queue, as new.
_RETRY = """
UPDATE jobs SET status = 'queued', attempts = 0, run_at = %(now)s, failed_at = NULL,
    locked_by = NULL, locked_until = NULL
WHERE id = %(id)s AND status = 'failed'
RETURNING id, kind, payload, status, attempts, last_error, run_at, failed_at, created_at
"""
# The insert trigger wakes the workers; a retried job is no insert.
_WAKE = "SELECT pg_notify('offerd_jobs', '')"

# What the queue gauges show, per kind: waiting (queued, held or not), how long the longest-due
# job has waited past its run_at (the backlog's lag; 0 when nothing is overdue), failed jobs.
_STATS = """
SELECT kind,
    count(*) FILTER (WHERE status = 'queued') AS queued,
    coalesce(extract(epoch FROM now() - min(run_at) FILTER (
        WHERE status = 'queued' AND locked_by IS NULL AND run_at <= now())), 0)::float
        AS oldest_age_seconds,
    count(*) FILTER (WHERE status = 'failed') AS failed
FROM jobs GROUP BY kind ORDER BY kind
"""


async def enqueue(
    conn: Conn, kind: str, payload: dict[str, Any], *, now: datetime, run_at: datetime | None = None
) -> int:
    """Add a job; call inside the transaction whose change the job continues."""
    row = await fetchone(conn, _ENQUEUE, (kind, Jsonb(payload), run_at or now, now))
    assert row is not None
    job_id: int = row["id"]
    return job_id


async def enqueue_once(conn: Conn, kind: str, payload: dict[str, Any], *, now: datetime) -> bool:
    """Add a job unless one with the same ``payload["key"]`` waits to start (coalescing the
    hints of one object: a burst of webhooks about it re-reads it once). True if added."""
    values = {"kind": kind, "payload": Jsonb(payload), "key": payload["key"], "now": now}
    return await execute(conn, _ENQUEUE_ONCE, values) == 1


async def claim(
    conn: Conn, *, me: str, kinds: Iterable[str], limit: int, now: datetime, lease: float
) -> list[Job]:
    """Due jobs (``run_at`` by ``now``), leased to ``me`` for ``lease`` seconds of database time."""
    rows = await fetchall(
        conn,
        _CLAIM,
        {"now": now, "kinds": list(kinds), "limit": limit, "me": me, "lease": lease},
    )
    return [Job(r["id"], r["kind"], r["payload"], r["attempts"], r["run_at"]) for r in rows]


async def finish(conn: Conn, job: Job, *, me: str) -> None:
    """Remove the job; in the handler's transaction this makes its effects and its end atomic."""
    if await execute(conn, _FINISH, (job.id, me)) != 1:
        raise LeaseLost(f"job {job.id} is no longer held by {me}")


async def reschedule(conn: Conn, job: Job, *, me: str, at: datetime, error: str) -> None:
    await execute(conn, _RESCHEDULE, {"id": job.id, "me": me, "at": at, "error": error[:2000]})


async def defer(conn: Conn, job: Job, *, me: str, at: datetime) -> None:
    """Give the job back until ``at`` without counting this run as an attempt."""
    await execute(conn, _DEFER, {"id": job.id, "me": me, "at": at})


async def fail(conn: Conn, job: Job, *, me: str, now: datetime, error: str) -> None:
    """Keep the job as ``failed`` (fenced by the lease, like ``finish``)."""
    if await execute(conn, _FAIL, {"id": job.id, "me": me, "now": now, "error": error[:2000]}) != 1:
        raise LeaseLost(f"job {job.id} is no longer held by {me}")


async def heartbeat(conn: Conn, *, me: str, ids: list[int], lease: float) -> None:
    if ids:
        await execute(conn, _HEARTBEAT, {"me": me, "ids": ids, "lease": lease})


async def release(conn: Conn, *, me: str, ids: list[int]) -> None:
    """Give jobs back untouched (graceful shutdown, or after losing the database mid-job)."""
    if ids:
        await execute(conn, _RELEASE, {"me": me, "ids": ids})


async def next_due(conn: Conn, *, kinds: Iterable[str]) -> datetime | None:
    row = await fetchone(conn, _NEXT_DUE, {"kinds": list(kinds)})
    return None if row is None else row["run_at"]


async def list_failed(conn: Conn, *, before: int | None, limit: int) -> list[DictRow]:
    """Failed jobs, newest first; ``before`` is the last id of the previous page."""
    return await fetchall(conn, _LIST_FAILED, {"before": before, "limit": limit})


async def get(conn: Conn, job_id: int) -> DictRow | None:
    return await fetchone(conn, _GET, (job_id,))


async def retry(conn: Conn, job_id: int, *, now: datetime) -> DictRow | None:
    """A failed job queued again with its attempts reset; None when it is not a failed job."""
    row = await fetchone(conn, _RETRY, {"id": job_id, "now": now})
    if row is not None:
        await execute(conn, _WAKE)
    return row


_FOR_PAYLOAD = """
SELECT id, kind, status, attempts, run_at, locked_by, locked_until, last_error, created_at
FROM jobs WHERE payload->>'fulfillment_id' = %s ORDER BY id
"""


async def for_fulfillment(conn: Conn, fulfillment_id: str) -> list[DictRow]:
    """The jobs (queued, running or failed) that carry a fulfillment forward."""
    return await fetchall(conn, _FOR_PAYLOAD, (fulfillment_id,))


async def stats(conn: Conn) -> list[DictRow]:
    """Per kind: ``queued``, ``oldest_age_seconds`` and ``failed`` (see ``_STATS``)."""
    return await fetchall(conn, _STATS)


_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


class ByPayload:
    """The queued jobs of one kind found by one payload field (e.g. the send job of a delivery),
    ended or moved by another job that did their work for them. Only a job no other live worker
    holds is touched (one that is finds its work done and finishes by itself). The kind and the
    field are written into the SQL, so an expression index on ``payload->>'field'`` for that
    kind serves it."""

    def __init__(self, kind: str, field: str) -> None:
        if not (_NAME.match(kind) and _NAME.match(field)):
            raise ValueError(f"not a job kind and payload field: {kind!r}, {field!r}")
        where = (
            f"kind = '{kind}' AND payload->>'{field}' = %(value)s "
            "AND (locked_by IS NULL OR locked_by = %(me)s OR locked_until < now())"
        )
        # its work is done: a failed one goes too
        self._drop = "DELETE FROM jobs WHERE " + where
        self._reschedule = (
            "UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_at = %(at)s, "
            "attempts = attempts + 1 WHERE status = 'queued' AND " + where
        )

    async def drop(self, conn: Conn, value: str, *, me: str) -> None:
        await execute(conn, self._drop, {"value": value, "me": me})

    async def reschedule(self, conn: Conn, value: str, *, me: str, at: datetime) -> None:
        """Move the job to ``at``, its work having been attempted once (by the caller)."""
        await execute(conn, self._reschedule, {"value": value, "me": me, "at": at})


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Capped exponential backoff with full jitter: attempt 1 waits up to ``base`` seconds."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


# --- the registry of job kinds ---------------------------------------------------------------


@dataclass
class JobContext:
    """What a handler gets: its job, and ``finish`` to end it inside the handler's transaction."""

    job: Job
    worker_id: str
    now: Callable[[], datetime]
    resources: Services
    finished: bool = False

    async def finish(self, conn: Conn) -> None:
        await finish(conn, self.job, me=self.worker_id)
        self.finished = True


Handler = Callable[[JobContext], Awaitable[None]]
ExhaustedHandler = Callable[[JobContext, Conn, BaseException], Awaitable[None]]


@dataclass(frozen=True)
class Task:
    kind: str
    handler: Handler
    max_attempts: int = 12
    backoff: Callable[[int], float] = backoff
    on_exhausted: ExhaustedHandler | None = None


@dataclass
class Registry:
    tasks: dict[str, Task] = field(default_factory=dict)

    def add(self, task: Task) -> None:
        if task.kind in self.tasks:
            raise ValueError(f"job kind {task.kind!r} registered twice")
        self.tasks[task.kind] = task

    def __contains__(self, kind: str) -> bool:
        return kind in self.tasks
