"""SQL for the audit log (migration 0013)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, execute, fetchall

INSERT = """
INSERT INTO audit_log (at, actor, site_id, action, target, before, after)
VALUES (%(at)s, %(actor)s, %(site_id)s, %(action)s, %(target)s, %(before)s, %(after)s)
"""

LIST = """
SELECT id, at, actor, site_id, action, target, before, after FROM audit_log
WHERE site_id IS NOT DISTINCT FROM %(site_id)s AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
  AND (%(target)s::text IS NULL OR target = %(target)s)
ORDER BY id DESC LIMIT %(limit)s
"""


async def insert(
    conn: Conn,
    *,
    at: datetime,
    actor: str,
    site_id: str | None,
    action: str,
    target: str,
    before: Any,
    after: Any,
) -> None:
    await execute(
        conn,
        INSERT,
        {
            "at": at,
            "actor": actor,
            "site_id": site_id,
            "action": action,
            "target": target,
            "before": None if before is None else Jsonb(before),
            "after": None if after is None else Jsonb(after),
        },
    )


async def list_entries(
    conn: Conn, site_id: str | None, *, target: str | None, before_id: int | None, limit: int
) -> list[DictRow]:
    return await fetchall(
        conn,
        LIST,
        {"site_id": site_id, "target": target, "before_id": before_id, "limit": limit},
    )
