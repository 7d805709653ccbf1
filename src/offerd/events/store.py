"""SQL for the offer event log."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall
from offerd.events.fragments import COLUMNS

INSERT_EVENT = (
    f"INSERT INTO offer_events ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'%({c})s' for c in COLUMNS)})"
)

LIST_EVENTS = """
SELECT * FROM offer_events
WHERE site_id = %(site)s
  AND (%(po)s::text IS NULL OR personalized_offer_id = %(po)s)
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(before)s::bigint IS NULL OR seq < %(before)s)
ORDER BY seq DESC
LIMIT %(limit)s
"""


FOR_FULFILLMENT = """
SELECT * FROM offer_events WHERE site_id = %s AND fulfillment_id = %s ORDER BY seq
"""


async def for_fulfillment(conn: Conn, site_id: str, fulfillment_id: str) -> list[DictRow]:
    return await fetchall(conn, FOR_FULFILLMENT, (site_id, fulfillment_id))


async def insert_event(conn: Conn, values: dict[str, Any]) -> None:
    await conn.execute(INSERT_EVENT, {**values, "origin": Jsonb(values["origin"])})


async def list_events(
    conn: Conn,
    site_id: str,
    *,
    personalized_offer_id: str | None,
    type: str | None,
    before: int | None,
    limit: int,
) -> list[DictRow]:
    return await fetchall(
        conn,
        LIST_EVENTS,
        {
            "site": site_id,
            "po": personalized_offer_id,
            "type": type,
            "before": before,
            "limit": limit,
        },
    )
