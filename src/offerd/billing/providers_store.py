"""SQL for sites' billing provider configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone

# A changed provider's health is unknown again until offerd next talks to it (the ledger, built
# in, is always healthy).
UPSERT = """
INSERT INTO billing_providers (site_id, type, config, status, created_at, updated_at)
VALUES (%(site)s, %(type)s, %(config)s, %(status)s, %(now)s, %(now)s)
ON CONFLICT (site_id) DO UPDATE
SET type = EXCLUDED.type, config = EXCLUDED.config, status = EXCLUDED.status,
    updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

GET = "SELECT * FROM billing_providers WHERE site_id = %s"

BATCH_AFTER = """
SELECT site_id, type, config FROM billing_providers
WHERE site_id > %(after)s
ORDER BY site_id
LIMIT %(limit)s
FOR UPDATE
"""
SET_CONFIG = "UPDATE billing_providers SET config = %s WHERE site_id = %s"
COUNT = "SELECT count(*) AS n FROM billing_providers"


async def upsert(
    conn: Conn, *, site_id: str, type: str, config: dict[str, Any], now: datetime
) -> DictRow:
    row = await fetchone(
        conn,
        UPSERT,
        {
            "site": site_id,
            "type": type,
            "config": Jsonb(config),
            "status": "healthy" if type == "ledger" else "unknown",
            "now": now,
        },
    )
    assert row is not None
    return row


async def get(conn: Conn, site_id: str) -> DictRow | None:
    return await fetchone(conn, GET, (site_id,))


async def batch_after(conn: Conn, after: str, *, limit: int) -> list[DictRow]:
    return await fetchall(conn, BATCH_AFTER, {"after": after, "limit": limit})


async def set_config(conn: Conn, site_id: str, config: dict[str, Any]) -> None:
    await conn.execute(SET_CONFIG, (Jsonb(config), site_id))


async def count(conn: Conn) -> int:
    row = await fetchone(conn, COUNT)
    assert row is not None
    n: int = row["n"]
    return n


SET_STATUS = """
UPDATE billing_providers SET status = %(status)s
WHERE site_id = %(site)s AND status IS DISTINCT FROM %(status)s
"""


async def set_status(conn: Conn, site_id: str, status: str) -> bool:
    """Whether the status changed (a 401 marks the provider unhealthy, a success healthy)."""
    cur = await conn.execute(SET_STATUS, {"site": site_id, "status": status})
    return cur.rowcount > 0
