"""SQL for deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone
from offerd.queue import jobs

# The deliveries of one event (one row per channel, the payload once), and the send job of each
# pending one, in one statement. A delivery that exists already (its unique key: a retried job)
# is left alone and gets no second job.
INSERT = (
    """
WITH d AS (
    INSERT INTO deliveries (id, site_id, purpose, channel, channel_id, event_id, event_type,
        fulfillment_id, destination, payload, status, skip_reason, created_at, updated_at)
    SELECT t.id, %(site_id)s, %(purpose)s, t.channel, t.channel_id, %(event_id)s, %(event_type)s,
        %(fulfillment_id)s, t.destination, %(payload)s,
        CASE WHEN t.skip_reason IS NULL THEN 'pending' ELSE 'skipped' END, t.skip_reason,
        %(now)s, %(now)s
    FROM jsonb_to_recordset(%(targets)s)
        AS t(id text, channel text, channel_id text, destination text, skip_reason text)
    ON CONFLICT DO NOTHING
    RETURNING id, status
), j AS (
    """
    + jobs.enqueue_select(
        kind="%(job_kind)s",
        payload="jsonb_build_object('delivery_id', d.id)",
        run_at="%(now)s",
        source="d WHERE d.status = 'pending'",
    )
    + """
)
SELECT count(*) AS created FROM d
"""
)

# What sending needs: the delivery, its site's secret and settings, and its channel's.
_SENDING = """
SELECT d.*, s.webhook_secret AS site_webhook_secret, s.settings AS site_settings,
       c.secret AS channel_secret, c.config AS channel_config, c.enabled AS channel_enabled
FROM deliveries d
JOIN sites s ON s.id = d.site_id
LEFT JOIN notification_channels c ON c.site_id = d.site_id AND c.id = d.channel_id
"""
FOR_SENDING = _SENDING + " WHERE d.id = %s"

# A channel's other pending deliveries (read under the channel's advisory lock).
PENDING_FOR_CHANNEL = (
    _SENDING
    + """
WHERE d.site_id = %(site)s AND d.channel_id = %(channel)s AND d.status = 'pending'
  AND d.id <> %(exclude)s
ORDER BY d.created_at, d.id
LIMIT %(limit)s
"""
)

# A companion's send job (a Segment batch sent its delivery with another's).
SEND_JOB = jobs.ByPayload("delivery.send", "delivery_id")

REOPEN = """
UPDATE deliveries SET status = 'pending', skip_reason = NULL, updated_at = %s WHERE id = %s
"""

ATTEMPT = """
INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, latency_ms, error,
    response_excerpt)
VALUES (%s, %s, %s, %s, %s, %s)
"""

SETTLE = """
UPDATE deliveries
SET status = %(status)s, attempts = attempts + %(attempted)s, last_status_code = %(code)s,
    last_error = %(error)s, updated_at = %(now)s,
    delivered_at = CASE WHEN %(status)s = 'succeeded' THEN %(now)s ELSE delivered_at END
WHERE id = %(id)s AND status = 'pending'
"""

# A pending delivery whose attempts ran out: failed, without counting an attempt.
GIVE_UP = """
UPDATE deliveries SET status = 'failed', last_status_code = NULL, last_error = %(error)s,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'pending'
RETURNING id, site_id, channel, channel_id, fulfillment_id
"""

PROCESSING_FOR = "SELECT id FROM deliveries WHERE fulfillment_id = %s AND purpose = 'processing'"

ATTEMPTS = """
SELECT attempted_at, status_code, latency_ms, error, response_excerpt
FROM delivery_attempts WHERE delivery_id = %s ORDER BY id
"""


async def insert(
    conn: Conn, values: dict[str, Any], targets: list[dict[str, Any]], *, job_kind: str
) -> int:
    """How many of the deliveries were new."""
    row = await fetchone(
        conn,
        INSERT,
        {
            **values,
            "payload": Jsonb(values["payload"]),
            "targets": Jsonb(targets),
            "job_kind": job_kind,
        },
    )
    assert row is not None
    created: int = row["created"]
    return created


async def for_sending(conn: Conn, delivery_id: str) -> DictRow | None:
    return await fetchone(conn, FOR_SENDING, (delivery_id,))


async def record_attempt(
    conn: Conn,
    delivery_id: str,
    *,
    at: datetime,
    status_code: int | None,
    latency_ms: int | None,
    error: str | None,
    excerpt: str | None,
) -> None:
    await conn.execute(ATTEMPT, (delivery_id, at, status_code, latency_ms, error, excerpt))


async def settle(
    conn: Conn,
    delivery_id: str,
    *,
    status: str,
    now: datetime,
    attempted: bool = True,
    code: int | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        SETTLE,
        {
            "id": delivery_id,
            "status": status,
            "attempted": 1 if attempted else 0,
            "code": code,
            "error": error,
            "now": now,
        },
    )


async def give_up(conn: Conn, delivery_id: str, *, now: datetime, error: str) -> DictRow | None:
    """The delivery, failed; None when it was no longer pending."""
    return await fetchone(conn, GIVE_UP, {"id": delivery_id, "now": now, "error": error})


async def processing_for(conn: Conn, fulfillment_id: str) -> DictRow | None:
    return await fetchone(conn, PROCESSING_FOR, (fulfillment_id,))


async def attempts(conn: Conn, delivery_id: str) -> list[DictRow]:
    return await fetchall(conn, ATTEMPTS, (delivery_id,))


async def pending_for_channel(
    conn: Conn, *, site_id: str, channel_id: str, exclude: str, limit: int
) -> list[DictRow]:
    return await fetchall(
        conn,
        PENDING_FOR_CHANNEL,
        {"site": site_id, "channel": channel_id, "exclude": exclude, "limit": limit},
    )


async def drop_send_job(conn: Conn, delivery_id: str, *, me: str) -> None:
    await SEND_JOB.drop(conn, delivery_id, me=me)


async def reschedule_send_job(conn: Conn, delivery_id: str, *, me: str, at: datetime) -> None:
    await SEND_JOB.reschedule(conn, delivery_id, me=me, at=at)


async def reopen(conn: Conn, delivery_id: str, *, now: datetime) -> None:
    await conn.execute(REOPEN, (now, delivery_id))


LIST = """
SELECT * FROM deliveries
WHERE site_id = %(site)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(event_type)s::text IS NULL OR event_type = %(event_type)s)
  AND (%(fulfillment)s::text IS NULL OR fulfillment_id = %(fulfillment)s)
  AND (%(before)s::text IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s
"""

GET = "SELECT * FROM deliveries WHERE site_id = %s AND id = %s"


async def list_deliveries(
    conn: Conn,
    site_id: str,
    *,
    status: str | None,
    channel: str | None,
    event_type: str | None,
    fulfillment_id: str | None,
    before: str | None,
    limit: int,
) -> list[DictRow]:
    return await fetchall(
        conn,
        LIST,
        {
            "site": site_id,
            "status": status,
            "channel": channel,
            "event_type": event_type,
            "fulfillment": fulfillment_id,
            "before": before,
            "limit": limit,
        },
    )


async def test_delivery(conn: Conn, site_id: str, event_id: str) -> DictRow | None:
    return await fetchone(
        conn,
        "SELECT * FROM deliveries WHERE purpose = 'test' AND event_id = %s AND site_id = %s",
        (event_id, site_id),
    )


async def get(conn: Conn, site_id: str, delivery_id: str) -> DictRow | None:
    return await fetchone(conn, GET, (site_id, delivery_id))
