"""The rollups' periodic upkeep (run by a worker, ``queue.runtime``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from psycopg.rows import DictRow

from offerd.billing import service as billing
from offerd.db import Conn
from offerd.reporting import store

BATCH = 5000


async def compact_shards(conn: Conn, now: datetime) -> int:
    """Fold the per-connection shards of days two days past (every time zone's day is over)
    into one row per key, a batch per run, in the caller's transaction: a report over years
    reads one row per day and key, not one per connection that counted."""
    return await store.compact(conn, before=(now - timedelta(days=2)).date(), limit=BATCH)


SAVES_BATCH = 1000
SAVES_BATCHES = 20  # a run enrols, and settles, at most this many batches of saves


async def settle_saves(conn: Conn, now: datetime) -> int:
    """Follow completed fulfillments as saves and settle them, in the caller's transaction:
    new ones enrolled (``pending``), those whose subscription was cancelled inside the window
    ``lost``, those whose window is over ``saved`` with the monthly revenue their subscription
    bills now (as the billing provider's state in the mirror or the ledger has it) — or ``lost``
    if the subscription is gone. A batch at a time until caught up, at most ``SAVES_BATCHES``
    of each a run (20,000 every 5 minutes: a backlog is worked off, not carried at one batch a
    run). Returns how many changed."""
    changed = await until_caught_up(lambda: store.enroll_saves(conn, now=now, limit=SAVES_BATCH))
    changed += await store.lose_saves(conn, now=now)
    return changed + await until_caught_up(lambda: settle_due(conn, now))


async def until_caught_up(batch: Callable[[], Awaitable[int]]) -> int:
    """One batch of ``SAVES_BATCH`` after another until one comes back short (nothing more to
    do), at most ``SAVES_BATCHES``; how many were done in all."""
    done = 0
    for _ in range(SAVES_BATCHES):
        n = await batch()
        done += n
        if n < SAVES_BATCH:
            break
    return done


async def settle_due(conn: Conn, now: datetime) -> int:
    """One batch of the pending saves whose window is over: saved with their revenue, or lost."""
    due = await store.due_saves(conn, now=now, limit=SAVES_BATCH)
    by_site: dict[str, list[DictRow]] = {}
    for row in due:
        by_site.setdefault(row["site_id"], []).append(row)
    for site_id, rows in by_site.items():
        revenue = await billing.monthly_revenue(conn, site_id, [r["subscription_id"] for r in rows])
        for row in rows:
            currency, mrr = revenue.get(row["subscription_id"], (None, None))
            state = "saved" if row["present"] else "lost"
            await store.settle_save(
                conn,
                site_id,
                row["fulfillment_id"],
                state=state,
                currency=currency if state == "saved" else None,
                mrr=mrr if state == "saved" else None,
                now=now,
            )
    return len(due)


EXPERIMENTS_BATCH = 5000
EXPERIMENTS_BATCHES = 20  # a run folds at most this many batches of decisions


async def fold_experiments(conn: Conn, now: datetime) -> int:
    """Keep the experiments report's assignments, in the caller's transaction: fold new served
    decisions (each subscriber's first assignment to an experiment), mark those who accepted,
    and settle them as the saves are settled (lost when their subscription is cancelled inside
    the window; saved, or lost if the subscription is gone, when it is over). The rollups follow
    by trigger. Returns how many assignments changed."""
    await store.lock_experiments(conn)
    changed = 0
    for _ in range(EXPERIMENTS_BATCHES):
        folded, written = await store.fold_served(conn, limit=EXPERIMENTS_BATCH)
        changed += written
        if folded < EXPERIMENTS_BATCH:
            break
    changed += await store.fold_acceptances(conn, now=now)
    changed += await store.lose_assignments(conn, now=now)
    changed += await store.settle_assignments(conn, now=now, limit=SAVES_BATCH)
    return changed
