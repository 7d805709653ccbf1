"""Writing what a provider said into the mirror, ordered by when it was read.

No database connection is held while a provider answers: the read time is taken (one short
statement), the provider is asked, then what it said is written in its own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from offerd.billing import mirror_store as store
from offerd.billing.actions import SubscriptionState
from offerd.billing.mirror.objects import (
    Gone,
    Kind,
    MirroredSubscription,
    MirrorSource,
    Row,
    Unmirrorable,
    kind_of,
)
from offerd.db import Conn, Database, transaction


async def read_time(db: Database) -> datetime:
    async with db.connection() as conn:
        return await store.read_time(conn)


async def write(
    db: Database,
    source: MirrorSource,
    site_id: str,
    results: Sequence[Row | Gone | Unmirrorable],
    at: datetime,
    then: Callable[[Conn], Awaitable[object]] | None = None,
) -> list[Unmirrorable]:
    """Write what was read at ``at``. A subscription's customer or plan the mirror lacks is
    fetched first; a subscription whose plan offerd cannot mirror is left out (returned, with
    the reason, among the unmirrorable). ``then`` runs in the same transaction (the import
    records its cursor with the page's rows)."""
    rows = [r for r in results if not isinstance(r, Gone | Unmirrorable)]
    skipped = [r for r in results if isinstance(r, Unmirrorable)]
    gone = [r for r in results if isinstance(r, Gone)]
    subscriptions = [r for r in rows if isinstance(r, MirroredSubscription)]
    if subscriptions:
        here = {(kind_of(r), r.id) for r in rows}
        async with db.connection() as conn:
            missing = await store.missing(
                conn,
                site_id,
                customers=[s.customer_id for s in subscriptions],
                plans=[s.state.plan_id for s in subscriptions],
            )
        missing = [m for m in missing if m not in here]
        if missing:
            unavailable = await _fetch_dependencies(db, source, site_id, missing)
            if unavailable:
                keep = []
                for row in rows:
                    if isinstance(row, MirroredSubscription) and (
                        ("customer", row.customer_id) in unavailable
                        or ("plan", row.state.plan_id) in unavailable
                    ):
                        skipped.append(
                            Unmirrorable(
                                "subscription", row.id, "its customer or plan cannot be mirrored"
                            )
                        )
                    else:
                        keep.append(row)
                rows = keep
    async with db.connection() as conn, transaction(conn):
        await store.write(conn, site_id, rows, at)
        for g in gone:
            await store.delete(conn, site_id, g.kind, g.id, at)
        if then is not None:
            await then(conn)
    return skipped


async def _fetch_dependencies(
    db: Database, source: MirrorSource, site_id: str, wanted: Iterable[tuple[Kind, str]]
) -> set[tuple[Kind, str]]:
    """Fetch and write the given customers and plans; returns those that could not be."""
    at = await read_time(db)
    fetched = await asyncio.gather(*(source.fetch(kind, oid) for kind, oid in wanted))
    rows = [r for r in fetched if not isinstance(r, Gone | Unmirrorable)]
    async with db.connection() as conn, transaction(conn):
        await store.write(conn, site_id, rows, at)
    return {(r.kind, r.id) for r in fetched if isinstance(r, Gone | Unmirrorable)}


async def refresh(db: Database, source: MirrorSource, site_id: str, kind: Kind, oid: str) -> bool:
    """Re-read one object from the provider and store its current state (or drop it if the
    provider no longer has it). True when the mirror now has it."""
    at = await read_time(db)
    got = await source.fetch(kind, oid)
    skipped = await write(db, source, site_id, [got], at)
    return not skipped and not isinstance(got, Gone)


async def changed(
    db: Database, site_id: str, subscription_id: str, state: SubscriptionState, at: datetime
) -> None:
    """offerd's own change went through: the provider's answer, read no earlier than ``at``,
    is the subscription's state (a row the mirror has not seen yet is left to a re-read)."""
    async with db.connection() as conn:
        await store.write_state(conn, site_id, subscription_id, state, at)


async def exists(conn: Conn, site_id: str, kind: Kind, oid: str) -> bool:
    return await store.exists(conn, site_id, kind, oid)


async def counts(db: Database, site_id: str) -> dict[str, int]:
    async with db.connection() as conn:
        return await store.counts(conn, site_id)
