"""Creating deliveries, and the ``delivery.send`` job that makes them: every attempt recorded,
failures retried on Chargebee's schedule (2 min … 2 days, with jitter), a channel disabled when
its endpoint is gone or has failed for 5 days straight. Segment deliveries of one channel go out
together, one ``/v1/batch`` call for everything pending."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from offerd.common.ids import new_id
from offerd.common.secrets import box_for
from offerd.db import Conn, transaction
from offerd.notifications import channel_secrets, channel_store, hosts, schedule, store
from offerd.notifications.channels import Channel, Outcome, registry
from offerd.notifications.channels.segment import SegmentChannel, fits
from offerd.observability import DELIVERIES
from offerd.queue import jobs

log = structlog.get_logger("offerd.notifications.dispatch")

KIND = "delivery.send"
FAILING_LIMIT = timedelta(days=5)
SEGMENT_BATCH = 100

_channels: dict[str, Channel] | None = None


def channels() -> dict[str, Channel]:
    global _channels
    if _channels is None:
        _channels = registry()
    return _channels


@dataclass(frozen=True)
class Target:
    """Where one delivery of an event goes, or why it is skipped."""

    channel: str
    destination: str
    channel_id: str | None = None
    skip_reason: str | None = None


async def create(
    conn: Conn,
    *,
    site_id: str,
    purpose: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    targets: Sequence[Target],
    now: datetime,
    fulfillment_id: str | None = None,
) -> int:
    """Record an event's deliveries, one per target (``skipped`` with its reason, or ``pending``
    with its send job), in one statement. Returns how many were new."""
    if not targets:
        return 0
    return await store.insert(
        conn,
        {
            "site_id": site_id,
            "purpose": purpose,
            "event_id": event_id,
            "event_type": event_type,
            "fulfillment_id": fulfillment_id,
            "payload": payload,
            "now": now,
        },
        [
            {
                "id": new_id("dl"),
                "channel": t.channel,
                "channel_id": t.channel_id,
                "destination": t.destination,
                "skip_reason": t.skip_reason,
            }
            for t in targets
        ],
        job_kind=KIND,
    )


async def processing_recorded(conn: Conn, fulfillment_id: str) -> bool:
    """Whether the fulfillment's one processing delivery (its request to the merchant) exists."""
    return await store.processing_for(conn, fulfillment_id) is not None


async def requeue(conn: Conn, delivery: Mapping[str, Any], *, now: datetime) -> None:
    """An admin's retry: the delivery is pending again with a fresh send job (in place of the
    one kept as failed when its attempts ran out)."""
    await store.reopen(conn, delivery["id"], now=now)
    await store.drop_send_job(conn, delivery["id"], me="admin")
    await jobs.enqueue(conn, KIND, {"delivery_id": delivery["id"]}, now=now)


async def send(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    delivery_id = ctx.job.payload["delivery_id"]
    outcome: Outcome | None = None
    slots = svc.delivery_hosts
    host: str | None = None
    try:
        async with svc.db.connection() as conn:
            row = await store.for_sending(conn, delivery_id)
            if row is None or row["status"] != "pending":
                await ctx.finish(conn)
                return
            delivery = channel_secrets.reveal_delivery(box_for(svc.settings), row)
            if delivery["purpose"] == "notification" and not delivery["channel_enabled"]:
                outcome = Outcome(False, error="the channel is disabled or deleted", final=True)
                await _close(conn, [delivery], outcome, ctx)
                return
            wanted = hosts.host_of(delivery)
            if wanted is not None:
                if not slots.take(wanted):
                    raise jobs.Defer(
                        f"{slots.per_host} deliveries to {wanted} are under way",
                        delay=random.uniform(1.0, 3.0),
                    )
                host = wanted
            if delivery["channel"] == "segment":
                # holds the channel's batch lock, and so this connection, until the batch is
                # recorded
                outcome = await _send_segment(conn, delivery, ctx)
        if outcome is None:
            # no connection is held while the destination answers (up to the deadline): slow
            # receivers must not take the pool from the API and the other jobs
            channel = channels()[delivery["channel"]]
            outcome = await attempt(svc, lambda: channel.deliver(delivery, svc))
            async with svc.db.connection() as conn:
                await _close(conn, [delivery], outcome, ctx)
    finally:
        if host is not None:
            slots.give(host)
    if not (outcome.ok or outcome.final):
        raise jobs.Retry(outcome.error or "delivery failed", delay=outcome.retry_after)


async def attempt(services: Any, deliver: Callable[[], Awaitable[Outcome]]) -> Outcome:
    """One attempt, bounded as a whole (resolving, connecting, sending and reading together):
    a destination that trickles its answer a byte at a time gets a failed attempt at the
    deadline, retried on the schedule, instead of holding a worker slot for days."""
    deadline: float = services.settings.delivery_deadline_seconds
    try:
        async with asyncio.timeout(deadline) as cm:
            return await deliver()
    except TimeoutError:
        if not cm.expired():
            raise
        return Outcome(
            False,
            latency_ms=int(deadline * 1000),
            error=f"no complete answer within {deadline:g} s (connect, send and read together)",
        )


async def _close(
    conn: Conn, sent: Sequence[Mapping[str, Any]], outcome: Outcome, ctx: jobs.JobContext
) -> None:
    """Record the attempt; a success or a final failure also ends this job, in one transaction."""
    async with transaction(conn):
        await _settle(conn, sent, outcome, ctx, now=ctx.now())
        if outcome.ok or outcome.final:
            await ctx.finish(conn)


async def _settle(
    conn: Conn,
    deliveries: Sequence[Mapping[str, Any]],
    outcome: Outcome,
    ctx: jobs.JobContext,
    *,
    now: datetime,
) -> None:
    """Record the attempt on every delivery it carried. The first is this job's own; the others
    (Segment batch companions) have their jobs ended or moved to the next attempt here."""
    status = "succeeded" if outcome.ok else "failed" if outcome.final else "pending"
    counted = "retried" if status == "pending" else status
    for d in deliveries:
        DELIVERIES.labels(d["channel"], counted).inc()
        if status == "failed":
            log.warning(
                "delivery.failed",
                delivery_id=d["id"],
                site_id=d["site_id"],
                channel=d["channel"],
                channel_id=d["channel_id"],
                fulfillment_id=d["fulfillment_id"],
                status_code=outcome.status_code,
                error=outcome.error,
            )
        await store.record_attempt(
            conn,
            d["id"],
            at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            excerpt=outcome.excerpt,
        )
        await store.settle(
            conn, d["id"], status=status, now=now, code=outcome.status_code, error=outcome.error
        )
    for companion in deliveries[1:]:
        if outcome.ok or outcome.final:
            await store.drop_send_job(conn, companion["id"], me=ctx.worker_id)
        else:
            delay = outcome.retry_after or schedule.retry_delay(ctx.job.attempts)
            await store.reschedule_send_job(
                conn, companion["id"], me=ctx.worker_id, at=now + timedelta(seconds=delay)
            )
    first = deliveries[0]
    if first["purpose"] != "notification" or first["channel_id"] is None:
        return
    site, channel = first["site_id"], first["channel_id"]
    if outcome.disable_channel:
        await channel_store.disable(conn, site, channel, outcome.disable_channel, now)
    elif outcome.ok:
        await channel_store.healthy(conn, site, channel)
    elif first["channel"] == "webhook":
        since = await channel_store.failing(conn, site, channel, now)
        if since is not None and now - since >= FAILING_LIMIT:
            await channel_store.disable(
                conn, site, channel, f"failing since {since.isoformat()} (5 days straight)", now
            )


async def _send_segment(conn: Conn, delivery: Mapping[str, Any], ctx: jobs.JobContext) -> Outcome:
    """Send this delivery with its channel's other pending ones, one batch at a time per channel.

    The channel's advisory lock is held from reading what is pending until the outcome is
    recorded: the send jobs of the companions, waiting for it, then find their deliveries
    settled and finish without sending them again.
    """
    lock = f"segment:{delivery['site_id']}:{delivery['channel_id']}"
    await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock,))
    try:
        fresh = await store.for_sending(conn, delivery["id"])
        if fresh is None or fresh["status"] != "pending":
            await ctx.finish(conn)
            return Outcome(True)
        companions = await store.pending_for_channel(
            conn,
            site_id=delivery["site_id"],
            channel_id=delivery["channel_id"],
            exclude=delivery["id"],
            limit=SEGMENT_BATCH - 1,
        )
        box = box_for(ctx.resources.settings)
        batch, _ = fits([channel_secrets.reveal_delivery(box, d) for d in [fresh, *companions]])
        if not batch or batch[0]["id"] != fresh["id"]:
            outcome = Outcome(False, error="the event is larger than Segment's 32 KB", final=True)
            await _close(conn, [fresh], outcome, ctx)
            return outcome
        channel = channels()["segment"]
        assert isinstance(channel, SegmentChannel)
        sent = [dict(d) for d in batch]
        outcome = await attempt(ctx.resources, lambda: channel.deliver_batch(sent, ctx.resources))
        await _close(conn, sent, outcome, ctx)
        return outcome
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock,))


async def exhausted(ctx: jobs.JobContext, conn: Conn, exc: BaseException) -> None:
    delivery_id = ctx.job.payload["delivery_id"]
    error = f"gave up after {ctx.job.attempts} attempts: {exc}"[:2000]
    row = await store.give_up(conn, delivery_id, now=ctx.now(), error=error)
    if row is not None:
        DELIVERIES.labels(row["channel"], "gave_up").inc()
        log.warning(
            "delivery.gave_up",
            delivery_id=delivery_id,
            site_id=row["site_id"],
            channel=row["channel"],
            channel_id=row["channel_id"],
            fulfillment_id=row["fulfillment_id"],
            job_id=ctx.job.id,
            error=error,
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
