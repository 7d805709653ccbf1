"""Periodic sweeps over fulfillments."""

from __future__ import annotations

from datetime import datetime

from offerd.db import Conn
from offerd.fulfillments import store, transitions

BATCH = 200


async def expire_overdue(conn: Conn, now: datetime) -> int:
    """Fail what is still in progress past its site's limit (7 days by default) as
    ``fulfillment_expired``; a batch per run, in the caller's transaction."""
    rows = await store.lock_overdue(conn, now=now, limit=BATCH)
    for row in rows:
        days = (row["deadline_at"] - row["created_at"]).days
        await transitions.fail(
            conn,
            row,
            "fulfillment_expired",
            f"the fulfillment was still in progress after {days} days",
            now=now,
        )
    return len(rows)
