"""The rollups' periodic upkeep (run by a worker, ``queue.runtime``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from offerd.db import Conn
from offerd.reporting import store

BATCH = 5000


async def compact_shards(conn: Conn, now: datetime) -> int:
    """Fold the per-connection shards of days two days past (every time zone's day is over)
    into one row per key, a batch per run, in the caller's transaction: a report over years
    reads one row per day and key, not one per connection that counted."""
    return await store.compact(conn, before=(now - timedelta(days=2)).date(), limit=BATCH)
