"""SQL for deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone

INSERT = """
INSERT INTO deliveries (id, site_id, purpose, channel, channel_id, event_id, event_type,
    fulfillment_id, destination, payload, status, skip_reason, created_at, updated_at)
VALUES (%(id)s, %(site_id)s, %(purpose)s, %(channel)s, %(channel_id)s, %(event_id)s,
    %(event_type)s, %(fulfillment_id)s, %(destination)s, %(payload)s, %(status)s,
    %(skip_reason)s, %(now)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING *
"""

# What sending needs: the delivery and the secret and settings of its site.
FOR_SENDING = """
SELECT d.*, s.webhook_secret AS site_webhook_secret, s.settings AS site_settings
FROM deliveries d JOIN sites s ON s.id = d.site_id
WHERE d.id = %s
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

PROCESSING_FOR = "SELECT id FROM deliveries WHERE fulfillment_id = %s AND purpose = 'processing'"

ATTEMPTS = """
SELECT attempted_at, status_code, latency_ms, error, response_excerpt
FROM delivery_attempts WHERE delivery_id = %s ORDER BY id
"""


async def insert(conn: Conn, values: dict[str, Any]) -> DictRow | None:
    """The new delivery, or None when it exists already (its unique key: a retried job)."""
    return await fetchone(conn, INSERT, {**values, "payload": Jsonb(values["payload"])})


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


async def processing_for(conn: Conn, fulfillment_id: str) -> DictRow | None:
    return await fetchone(conn, PROCESSING_FOR, (fulfillment_id,))


async def attempts(conn: Conn, delivery_id: str) -> list[DictRow]:
    return await fetchall(conn, ATTEMPTS, (delivery_id,))
