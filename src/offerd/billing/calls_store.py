"""SQL for ``provider_calls``: the generations of one remote change, recorded around each call.

Every function takes a connection in autocommit mode and runs one statement, so each record is
committed the moment it returns — independently of the job's transaction (see ``remote.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone

_LATEST = """
SELECT * FROM provider_calls WHERE base_key = %s AND step = %s
ORDER BY generation DESC LIMIT 1
"""
_INSERT = """
INSERT INTO provider_calls (site_id, provider, subscription_id, base_key, step, generation,
    idempotency_key, action, before, target, state, created_at)
VALUES (%(site)s, %(provider)s, %(sub)s, %(base)s, %(step)s, %(gen)s, %(key)s, %(action)s,
    %(before)s, %(target)s, 'sent', %(now)s)
ON CONFLICT (base_key, step, generation) DO NOTHING
RETURNING *
"""
# A call still 'sent' takes its outcome. A 'failed' one (a 5xx, a timeout, a lost answer: its
# outcome unknown) becomes 'applied' when a later re-read finds its change there; its error is
# kept. Nothing else is overwritten.
_FINISH = """
UPDATE provider_calls
SET state = %(state)s, provider_request_id = coalesce(%(request_id)s, provider_request_id),
    error = coalesce(%(error)s, error), finished_at = %(now)s
WHERE id = %(id)s AND (state = 'sent' OR (state = 'failed' AND %(state)s = 'applied'))
"""
_FOR_SUBSCRIPTION = """
SELECT * FROM provider_calls WHERE site_id = %s AND subscription_id = %s ORDER BY id
"""


async def latest(conn: Conn, base_key: str, step: str) -> dict[str, Any] | None:
    return await fetchone(conn, _LATEST, (base_key, step))


async def record(
    conn: Conn,
    *,
    site_id: str,
    provider: str,
    subscription_id: str,
    base_key: str,
    step: str,
    generation: int,
    idempotency_key: str,
    action: dict[str, Any],
    before: dict[str, Any],
    target: dict[str, Any],
    now: datetime,
) -> dict[str, Any] | None:
    """The new generation, committed; ``None`` if another attempt recorded it first."""
    return await fetchone(
        conn,
        _INSERT,
        {
            "site": site_id,
            "provider": provider,
            "sub": subscription_id,
            "base": base_key,
            "step": step,
            "gen": generation,
            "key": idempotency_key,
            "action": Jsonb(action),
            "before": Jsonb(before),
            "target": Jsonb(target),
            "now": now,
        },
    )


async def finish(
    conn: Conn,
    call_id: int,
    *,
    state: str,
    now: datetime,
    request_id: str | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        _FINISH,
        {"id": call_id, "state": state, "request_id": request_id, "error": error, "now": now},
    )


async def for_subscription(conn: Conn, site_id: str, subscription_id: str) -> list[dict[str, Any]]:
    return await fetchall(conn, _FOR_SUBSCRIPTION, (site_id, subscription_id))
