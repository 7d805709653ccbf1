"""SQL for offers and personalized offers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.billing import fragments
from offerd.db import Conn, fetchall, fetchone

UPSERT_OFFER = """
INSERT INTO offers (site_id, id, version, name, status, priority, business_entity_id, brand_id,
                    starts_at, ends_at, definition, created_at, updated_at)
VALUES (%(site)s, %(id)s, 1, %(name)s, %(status)s, %(priority)s, %(business_entity_id)s,
        %(brand_id)s, %(starts_at)s, %(ends_at)s, %(definition)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET version = offers.version
        + CASE WHEN offers.definition IS DISTINCT FROM EXCLUDED.definition THEN 1 ELSE 0 END,
    name = EXCLUDED.name, status = EXCLUDED.status, priority = EXCLUDED.priority,
    business_entity_id = EXCLUDED.business_entity_id, brand_id = EXCLUDED.brand_id,
    starts_at = EXCLUDED.starts_at,
    ends_at = EXCLUDED.ends_at, definition = EXCLUDED.definition,
    updated_at = CASE WHEN offers.definition IS DISTINCT FROM EXCLUDED.definition
                      THEN EXCLUDED.updated_at ELSE offers.updated_at END
RETURNING *, (xmax = 0) AS created
"""

GET_OFFER = "SELECT * FROM offers WHERE site_id = %s AND id = %s"

LIST_OFFERS = """
SELECT * FROM offers WHERE site_id = %(site)s AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY priority DESC, id
"""

ACTIVE_OFFERS = """
SELECT id, version, status, priority, starts_at, ends_at, business_entity_id, brand_id, definition
FROM offers WHERE site_id = %s AND status = 'active'
"""

ALL_OFFERS = """
SELECT id, version, status, priority, starts_at, ends_at, business_entity_id, brand_id, definition
FROM offers WHERE site_id = %s
"""

RUNNING_EXPERIMENTS = (
    "SELECT * FROM experiments WHERE site_id = %s AND status = 'running' ORDER BY id"
)

INSERT_SERVED = """
INSERT INTO served (id, site_id, customer_id, subscription_id, experiment_id, experiment_arm,
    offer_id, personalized_offer_id, occurred_at)
VALUES (%(id)s, %(site)s, %(customer_id)s, %(subscription_id)s, %(experiment_id)s,
    %(experiment_arm)s, %(offer_id)s, %(personalized_offer_id)s, %(now)s)
"""

INSERT_VERSION = """
INSERT INTO offer_versions (site_id, offer_id, version, definition, created_at)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""

VERSIONS = """
SELECT version, definition, created_at FROM offer_versions
WHERE site_id = %s AND offer_id = %s ORDER BY version DESC
"""


def _ledger_sql(*, by_subscription: bool, with_history: bool) -> str:
    """What decisioning reads, in one statement: the ledger's customer and subscription (typed
    columns, no JSON round trip) and, when guards need it, the customer's recent events."""
    columns = list(fragments.COLUMNS)
    subscription = fragments.customer_and_subscription(by_subscription=by_subscription)
    history = ""
    if with_history:
        columns += ["h.offer_ids AS h_offer_ids", "h.types AS h_types", "h.ats AS h_ats"]
        history = """
LEFT JOIN LATERAL (
    SELECT array_agg(offer_id) AS offer_ids, array_agg(type) AS types, array_agg(occurred_at) AS ats
    FROM offer_events
    WHERE site_id = %(site)s AND customer_id = %(customer)s
      AND type IN ('viewed', 'dismissed', 'accepted') AND occurred_at > %(since)s
) h ON true"""
    return f"""
SELECT {", ".join(columns)}
FROM (SELECT 1) AS one
{subscription}{history}
"""


LEDGER = {
    (by_subscription, with_history): _ledger_sql(
        by_subscription=by_subscription, with_history=with_history
    )
    for by_subscription in (True, False)
    for with_history in (True, False)
}

INSERT_PERSONALIZED_OFFER = """
INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
    subscription_id, business_entity_id, brand_id, content, options, context, origin, locale,
    experiment_id, experiment_arm, created_at, expires_at)
VALUES (%(id)s, %(site)s, %(offer_id)s, %(offer_version)s, %(customer_id)s, %(subscription_id)s,
    %(business_entity_id)s, %(brand_id)s, %(content)s, %(options)s, %(context)s, %(origin)s,
    %(locale)s, %(experiment_id)s, %(experiment_arm)s, %(now)s, %(expires_at)s)
"""


async def upsert_offer(
    conn: Conn, site_id: str, offer_id: str, definition: dict[str, Any], now: datetime
) -> DictRow:
    row = await fetchone(
        conn,
        UPSERT_OFFER,
        {
            "site": site_id,
            "id": offer_id,
            "name": definition["name"],
            "status": definition["status"],
            "priority": definition["priority"],
            "business_entity_id": definition.get("business_entity_id"),
            "brand_id": definition.get("brand_id"),
            "starts_at": _at(definition.get("starts_at")),
            "ends_at": _at(definition.get("ends_at")),
            "definition": Jsonb(definition),
            "now": now,
        },
    )
    assert row is not None
    return row


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


async def get_offer(conn: Conn, site_id: str, offer_id: str) -> DictRow | None:
    return await fetchone(conn, GET_OFFER, (site_id, offer_id))


async def list_offers(conn: Conn, site_id: str, status: str | None) -> list[DictRow]:
    return await fetchall(conn, LIST_OFFERS, {"site": site_id, "status": status})


async def active_offers(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, ACTIVE_OFFERS, (site_id,))


async def all_offers(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, ALL_OFFERS, (site_id,))


async def running_experiments(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, RUNNING_EXPERIMENTS, (site_id,))


async def insert_served(conn: Conn, **values: Any) -> None:
    await conn.execute(INSERT_SERVED, values)


async def insert_version(
    conn: Conn, site_id: str, offer_id: str, version: int, definition: dict[str, Any], now: datetime
) -> None:
    await conn.execute(INSERT_VERSION, (site_id, offer_id, version, Jsonb(definition), now))


async def versions(conn: Conn, site_id: str, offer_id: str) -> list[DictRow]:
    return await fetchall(conn, VERSIONS, (site_id, offer_id))


@dataclass(frozen=True, slots=True)
class LedgerView:
    customer: dict[str, Any] | None
    subscription: dict[str, Any] | None
    history: list[tuple[str, str, datetime]]


async def ledger(
    conn: Conn,
    site_id: str,
    customer_id: str,
    subscription_id: str | None,
    *,
    history_since: datetime | None = None,
) -> LedgerView:
    params = {
        "site": site_id,
        "customer": customer_id,
        "subscription": subscription_id,
        "since": history_since,
    }
    sql = LEDGER[(subscription_id is not None, history_since is not None)]
    row = await fetchone(conn, sql, params)
    assert row is not None
    customer = {f: row[f"c_{f}"] for f in fragments.CUSTOMER_FIELDS} if row["c_id"] else None
    subscription = (
        {f: row[f"s_{f}"] for f in fragments.SUBSCRIPTION_FIELDS} if row["s_id"] else None
    )
    events: list[tuple[str, str, datetime]] = []
    if history_since is not None and row["h_offer_ids"]:
        events = list(zip(row["h_offer_ids"], row["h_types"], row["h_ats"], strict=True))
    return LedgerView(customer, subscription, events)


async def insert_personalized_offer(conn: Conn, **values: Any) -> None:
    for key in ("content", "options", "context", "origin"):
        values[key] = Jsonb(values[key])
    await conn.execute(INSERT_PERSONALIZED_OFFER, values)


GET_PERSONALIZED_OFFER = "SELECT * FROM personalized_offers WHERE id = %s AND site_id = %s"


async def get_personalized_offer(conn: Conn, site_id: str, po_id: str) -> DictRow | None:
    return await fetchone(conn, GET_PERSONALIZED_OFFER, (po_id, site_id))


UPSERT_EXPERIMENT = """
INSERT INTO experiments (site_id, id, name, status, arms, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(name)s, %(status)s, %(arms)s, %(now)s, %(now)s)
ON CONFLICT (site_id, id) DO UPDATE
SET name = EXCLUDED.name, status = EXCLUDED.status, arms = EXCLUDED.arms,
    updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""
GET_EXPERIMENT = "SELECT * FROM experiments WHERE site_id = %s AND id = %s"
LIST_EXPERIMENTS = "SELECT * FROM experiments WHERE site_id = %s ORDER BY id"
EXISTING_OFFERS = "SELECT id FROM offers WHERE site_id = %s AND id = ANY(%s)"
# Offers already in another running experiment (an offer can be in one at a time).
CONTESTED = """
SELECT e.id AS experiment_id, a->>'offer_id' AS offer_id
FROM experiments e, jsonb_array_elements(e.arms) a
WHERE e.site_id = %s AND e.status = 'running' AND e.id <> %s AND a->>'offer_id' = ANY(%s)
"""
SERVED_COUNTS = """
SELECT experiment_arm, count(*) AS served FROM served
WHERE site_id = %s AND experiment_id = %s GROUP BY experiment_arm
"""
CONVERSIONS = """
SELECT experiment_arm, type, count(*) AS n FROM offer_events
WHERE site_id = %s AND experiment_id = %s GROUP BY experiment_arm, type
"""


async def upsert_experiment(
    conn: Conn, site_id: str, experiment_id: str, values: dict[str, Any], now: datetime
) -> DictRow:
    row = await fetchone(
        conn,
        UPSERT_EXPERIMENT,
        {"site": site_id, "id": experiment_id, "now": now, **values, "arms": Jsonb(values["arms"])},
    )
    assert row is not None
    return row


async def get_experiment(conn: Conn, site_id: str, experiment_id: str) -> DictRow | None:
    return await fetchone(conn, GET_EXPERIMENT, (site_id, experiment_id))


async def list_experiments(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, LIST_EXPERIMENTS, (site_id,))


async def existing_offers(conn: Conn, site_id: str, ids: list[str]) -> set[str]:
    return {r["id"] for r in await fetchall(conn, EXISTING_OFFERS, (site_id, ids))}


async def contested(
    conn: Conn, site_id: str, experiment_id: str, offer_ids: list[str]
) -> list[DictRow]:
    return await fetchall(conn, CONTESTED, (site_id, experiment_id, offer_ids))


async def experiment_results(
    conn: Conn, site_id: str, experiment_id: str
) -> dict[str, dict[str, int]]:
    """Per arm: how many were served, and how many of each event followed."""
    results: dict[str, dict[str, int]] = {}
    for row in await fetchall(conn, SERVED_COUNTS, (site_id, experiment_id)):
        results.setdefault(row["experiment_arm"], {})["served"] = row["served"]
    for row in await fetchall(conn, CONVERSIONS, (site_id, experiment_id)):
        results.setdefault(row["experiment_arm"], {})[row["type"]] = row["n"]
    return results
