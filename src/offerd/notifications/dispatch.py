"""Creating deliveries and the ``delivery.send`` job that makes them, retries them on Chargebee's
schedule, and records every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd import jobs
from offerd.db import Conn, transaction
from offerd.ids import new_id
from offerd.notifications import schedule, store
from offerd.notifications.channels import Channel, registry

KIND = "delivery.send"

_channels: dict[str, Channel] | None = None


def channels() -> dict[str, Channel]:
    global _channels
    if _channels is None:
        _channels = registry()
    return _channels


async def create(
    conn: Conn,
    *,
    site_id: str,
    purpose: str,
    channel: str,
    event_id: str,
    event_type: str,
    destination: str,
    payload: dict[str, Any],
    now: datetime,
    fulfillment_id: str | None = None,
    channel_id: str | None = None,
    skip_reason: str | None = None,
) -> DictRow | None:
    """Record a delivery (``skipped`` with its reason, or ``pending`` with its send job)."""
    row = await store.insert(
        conn,
        {
            "id": new_id("dl"),
            "site_id": site_id,
            "purpose": purpose,
            "channel": channel,
            "channel_id": channel_id,
            "event_id": event_id,
            "event_type": event_type,
            "fulfillment_id": fulfillment_id,
            "destination": destination,
            "payload": payload,
            "status": "skipped" if skip_reason else "pending",
            "skip_reason": skip_reason,
            "now": now,
        },
    )
    if row is not None and skip_reason is None:
        await jobs.enqueue(conn, KIND, {"delivery_id": row["id"]}, now=now)
    return row


async def send(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    delivery_id = ctx.job.payload["delivery_id"]
    async with svc.db.connection() as conn:
        delivery = await store.for_sending(conn, delivery_id)
        if delivery is None or delivery["status"] != "pending":
            await ctx.finish(conn)
            return
        outcome = await channels()[delivery["channel"]].deliver(delivery, svc)
        now = ctx.now()
        async with transaction(conn):
            await store.record_attempt(
                conn,
                delivery_id,
                at=now,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
                excerpt=outcome.excerpt,
            )
            if outcome.ok or outcome.final:
                await store.settle(
                    conn,
                    delivery_id,
                    status="succeeded" if outcome.ok else "failed",
                    now=now,
                    code=outcome.status_code,
                    error=outcome.error,
                )
                await ctx.finish(conn)
                return
            await store.settle(
                conn,
                delivery_id,
                status="pending",
                now=now,
                code=outcome.status_code,
                error=outcome.error,
            )
    delay = outcome.retry_after if outcome.retry_after is not None else None
    raise jobs.Retry(outcome.error or "delivery failed", delay=delay)


async def exhausted(ctx: jobs.JobContext, conn: Conn, exc: BaseException) -> None:
    await store.settle(
        conn,
        ctx.job.payload["delivery_id"],
        status="failed",
        now=ctx.now(),
        attempted=False,
        error=f"gave up after {ctx.job.attempts} attempts: {exc}"[:2000],
    )


TASKS = [
    jobs.Task(
        KIND,
        send,
        max_attempts=schedule.MAX_ATTEMPTS,
        backoff=schedule.retry_delay,
        on_exhausted=exhausted,
    )
]
