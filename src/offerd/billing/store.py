"""SQL for the built-in billing ledger: plans, coupons, customers, subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.db import Conn, fetchall, fetchone

UPSERT_PLAN = """
INSERT INTO plans (site_id, id, name, price, currency, period_unit, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(name)s, %(price)s, %(currency)s, %(period_unit)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET name = EXCLUDED.name, price = EXCLUDED.price, currency = EXCLUDED.currency,
    period_unit = EXCLUDED.period_unit, updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

UPSERT_COUPON = """
INSERT INTO coupons (site_id, id, name, discount_type, discount_percentage, discount_amount,
    currency, duration_type, duration_months, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(name)s, %(discount_type)s, %(discount_percentage)s,
    %(discount_amount)s, %(currency)s, %(duration_type)s, %(duration_months)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET name = EXCLUDED.name, discount_type = EXCLUDED.discount_type,
    discount_percentage = EXCLUDED.discount_percentage,
    discount_amount = EXCLUDED.discount_amount, currency = EXCLUDED.currency,
    duration_type = EXCLUDED.duration_type, duration_months = EXCLUDED.duration_months,
    updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

UPSERT_CUSTOMER = """
INSERT INTO customers (site_id, id, email, first_name, last_name, business_entity_id,
    created_at, updated_at)
VALUES (%(site)s, %(id)s, %(email)s, %(first_name)s, %(last_name)s, %(business_entity_id)s,
    %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    business_entity_id = EXCLUDED.business_entity_id, updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

UPSERT_SUBSCRIPTION = """
INSERT INTO subscriptions (site_id, id, customer_id, plan_id, quantity, status, coupon_ids,
    trial_end, current_term_start, current_term_end, pause_until, cancel_at,
    business_entity_id, brand_id, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(customer_id)s, %(plan_id)s, %(quantity)s, %(status)s,
    %(coupon_ids)s, %(trial_end)s, %(current_term_start)s, %(current_term_end)s,
    %(pause_until)s, %(cancel_at)s, %(business_entity_id)s, %(brand_id)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET customer_id = EXCLUDED.customer_id, plan_id = EXCLUDED.plan_id,
    quantity = EXCLUDED.quantity, status = EXCLUDED.status, coupon_ids = EXCLUDED.coupon_ids,
    trial_end = EXCLUDED.trial_end, current_term_start = EXCLUDED.current_term_start,
    current_term_end = EXCLUDED.current_term_end, pause_until = EXCLUDED.pause_until,
    cancel_at = EXCLUDED.cancel_at, business_entity_id = EXCLUDED.business_entity_id,
    brand_id = EXCLUDED.brand_id,
    cancelled_at = CASE WHEN EXCLUDED.status = 'cancelled'
                        THEN coalesce(subscriptions.cancelled_at, EXCLUDED.updated_at) END,
    version = subscriptions.version + 1, updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

MISSING_COUPONS = """
SELECT c FROM unnest(%(ids)s::text[]) AS c
WHERE NOT EXISTS (SELECT 1 FROM coupons WHERE site_id = %(site)s AND id = c)
"""

GET = {
    "plans": "SELECT * FROM plans WHERE site_id = %s AND id = %s",
    "coupons": "SELECT * FROM coupons WHERE site_id = %s AND id = %s",
    "customers": "SELECT * FROM customers WHERE site_id = %s AND id = %s",
    "subscriptions": "SELECT * FROM subscriptions WHERE site_id = %s AND id = %s",
}

LIST = {
    "plans": "SELECT * FROM plans WHERE site_id = %s ORDER BY id LIMIT 1000",
    "coupons": "SELECT * FROM coupons WHERE site_id = %s ORDER BY id LIMIT 1000",
}


def at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


async def upsert(conn: Conn, sql: str, params: dict[str, Any]) -> DictRow:
    row = await fetchone(conn, sql, params)
    assert row is not None
    return row


async def get(conn: Conn, table: str, site_id: str, record_id: str) -> DictRow | None:
    return await fetchone(conn, GET[table], (site_id, record_id))


async def list_all(conn: Conn, table: str, site_id: str) -> list[DictRow]:
    return await fetchall(conn, LIST[table], (site_id,))


async def missing_coupons(conn: Conn, site_id: str, ids: list[str]) -> list[str]:
    if not ids:
        return []
    rows = await fetchall(conn, MISSING_COUPONS, {"site": site_id, "ids": ids})
    return [r["c"] for r in rows]


async def coupons(conn: Conn, site_id: str, ids: list[str]) -> list[DictRow]:
    if not ids:
        return []
    rows = await fetchall(
        conn, "SELECT * FROM coupons WHERE site_id = %s AND id = ANY(%s)", (site_id, ids)
    )
    order = {coupon_id: i for i, coupon_id in enumerate(ids)}
    return sorted(rows, key=lambda r: order[r["id"]])


# --- the ledger provider's statements (billing/ledger.py): applying an action -------------------

LEDGER_CHANGE = "SELECT * FROM subscription_changes WHERE site_id = %s AND idempotency_key = %s"
# The subscription, locked, with what applying an action to it needs: the change this key made
# (if any), and the plans and coupons the state and the action name. One round trip.
LEDGER_LOCK = """
SELECT s.*,
    (SELECT to_jsonb(ch) FROM subscription_changes ch
     WHERE ch.site_id = s.site_id AND ch.idempotency_key = %(key)s) AS done,
    (SELECT coalesce(jsonb_agg(p), '[]'::jsonb) FROM plans p
     WHERE p.site_id = s.site_id AND (p.id = s.plan_id OR p.id = %(plan)s)) AS plans,
    (SELECT coalesce(jsonb_agg(c), '[]'::jsonb) FROM coupons c
     WHERE c.site_id = s.site_id AND (c.id = ANY(s.coupon_ids) OR c.id = %(coupon)s)) AS coupons
FROM subscriptions s
WHERE s.site_id = %(site)s AND s.id = %(id)s
FOR UPDATE OF s
"""
LEDGER_READ = "SELECT * FROM subscriptions WHERE site_id = %s AND id = %s"
LEDGER_PLANS = "SELECT * FROM plans WHERE site_id = %s AND id = ANY(%s)"
LEDGER_COUPONS = "SELECT * FROM coupons WHERE site_id = %s AND id = ANY(%s)"
# The change row first: if another apply with this key committed while this one waited for the
# lock, the unique key turns the insert into nothing, and nothing is updated either.
LEDGER_WRITE = """
WITH change AS (
    INSERT INTO subscription_changes
        (site_id, subscription_id, idempotency_key, fulfillment_id, action, before, after, created_at)
    VALUES (%(site)s, %(id)s, %(key)s, %(key)s, %(action)s, %(before)s, %(after)s, %(now)s)
    ON CONFLICT (site_id, idempotency_key) DO NOTHING
    RETURNING id
)
UPDATE subscriptions
SET status = %(status)s, plan_id = %(plan_id)s, quantity = %(quantity)s,
    coupon_ids = %(coupon_ids)s, trial_end = %(trial_end)s,
    current_term_start = %(current_term_start)s, current_term_end = %(current_term_end)s,
    pause_until = %(pause_until)s, cancel_at = %(cancel_at)s, cancelled_at = %(cancelled_at)s,
    version = version + 1, updated_at = %(now)s
WHERE site_id = %(site)s AND id = %(id)s AND EXISTS (SELECT 1 FROM change)
RETURNING id
"""
LEDGER_HISTORY = """
SELECT id, idempotency_key, fulfillment_id, action, before, after, created_at
FROM subscription_changes WHERE site_id = %s AND subscription_id = %s ORDER BY id
"""


# What a subscription bills now, with its plan and coupons (the saves report's revenue).
BILLING_OF = """
SELECT s.id, s.quantity, s.status, p.price, p.currency, p.period_unit, p.period,
    (SELECT coalesce(jsonb_agg(c), '[]'::jsonb) FROM coupons c
     WHERE c.site_id = s.site_id AND c.id = ANY(s.coupon_ids)) AS coupons
FROM subscriptions s JOIN plans p ON p.site_id = s.site_id AND p.id = s.plan_id
WHERE s.site_id = %s AND s.id = ANY(%s)
"""


async def billing_of(conn: Conn, site_id: str, subscription_ids: list[str]) -> list[DictRow]:
    return await fetchall(conn, BILLING_OF, (site_id, subscription_ids))
