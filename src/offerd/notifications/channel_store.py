"""SQL for notification channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone

UPSERT = """
INSERT INTO notification_channels (site_id, id, type, config, secret, event_types,
    created_at, updated_at)
VALUES (%(site)s, %(id)s, %(type)s, %(config)s, %(secret)s, %(event_types)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET type = EXCLUDED.type, config = EXCLUDED.config,
    secret = coalesce(EXCLUDED.secret,
                      CASE WHEN notification_channels.type = EXCLUDED.type
                           THEN notification_channels.secret END),
    event_types = EXCLUDED.event_types, enabled = true, disabled_reason = NULL,
    failing_since = NULL, updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

GET = "SELECT * FROM notification_channels WHERE site_id = %s AND id = %s"
LIST = "SELECT * FROM notification_channels WHERE site_id = %s ORDER BY id"
DELETE = "DELETE FROM notification_channels WHERE site_id = %s AND id = %s RETURNING id"

SUBSCRIBED = """
SELECT * FROM notification_channels
WHERE site_id = %s AND enabled AND %s = ANY(event_types)
ORDER BY id
"""

FAILING = """
UPDATE notification_channels SET failing_since = coalesce(failing_since, %(now)s)
WHERE site_id = %(site)s AND id = %(id)s
RETURNING failing_since
"""
HEALTHY = """
UPDATE notification_channels SET failing_since = NULL
WHERE site_id = %s AND id = %s AND failing_since IS NOT NULL
"""
DISABLE = """
UPDATE notification_channels SET enabled = false, disabled_reason = %(reason)s, updated_at = %(now)s
WHERE site_id = %(site)s AND id = %(id)s AND enabled
"""


async def upsert(
    conn: Conn,
    *,
    site_id: str,
    channel_id: str,
    type: str,
    config: dict[str, Any],
    secret: str | None,
    event_types: list[str],
    now: datetime,
) -> DictRow:
    row = await fetchone(
        conn,
        UPSERT,
        {
            "site": site_id,
            "id": channel_id,
            "type": type,
            "config": Jsonb(config),
            "secret": secret,
            "event_types": event_types,
            "now": now,
        },
    )
    assert row is not None
    return row


async def get(conn: Conn, site_id: str, channel_id: str) -> DictRow | None:
    return await fetchone(conn, GET, (site_id, channel_id))


async def list_all(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, LIST, (site_id,))


async def delete(conn: Conn, site_id: str, channel_id: str) -> bool:
    return await fetchone(conn, DELETE, (site_id, channel_id)) is not None


async def subscribed(conn: Conn, site_id: str, notification_type: str) -> list[DictRow]:
    return await fetchall(conn, SUBSCRIBED, (site_id, notification_type))


async def failing(conn: Conn, site_id: str, channel_id: str, now: datetime) -> datetime | None:
    row = await fetchone(conn, FAILING, {"site": site_id, "id": channel_id, "now": now})
    return None if row is None else row["failing_since"]


async def healthy(conn: Conn, site_id: str, channel_id: str) -> None:
    await conn.execute(HEALTHY, (site_id, channel_id))


async def disable(conn: Conn, site_id: str, channel_id: str, reason: str, now: datetime) -> None:
    await conn.execute(DISABLE, {"site": site_id, "id": channel_id, "reason": reason, "now": now})


# Channels in key order, a batch at a time, locked for re-encryption (``offerd secrets rotate``,
# and the encryption of values stored before encryption at migrate time: ``plaintext_only``).
BATCH_AFTER = """
SELECT site_id, id, type, config, secret FROM notification_channels
WHERE (site_id, id) > (%(site)s, %(id)s)
  AND (NOT %(plaintext_only)s
       OR secret NOT LIKE 'fernet:%%'
       OR (type = 'slack' AND config->>'webhook_url' NOT LIKE 'fernet:%%')
       OR config->'basic_auth'->>'password' NOT LIKE 'fernet:%%')
ORDER BY site_id, id
LIMIT %(limit)s
FOR UPDATE
"""
SET_SECRETS = """
UPDATE notification_channels SET config = %s, secret = %s WHERE site_id = %s AND id = %s
"""


async def batch_after(
    conn: Conn, after: tuple[str, str], *, limit: int, plaintext_only: bool
) -> list[DictRow]:
    return await fetchall(
        conn,
        BATCH_AFTER,
        {
            "site": after[0],
            "id": after[1],
            "limit": limit,
            "plaintext_only": plaintext_only,
        },
    )


async def set_secrets(
    conn: Conn, site_id: str, channel_id: str, config: dict[str, Any], secret: str | None
) -> None:
    await conn.execute(SET_SECRETS, (Jsonb(config), secret, site_id, channel_id))


async def count_all(conn: Conn) -> int:
    row = await fetchone(conn, "SELECT count(*) AS n FROM notification_channels")
    assert row is not None
    n: int = row["n"]
    return n
