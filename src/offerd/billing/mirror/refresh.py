"""The re-read job: one mirrored object read again from its provider and stored as it is now.

Webhooks queue it (coalesced: one waiting job per object); so does a decision that found a
subscription missing and could not wait for it. A transient provider error retries it with
backoff (honouring ``Retry-After``); refused credentials mark the provider unhealthy and end it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import structlog

from offerd.billing.mirror import service
from offerd.billing.mirror.objects import Kind
from offerd.billing.provider import (
    PermanentProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.db import Conn
from offerd.queue import jobs

KIND = "billing.mirror_refresh"

log = structlog.get_logger("offerd.billing")


async def enqueue(
    conn: Conn, site_id: str, targets: Iterable[tuple[Kind, str]], *, now: datetime
) -> int:
    """Queue a re-read of each object (in the caller's transaction); returns how many were new."""
    added = 0
    for kind, oid in dict.fromkeys(targets):
        payload = {"site_id": site_id, "kind": kind, "id": oid, "key": f"{site_id}/{kind}/{oid}"}
        added += await jobs.enqueue_once(conn, KIND, payload, now=now)
    return added


async def handle(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    payload = ctx.job.payload
    site_id, kind, oid = payload["site_id"], payload["kind"], payload["id"]
    async with svc.db.connection() as conn:
        source = await svc.billing.source(conn, site_id)
    if source is None:
        return  # the site went back to the ledger (or the site is gone): nothing to mirror
    try:
        await service.refresh(svc.db, source, site_id, kind, oid)
    except TransientProviderError as exc:
        raise jobs.Retry(str(exc), delay=exc.retry_after) from exc
    except ProviderUnauthorized as exc:
        async with svc.db.connection() as conn:
            await svc.billing.unauthorized(conn, site_id, str(exc))
        raise jobs.Permanent(str(exc)) from exc
    except PermanentProviderError as exc:
        log.warning("billing.mirror_refresh_refused", site_id=site_id, kind=kind, id=oid)
        raise jobs.Permanent(str(exc)) from exc


TASKS = [
    jobs.Task(KIND, handle, max_attempts=10, backoff=lambda n: jobs.backoff(n, base=2.0, cap=300.0))
]
