"""SQL for the billing mirror: a remote provider's objects written into the ledger's tables, and
each site's sync (``billing_syncs``).

Every write carries ``at``, the database-clock time the provider's object was read, and lands
only where the row was not written from a later read (``mirrored_at``): the mirror moves forward
in read time only. The ledger's own rows have no ``mirrored_at`` and are never touched here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.billing.actions import SubscriptionState
from offerd.billing.mirror.objects import (
    TABLES,
    Kind,
    MirroredCoupon,
    MirroredCustomer,
    MirroredPlan,
    MirroredSubscription,
)
from offerd.db import Conn, execute, fetchall, fetchone

_NEWER = "{t}.mirrored_at IS NOT NULL AND {t}.mirrored_at <= EXCLUDED.mirrored_at"

PLAN = f"""
INSERT INTO plans (site_id, id, name, price, currency, period_unit, period, mirrored_at,
    created_at, updated_at)
VALUES (%(site)s, %(id)s, %(name)s, %(price)s, %(currency)s, %(period_unit)s, %(period)s,
    %(at)s, %(at)s, %(at)s)
ON CONFLICT (site_id, id) DO UPDATE
SET name = EXCLUDED.name, price = EXCLUDED.price, currency = EXCLUDED.currency,
    period_unit = EXCLUDED.period_unit, period = EXCLUDED.period,
    mirrored_at = EXCLUDED.mirrored_at, updated_at = EXCLUDED.updated_at
WHERE {_NEWER.format(t="plans")}
"""

COUPON = f"""
INSERT INTO coupons (site_id, id, name, discount_type, discount_percentage, discount_amount,
    currency, duration_type, duration_months, mirrored_at, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(name)s, %(discount_type)s, %(discount_percentage)s,
    %(discount_amount)s, %(currency)s, %(duration_type)s, %(duration_months)s, %(at)s, %(at)s,
    %(at)s)
ON CONFLICT (site_id, id) DO UPDATE
SET name = EXCLUDED.name, discount_type = EXCLUDED.discount_type,
    discount_percentage = EXCLUDED.discount_percentage,
    discount_amount = EXCLUDED.discount_amount, currency = EXCLUDED.currency,
    duration_type = EXCLUDED.duration_type, duration_months = EXCLUDED.duration_months,
    mirrored_at = EXCLUDED.mirrored_at, updated_at = EXCLUDED.updated_at
WHERE {_NEWER.format(t="coupons")}
"""

CUSTOMER = f"""
INSERT INTO customers (site_id, id, email, first_name, last_name, business_entity_id,
    mirrored_at, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(email)s, %(first_name)s, %(last_name)s, %(business_entity_id)s,
    %(at)s, %(at)s, %(at)s)
ON CONFLICT (site_id, id) DO UPDATE
SET email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    business_entity_id = EXCLUDED.business_entity_id,
    mirrored_at = EXCLUDED.mirrored_at, updated_at = EXCLUDED.updated_at
WHERE {_NEWER.format(t="customers")}
"""

# a subscription's state columns are SubscriptionState's fields, one for one
_STATE_COLUMNS = tuple(f.name for f in fields(SubscriptionState))

SUBSCRIPTION = f"""
INSERT INTO subscriptions (site_id, id, customer_id, business_entity_id, {", ".join(_STATE_COLUMNS)},
    mirrored_at, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(customer_id)s, %(business_entity_id)s,
    {", ".join(f"%({c})s" for c in _STATE_COLUMNS)}, %(at)s, %(at)s, %(at)s)
ON CONFLICT (site_id, id) DO UPDATE
SET customer_id = EXCLUDED.customer_id, business_entity_id = EXCLUDED.business_entity_id,
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _STATE_COLUMNS)},
    version = subscriptions.version + 1,
    mirrored_at = EXCLUDED.mirrored_at, updated_at = EXCLUDED.updated_at
WHERE {_NEWER.format(t="subscriptions")}
"""

# What offerd's own change left (the provider's answer to it): the state columns only, on a row
# the mirror already has, and only if its plan is mirrored (else a re-read fills both in).
SUBSCRIPTION_STATE = f"""
UPDATE subscriptions
SET {", ".join(f"{c} = %({c})s" for c in _STATE_COLUMNS)},
    version = version + 1, mirrored_at = %(at)s, updated_at = %(at)s
WHERE site_id = %(site)s AND id = %(id)s
  AND mirrored_at IS NOT NULL AND mirrored_at <= %(at)s
  AND EXISTS (SELECT 1 FROM plans p WHERE p.site_id = %(site)s AND p.id = %(plan_id)s)
"""

# A deleted plan stays while a subscription is on it (it keeps its price for previews).
DELETE: dict[str, str] = {
    "plan": """DELETE FROM plans WHERE site_id = %(site)s AND id = %(id)s
        AND mirrored_at IS NOT NULL AND mirrored_at <= %(at)s
        AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.site_id = %(site)s AND s.plan_id = %(id)s)""",
    **{
        kind: f"""DELETE FROM {table} WHERE site_id = %(site)s AND id = %(id)s
        AND mirrored_at IS NOT NULL AND mirrored_at <= %(at)s"""
        for kind, table in TABLES.items()
        if kind != "plan"
    },
}

MISSING = """
SELECT 'customer' AS kind, c AS id FROM unnest(%(customers)s::text[]) AS c
WHERE NOT EXISTS (SELECT 1 FROM customers WHERE site_id = %(site)s AND id = c)
UNION ALL
SELECT 'plan', p FROM unnest(%(plans)s::text[]) AS p
WHERE NOT EXISTS (SELECT 1 FROM plans WHERE site_id = %(site)s AND id = p)
"""

EXISTS = {
    kind: f"SELECT 1 FROM {table} WHERE site_id = %s AND id = %s" for kind, table in TABLES.items()
}

COUNTS = """
SELECT (SELECT count(*) FROM customers WHERE site_id = %(site)s AND mirrored_at IS NOT NULL)
           AS customers,
       (SELECT count(*) FROM subscriptions WHERE site_id = %(site)s AND mirrored_at IS NOT NULL)
           AS subscriptions,
       (SELECT count(*) FROM plans WHERE site_id = %(site)s AND mirrored_at IS NOT NULL) AS plans,
       (SELECT count(*) FROM coupons WHERE site_id = %(site)s AND mirrored_at IS NOT NULL)
           AS coupons
"""


async def read_time(conn: Conn) -> datetime:
    """The database's clock: the one clock every offerd process shares, so reads made by
    different processes are ordered by it."""
    row = await fetchone(conn, "SELECT clock_timestamp() AS at")
    assert row is not None
    at: datetime = row["at"]
    return at


def _params(site_id: str, row: Any, at: datetime) -> dict[str, Any]:
    match row:
        case MirroredSubscription(state=state):
            values = {column: getattr(state, column) for column in _STATE_COLUMNS}
            values["coupon_ids"] = list(state.coupon_ids)
            values.update(
                id=row.id, customer_id=row.customer_id, business_entity_id=row.business_entity_id
            )
        case _:
            values = {f: getattr(row, f) for f in row.__slots__}
    return {**values, "site": site_id, "at": at}


_SQL: dict[type, str] = {
    MirroredPlan: PLAN,
    MirroredCoupon: COUPON,
    MirroredCustomer: CUSTOMER,
    MirroredSubscription: SUBSCRIPTION,
}


async def write(conn: Conn, site_id: str, rows: Sequence[Any], at: datetime) -> None:
    """Upsert ``rows`` (of one or more kinds; a subscription's customer and plan must exist)."""
    by_sql: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_sql.setdefault(_SQL[type(row)], []).append(_params(site_id, row, at))
    # dependencies first: plans, coupons, customers, then subscriptions
    for sql in (PLAN, COUPON, CUSTOMER, SUBSCRIPTION):
        if sql in by_sql:
            async with conn.cursor() as cur:
                await cur.executemany(sql, by_sql[sql])


async def write_state(
    conn: Conn, site_id: str, subscription_id: str, state: Any, at: datetime
) -> bool:
    values = _params(site_id, MirroredSubscription(subscription_id, "", state), at)
    return await execute(conn, SUBSCRIPTION_STATE, values) == 1


async def delete(conn: Conn, site_id: str, kind: Kind, oid: str, at: datetime) -> None:
    await execute(conn, DELETE[kind], {"site": site_id, "id": oid, "at": at})


async def missing(
    conn: Conn, site_id: str, *, customers: Sequence[str], plans: Sequence[str]
) -> list[tuple[Kind, str]]:
    """The customers and plans these subscriptions need that the mirror does not have."""
    if not customers and not plans:
        return []
    rows = await fetchall(
        conn,
        MISSING,
        {"site": site_id, "customers": sorted(set(customers)), "plans": sorted(set(plans))},
    )
    return [(r["kind"], r["id"]) for r in rows]


async def exists(conn: Conn, site_id: str, kind: Kind, oid: str) -> bool:
    return await fetchone(conn, EXISTS[kind], (site_id, oid)) is not None


CATALOG = """
SELECT (SELECT coalesce(jsonb_agg(p), '[]'::jsonb) FROM plans p
        WHERE p.site_id = %(site)s AND p.id = ANY(%(plans)s)) AS plans,
       (SELECT coalesce(jsonb_agg(c), '[]'::jsonb) FROM coupons c
        WHERE c.site_id = %(site)s AND c.id = ANY(%(coupons)s)) AS coupons
"""


async def catalog(
    conn: Conn, site_id: str, plans: Sequence[str], coupons: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    row = await fetchone(
        conn, CATALOG, {"site": site_id, "plans": list(plans), "coupons": list(coupons)}
    )
    assert row is not None
    return row["plans"], row["coupons"]


async def counts(conn: Conn, site_id: str) -> dict[str, int]:
    row = await fetchone(conn, COUNTS, {"site": site_id})
    assert row is not None
    return {k: int(v) for k, v in row.items()}


# --- billing_syncs: a site's import ------------------------------------------------------------

GET_SYNC = "SELECT * FROM billing_syncs WHERE site_id = %s"

# Start (or resume) an import. One that completed (idle, no phase) starts over from the first
# phase; one that crashed or failed (running or failed, with a phase) keeps its phase and cursor
# and resumes where its last page committed.
START_SYNC = """
INSERT INTO billing_syncs (site_id, state, phase, cursor, seen, started_at, updated_at)
VALUES (%(site)s, 'running', 'plans', NULL, '{}', %(now)s, %(now)s)
ON CONFLICT (site_id) DO UPDATE
SET state = 'running', last_error = NULL, updated_at = EXCLUDED.updated_at,
    phase = coalesce(billing_syncs.phase, 'plans'),
    cursor = CASE WHEN billing_syncs.phase IS NOT NULL THEN billing_syncs.cursor END,
    seen = CASE WHEN billing_syncs.phase IS NOT NULL THEN billing_syncs.seen ELSE '{}' END,
    started_at = CASE WHEN billing_syncs.phase IS NOT NULL THEN billing_syncs.started_at
                      ELSE EXCLUDED.started_at END
RETURNING *
"""

# A page written: where the next one starts (committed with the page's rows).
ADVANCE_SYNC = """
UPDATE billing_syncs
SET phase = %(phase)s, cursor = %(cursor)s, seen = %(seen)s, updated_at = %(now)s
WHERE site_id = %(site)s
"""

# One import per site at a time, across processes: a session lock, held on a connection of its
# own for the import's duration (released if that session dies).
LOCK_SYNC = "SELECT pg_try_advisory_lock(hashtext('offerd.billing_sync'), hashtext(%s)) AS got"
UNLOCK_SYNC = "SELECT pg_advisory_unlock(hashtext('offerd.billing_sync'), hashtext(%s))"

FINISH_SYNC = """
UPDATE billing_syncs
SET state = 'idle', phase = NULL, cursor = NULL, last_synced_at = %(now)s, updated_at = %(now)s
WHERE site_id = %(site)s
"""

FAIL_SYNC = """
UPDATE billing_syncs SET state = 'failed', last_error = %(error)s, updated_at = %(now)s
WHERE site_id = %(site)s
"""


async def get_sync(conn: Conn, site_id: str) -> DictRow | None:
    return await fetchone(conn, GET_SYNC, (site_id,))


async def start_sync(conn: Conn, site_id: str, now: datetime) -> DictRow:
    row = await fetchone(conn, START_SYNC, {"site": site_id, "now": now})
    assert row is not None
    return row


async def advance_sync(
    conn: Conn,
    site_id: str,
    *,
    phase: str,
    cursor: str | None,
    seen: dict[str, int],
    now: datetime,
) -> bool:
    values = {"site": site_id, "phase": phase, "cursor": cursor, "seen": Jsonb(seen), "now": now}
    return await execute(conn, ADVANCE_SYNC, values) == 1


async def lock_sync(conn: Conn, site_id: str) -> bool:
    row = await fetchone(conn, LOCK_SYNC, (site_id,))
    return bool(row and row["got"])


async def unlock_sync(conn: Conn, site_id: str) -> None:
    await execute(conn, UNLOCK_SYNC, (site_id,))


async def finish_sync(conn: Conn, site_id: str, now: datetime) -> None:
    await execute(conn, FINISH_SYNC, {"site": site_id, "now": now})


async def fail_sync(conn: Conn, site_id: str, error: str, now: datetime) -> None:
    await execute(conn, FAIL_SYNC, {"site": site_id, "error": error[:2000], "now": now})
