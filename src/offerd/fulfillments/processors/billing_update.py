"""billing_update: the worker applies the option's billing action through the billing provider.

Success completes the fulfillment; a domain error fails it with ``billing_update_failed``; a
transient error is retried with capped exponential backoff and jitter (or after the
provider's ``Retry-After``), then fails it with ``internal_error``. With the ledger the change,
the status, the event and the job's end are one transaction; a remote provider's change is
recorded exactly once by ``billing.remote``, and the status, the event and the job's end follow.
"""

from __future__ import annotations

from datetime import datetime

from psycopg.rows import DictRow

from offerd.billing.actions import parse_action
from offerd.billing.provider import (
    BillingProvider,
    PermanentProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.db import Conn, transaction
from offerd.fulfillments import store, transitions
from offerd.fulfillments.processors import Processor
from offerd.queue import jobs

ACCEPT_JOB = KIND = "fulfillment.billing_update"
MAX_ATTEMPTS = 8


async def handle(ctx: jobs.JobContext) -> None:
    """The ledger applies in the job's transaction, with the status and the job's end. A remote
    provider is called with no database connection held while it answers (up to its timeout:
    slow answers must not take the pool from the API and the other jobs); its exactly-once
    record is its own (billing.remote), and the outcome is written in a second transaction."""
    svc = ctx.resources
    fulfillment_id = ctx.job.payload["fulfillment_id"]
    async with svc.db.connection() as conn, transaction(conn):
        row = await store.lock_with_option(conn, fulfillment_id)
        if row is None or row["status"] != "in_progress":
            await ctx.finish(conn)  # already final: a retried job does nothing
            return
        now = ctx.now()
        if not row["subscription_id"]:
            await transitions.fail(
                conn,
                row,
                "billing_update_failed",
                "no subscription is known for this offer",
                now=now,
            )
            await ctx.finish(conn)
            return
        billing = await svc.billing.of(conn, row["site_id"])
        if not billing.remote:
            error = await _apply(billing, conn, row, now)
            await _settle(ctx, conn, row, billing, error, now)
            return
    error = await _apply(billing, None, row, now)
    async with svc.db.connection() as conn, transaction(conn):
        row = await store.lock_with_option(conn, fulfillment_id)
        if row is None or row["status"] != "in_progress":
            await ctx.finish(conn)  # ended meanwhile (it expired): nothing more to write
            return
        await _settle(ctx, conn, row, billing, error, ctx.now())


async def _apply(
    billing: BillingProvider, conn: Conn | None, row: DictRow, now: datetime
) -> PermanentProviderError | None:
    """Apply the option's action; a refusal is returned, a transient failure retries the job."""
    try:
        await billing.apply(
            conn,
            site_id=row["site_id"],
            subscription_id=row["subscription_id"],
            action=parse_action(row["option"]["billing_action"]),
            idempotency_key=row["id"],
            now=now,
        )
    except PermanentProviderError as exc:
        return exc
    except TransientProviderError as exc:
        raise jobs.Retry(str(exc), delay=exc.retry_after) from exc
    return None


async def _settle(
    ctx: jobs.JobContext,
    conn: Conn,
    row: DictRow,
    billing: BillingProvider,
    error: PermanentProviderError | None,
    now: datetime,
) -> None:
    svc = ctx.resources
    if error is None:
        await svc.billing.answered(conn, row["site_id"], billing)
        await transitions.complete(conn, row, now=now)
    else:
        if isinstance(error, ProviderUnauthorized):
            await svc.billing.unauthorized(conn, row["site_id"], str(error))
        await transitions.fail(conn, row, "billing_update_failed", str(error), now=now)
    await ctx.finish(conn)


async def exhausted(ctx: jobs.JobContext, conn: Conn, exc: BaseException) -> None:
    row = await store.lock(conn, ctx.job.payload["fulfillment_id"])
    if row is not None and row["status"] == "in_progress":
        message = f"the billing provider kept failing ({ctx.job.attempts} attempts): {exc}"
        await transitions.fail(conn, row, "internal_error", message, now=ctx.now())


TASKS = [
    jobs.Task(
        KIND,
        handle,
        max_attempts=MAX_ATTEMPTS,
        backoff=lambda attempt: jobs.backoff(attempt, base=2.0, cap=300.0),
        on_exhausted=exhausted,
    )
]


class BillingUpdate(Processor):
    accept_job = KIND
    tasks = TASKS


PROCESSOR = BillingUpdate()
