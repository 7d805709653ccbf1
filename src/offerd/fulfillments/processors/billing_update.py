"""billing_update: the worker applies the option's billing action through the billing provider.

Success completes the fulfillment; a domain error fails it with ``billing_update_failed``; a
transient error is retried with capped exponential backoff and jitter (or after the
provider's ``Retry-After``), then fails it with
``internal_error``. The change, the status, the event and the job's end are one transaction.
"""

from __future__ import annotations

from offerd.billing.actions import parse_action
from offerd.billing.provider import (
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
        option = row["option"]
        billing = await svc.billing.of(conn, row["site_id"])
        try:
            await billing.apply(
                conn,
                site_id=row["site_id"],
                subscription_id=row["subscription_id"],
                action=parse_action(option["billing_action"]),
                idempotency_key=row["id"],
                now=now,
            )
        except PermanentProviderError as exc:
            if isinstance(exc, ProviderUnauthorized):
                await svc.billing.unauthorized(conn, row["site_id"], str(exc))
            await transitions.fail(conn, row, "billing_update_failed", str(exc), now=now)
        except TransientProviderError as exc:
            raise jobs.Retry(str(exc), delay=exc.retry_after) from exc
        else:
            await svc.billing.answered(conn, row["site_id"], billing)
            await transitions.complete(conn, row, now=now)
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
