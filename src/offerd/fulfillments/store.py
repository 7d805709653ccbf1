"""SQL for offer fulfillments."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchone

# The personalized offer, locked so that concurrent accepts of it take turns...
LOCK_PERSONALIZED_OFFER = (
    "SELECT * FROM personalized_offers WHERE id = %s AND site_id = %s FOR UPDATE"
)
# ...and, in a statement of its own (a new snapshot, taken once the lock is held), its live
# fulfillment: read in the locking statement, it would be what was there before the wait.
LIVE_FULFILLMENT = """
SELECT id, option_id FROM offer_fulfillments
WHERE personalized_offer_id = %s AND status <> 'failed'
LIMIT 1
"""

INSERT_FULFILLMENT = """
INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
    processing_type,
    status, redirect_url, customer_id, subscription_id, business_entity_id,
    suppress_actions, suppress_webhook, suppress_email, origin, created_at, completed_at,
    deadline_at, experiment_id, experiment_arm)
VALUES (%(id)s, %(site_id)s, %(personalized_offer_id)s, %(offer_id)s, %(option_id)s,
    %(processing_type)s,
    %(status)s, %(redirect_url)s, %(customer_id)s, %(subscription_id)s, %(business_entity_id)s,
    %(suppress_actions)s, %(suppress_webhook)s, %(suppress_email)s, %(origin)s, %(created_at)s,
    %(completed_at)s, %(deadline_at)s, %(experiment_id)s, %(experiment_arm)s)
RETURNING *
"""

GET = "SELECT * FROM offer_fulfillments WHERE id = %s AND site_id = %s"
GET_FOR_UPDATE = GET + " FOR UPDATE"

APPLY_TRANSITION = """
UPDATE offer_fulfillments
SET status = %(status)s,
    completed_at = CASE WHEN %(status)s = 'completed' THEN %(now)s END,
    failed_at = CASE WHEN %(status)s = 'failed' THEN %(now)s END,
    error_code = %(error_code)s,
    error_message = %(error_message)s
WHERE id = %(id)s AND status = 'in_progress'
RETURNING *
"""


async def lock_for_accept(
    conn: Conn, site_id: str, po_id: str
) -> tuple[DictRow | None, DictRow | None]:
    """The personalized offer (locked) and its live fulfillment, in one round trip."""
    async with conn.pipeline():
        locked = await conn.execute(LOCK_PERSONALIZED_OFFER, (po_id, site_id))
        live = await conn.execute(LIVE_FULFILLMENT, (po_id,))
    return await locked.fetchone(), await live.fetchone()


async def insert(conn: Conn, values: dict[str, Any]) -> DictRow:
    row = await fetchone(conn, INSERT_FULFILLMENT, {**values, "origin": Jsonb(values["origin"])})
    assert row is not None
    return row


async def get(
    conn: Conn, site_id: str, fulfillment_id: str, *, lock: bool = False
) -> DictRow | None:
    return await fetchone(conn, GET_FOR_UPDATE if lock else GET, (fulfillment_id, site_id))


async def apply_transition(
    conn: Conn,
    fulfillment_id: str,
    *,
    status: str,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
) -> DictRow | None:
    return await fetchone(
        conn,
        APPLY_TRANSITION,
        {
            "id": fulfillment_id,
            "status": status,
            "error_code": error_code,
            "error_message": error_message,
            "now": now,
        },
    )


LOCK = "SELECT * FROM offer_fulfillments WHERE id = %s FOR UPDATE"


async def lock(conn: Conn, fulfillment_id: str) -> DictRow | None:
    """The fulfillment row, locked: whoever moves it next holds this lock until commit."""
    return await fetchone(conn, LOCK, (fulfillment_id,))


OPTION = """
SELECT o AS option FROM personalized_offers po, jsonb_array_elements(po.options) o
WHERE po.id = %s AND o->>'id' = %s
"""


async def option_of(conn: Conn, row: Mapping[str, Any]) -> dict[str, Any]:
    """The option as it was when the offer was issued (the personalized offer's snapshot)."""
    found = await fetchone(conn, OPTION, (row["personalized_offer_id"], row["option_id"]))
    assert found is not None
    option: dict[str, Any] = found["option"]
    return option
