"""The initial import of a remote provider's objects into the mirror: plans (prices), coupons,
customers, then subscriptions, a page of 100 at a time through the provider's SDK.

Resumable: each page's rows and the cursor after it commit in one transaction
(``billing_syncs``), so an import that crashed (kill -9, a lost database, a deploy) or failed
(refused credentials, the provider down too long) resumes at the first page not written, and
one that completed starts over. Writing a page twice is harmless: writes are ordered by the
time their read started, so a webhook's newer re-read is never overwritten by an older page.

One import per site at a time, across processes (a session advisory lock held on a connection
of its own while it runs). The next page is requested while the current one is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from offerd.billing import mirror_store as store
from offerd.billing.mirror import service
from offerd.billing.mirror.objects import KINDS, TABLES, Kind, MirrorSource, Page
from offerd.billing.provider import (
    PermanentProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.db import Conn, Database
from offerd.queue import jobs

PAGE_SIZE = 100
# a page's transient failures are retried this many times in the import itself (then the job is
# retried later, resuming at the same page)
PAGE_ATTEMPTS = 4

Progress = Callable[[Kind, int], None]  # (kind, objects of that kind seen so far)


class AlreadyRunning(Exception):  # noqa: N818 - an outcome
    """Another process is importing this site now."""


class NotRemote(Exception):  # noqa: N818 - an outcome
    """The site is on the built-in ledger: there is nothing to import."""


@dataclass
class Outcome:
    seen: dict[str, int]  # objects read per kind, and "skipped" (no offerd equivalent)


_PHASE_OF: dict[str, Kind] = {table: kind for kind, table in TABLES.items()}


async def _page(
    source: MirrorSource,
    kind: Kind,
    cursor: str | None,
    size: int,
    sleep: Callable[[float], Awaitable[Any]],
) -> Page:
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        try:
            return await source.page(kind, cursor, size)
        except TransientProviderError as exc:
            if attempt == PAGE_ATTEMPTS:
                raise
            await sleep(exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def run(
    db: Database,
    source: MirrorSource,
    site_id: str,
    *,
    now: Callable[[], datetime],
    progress: Progress = lambda _kind, _n: None,
    page_size: int = PAGE_SIZE,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Outcome:
    """Import (or resume importing) the site's objects. Provider errors propagate (the caller
    records them: ``fail``); the sync row stays resumable."""
    async with db.connection() as lock:
        if not await store.lock_sync(lock, site_id):
            raise AlreadyRunning(f"site {site_id} is being imported by another process")
        try:
            return await _import(db, source, site_id, now, progress, page_size, sleep)
        finally:
            await store.unlock_sync(lock, site_id)


async def _import(
    db: Database,
    source: MirrorSource,
    site_id: str,
    now: Callable[[], datetime],
    progress: Progress,
    page_size: int,
    sleep: Callable[[float], Awaitable[Any]],
) -> Outcome:
    async with db.connection() as conn:
        row = await store.start_sync(conn, site_id, now())
    seen: dict[str, int] = {k: int(v) for k, v in (row["seen"] or {}).items()}
    first = KINDS.index(_PHASE_OF[row["phase"]])
    cursor: str | None = row["cursor"]
    for kind in KINDS[first:]:
        progress(kind, seen.get(kind, 0))
        at = await service.read_time(db)
        pending = asyncio.ensure_future(_page(source, kind, cursor, page_size, sleep))
        while True:
            page = await pending
            next_at = None
            if page.next_cursor is not None:  # ask for the next page while writing this one
                next_at = await service.read_time(db)
                pending = asyncio.ensure_future(
                    _page(source, kind, page.next_cursor, page_size, sleep)
                )
            seen[kind] = seen.get(kind, 0) + len(page.rows) + len(page.skipped)
            if page.skipped:
                seen["skipped"] = seen.get("skipped", 0) + len(page.skipped)
            last = page.next_cursor is None
            done = last and kind == KINDS[-1]
            position = _after(kind, page.next_cursor)
            counts = dict(seen)

            async def advance(
                conn: Conn,
                position: tuple[str, str | None] = position,
                counts: dict[str, int] = counts,
                done: bool = done,
            ) -> None:
                # the import's end commits with its last page: nothing left to resume
                await store.advance_sync(
                    conn, site_id, phase=position[0], cursor=position[1], seen=counts, now=now()
                )
                if done:
                    await store.finish_sync(conn, site_id, now())

            try:
                skipped = await service.write(db, source, site_id, page.rows, at, then=advance)
            except BaseException:
                if not last:
                    pending.cancel()
                raise
            if skipped:
                seen["skipped"] = seen.get("skipped", 0) + len(skipped)
            progress(kind, seen[kind])
            if last:
                break
            assert next_at is not None
            at, cursor = next_at, page.next_cursor
        cursor = None
    return Outcome(seen)


def _after(kind: Kind, next_cursor: str | None) -> tuple[str, str | None]:
    """Where the import goes on after this page: the same kind's next page, or the next kind's
    first (the last kind's end is recorded by ``finish_sync``)."""
    if next_cursor is not None:
        return TABLES[kind], next_cursor
    index = KINDS.index(kind)
    following = KINDS[index + 1] if index + 1 < len(KINDS) else kind
    return TABLES[following], None


async def fail(db: Database, site_id: str, error: str, now: datetime) -> None:
    async with db.connection() as conn:
        await store.fail_sync(conn, site_id, error, now)


# --- the import as a job: POST /admin/v1/sites/{site}/billing_provider/sync ---------------------

KIND = "billing.sync"


async def request(conn: Conn, site_id: str, *, now: datetime) -> None:
    """Queue the site's import (once: a second request while one waits to start is the same)
    and show it as running from now on. Call inside the request's transaction."""
    await store.start_sync(conn, site_id, now)
    await jobs.enqueue_once(conn, KIND, {"site_id": site_id, "key": f"{site_id}/sync"}, now=now)


async def handle(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    site_id = ctx.job.payload["site_id"]
    async with svc.db.connection() as conn:
        source = await svc.billing.source(conn, site_id)
    if source is None:
        await fail(svc.db, site_id, "the site's billing provider has nothing to import", ctx.now())
        return
    try:
        await run(svc.db, source, site_id, now=ctx.now)
    except AlreadyRunning:
        return  # the other process does the work (``offerd billing sync``, say)
    except TransientProviderError as exc:
        # stays resumable: the job's retry goes on from the page it could not read
        raise jobs.Retry(str(exc), delay=exc.retry_after) from exc
    except ProviderUnauthorized as exc:
        async with svc.db.connection() as conn:
            await svc.billing.unauthorized(conn, site_id, str(exc))
        await fail(svc.db, site_id, str(exc), ctx.now())
        raise jobs.Permanent(str(exc)) from exc
    except PermanentProviderError as exc:
        await fail(svc.db, site_id, str(exc), ctx.now())
        raise jobs.Permanent(str(exc)) from exc


async def exhausted(ctx: jobs.JobContext, conn: Conn, exc: BaseException) -> None:
    await store.fail_sync(conn, ctx.job.payload["site_id"], f"gave up: {exc}", ctx.now())


TASKS = [
    jobs.Task(
        KIND,
        handle,
        max_attempts=12,
        backoff=lambda n: jobs.backoff(n, base=5.0, cap=600.0),
        on_exhausted=exhausted,
    )
]


async def state(conn: Conn, site_id: str) -> dict[str, Any]:
    """The import as the billing provider's ``GET`` shows it."""
    row = await store.get_sync(conn, site_id)
    counts = await store.counts(conn, site_id)
    return {
        "state": row["state"] if row else "idle",
        "last_synced_at": int(row["last_synced_at"].timestamp())
        if row and row["last_synced_at"]
        else None,
        "counts": counts,
        "skipped": int((row["seen"] or {}).get("skipped", 0)) if row else 0,
        "last_error": row["last_error"] if row else None,
    }
