"""The job queue on PostgreSQL: enqueue in the caller's transaction, claim with a lease, finish
by deleting the row in the same transaction as the job's effects.

Why not a queue library: every state change here must be written together with the job that
continues it (a plain INSERT on the caller's connection), and a job's effects must commit together
with its removal from the queue, fenced by the lease (``finish`` refuses when another worker took
the job over, rolling the effects back). Both are one statement each on our own table.

Delivery is at-least-once: a worker that dies mid-job leaves a lease that expires after
``job_lease_seconds``; the job is then claimed again, by another worker (a live worker never
re-claims its own jobs, which it may still be running). Handlers are idempotent.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from offerd.db import Conn, execute, fetchall, fetchone


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


class Permanent(Exception):
    """Raised by a handler for a failure that no retry will fix; goes straight to ``on_exhausted``."""


_ENQUEUE = """
INSERT INTO jobs (kind, payload, run_at, created_at) VALUES (%s, %s, %s, %s) RETURNING id
"""

_CLAIM = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE run_at <= %(now)s
      AND (locked_until IS NULL OR locked_until < %(now)s)
      AND locked_by IS DISTINCT FROM %(me)s
      AND kind = ANY(%(kinds)s)
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET locked_by = %(me)s, locked_until = %(until)s, attempts = j.attempts + 1
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.kind, j.payload, j.attempts, j.run_at
"""

_FINISH = "DELETE FROM jobs WHERE id = %s AND locked_by = %s"

_RESCHEDULE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_at = %(at)s, last_error = %(error)s
WHERE id = %(id)s AND locked_by = %(me)s
"""

_HEARTBEAT = """
UPDATE jobs SET locked_until = %(until)s WHERE locked_by = %(me)s AND id = ANY(%(ids)s)
"""

_RELEASE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
WHERE locked_by = %(me)s AND id = ANY(%(ids)s)
"""

_NEXT_DUE = """
SELECT run_at FROM jobs WHERE locked_by IS NULL AND kind = ANY(%(kinds)s)
ORDER BY run_at, id LIMIT 1
"""


async def enqueue(
    conn: Conn, kind: str, payload: dict[str, Any], *, now: datetime, run_at: datetime | None = None
) -> int:
    """Add a job; call inside the transaction whose change the job continues."""
    row = await fetchone(conn, _ENQUEUE, (kind, Jsonb(payload), run_at or now, now))
    assert row is not None
    job_id: int = row["id"]
    return job_id


async def claim(
    conn: Conn, *, me: str, kinds: Iterable[str], limit: int, now: datetime, lease: float
) -> list[Job]:
    rows = await fetchall(
        conn,
        _CLAIM,
        {
            "now": now,
            "kinds": list(kinds),
            "limit": limit,
            "me": me,
            "until": now + timedelta(seconds=lease),
        },
    )
    return [Job(r["id"], r["kind"], r["payload"], r["attempts"], r["run_at"]) for r in rows]


async def finish(conn: Conn, job: Job, *, me: str) -> None:
    """Remove the job; in the handler's transaction this makes its effects and its end atomic."""
    if await execute(conn, _FINISH, (job.id, me)) != 1:
        raise LeaseLost(f"job {job.id} is no longer held by {me}")


async def reschedule(conn: Conn, job: Job, *, me: str, at: datetime, error: str) -> None:
    await execute(conn, _RESCHEDULE, {"id": job.id, "me": me, "at": at, "error": error[:2000]})


async def heartbeat(conn: Conn, *, me: str, ids: list[int], now: datetime, lease: float) -> None:
    if ids:
        await execute(
            conn, _HEARTBEAT, {"me": me, "ids": ids, "until": now + timedelta(seconds=lease)}
        )


async def release(conn: Conn, *, me: str, ids: list[int]) -> None:
    """Give jobs back untouched (graceful shutdown, or after losing the database mid-job)."""
    if ids:
        await execute(conn, _RELEASE, {"me": me, "ids": ids})


async def next_due(conn: Conn, *, kinds: Iterable[str]) -> datetime | None:
    row = await fetchone(conn, _NEXT_DUE, {"kinds": list(kinds)})
    return None if row is None else row["run_at"]


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
    resources: Any
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
