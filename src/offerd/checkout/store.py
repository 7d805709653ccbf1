"""SQL for hosted checkout pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchone

INSERT = """
INSERT INTO hosted_pages (id, site_id, fulfillment_id, type, state, layout, form_token,
    created_at, updated_at, expires_at)
VALUES (%(id)s, %(site_id)s, %(fulfillment_id)s, %(type)s, 'created', %(layout)s, %(form_token)s,
    %(now)s, %(now)s, %(expires_at)s)
RETURNING *
"""

# The page with what it needs to render: its fulfillment, and the offer as it was issued.
VIEW = """
SELECT p.*, f.status AS fulfillment_status, f.subscription_id, f.customer_id, f.option_id,
       f.personalized_offer_id,
       f.error_code, f.error_message, po.content AS offer_content,
       (SELECT o FROM jsonb_array_elements(po.options) o WHERE o->>'id' = f.option_id) AS option
FROM hosted_pages p
JOIN offer_fulfillments f ON f.id = p.fulfillment_id
JOIN personalized_offers po ON po.id = f.personalized_offer_id
WHERE p.id = %s
"""

LOCK = VIEW + " FOR UPDATE OF p, f"

BY_FULFILLMENT = "SELECT * FROM hosted_pages WHERE fulfillment_id = %s"

SET_STATE = """
UPDATE hosted_pages SET state = %(state)s, content = %(content)s, updated_at = %(now)s
WHERE id = %(id)s RETURNING *
"""


async def insert(conn: Conn, values: dict[str, Any]) -> DictRow:
    row = await fetchone(conn, INSERT, values)
    assert row is not None
    return row


async def view(conn: Conn, page_id: str, *, lock: bool = False) -> DictRow | None:
    return await fetchone(conn, LOCK if lock else VIEW, (page_id,))


async def by_fulfillment(conn: Conn, fulfillment_id: str) -> DictRow | None:
    return await fetchone(conn, BY_FULFILLMENT, (fulfillment_id,))


async def set_state(
    conn: Conn, page_id: str, state: str, now: datetime, content: dict[str, Any] | None = None
) -> None:
    await conn.execute(
        SET_STATE, {"id": page_id, "state": state, "content": Jsonb(content or {}), "now": now}
    )
