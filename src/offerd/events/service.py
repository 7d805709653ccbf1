"""The offer event log: the events the API takes are written by ``record`` (the fulfillments'
events are written with their change, in one statement, by the fulfillments' store)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.db import Conn
from offerd.events import store
from offerd.events.models import Event


async def record(conn: Conn, event: Event) -> Event:
    """Write the event, in the caller's transaction. The log only keeps: whoever records an
    event tells of it (``notifications.fanout``) in the same transaction."""
    if not event.id:
        event = replace(event, id=new_id("ev"))
    await store.insert_event(conn, event.values())
    return event


def event_resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "offer_event",
        "type": row["type"],
        "personalized_offer_id": row["personalized_offer_id"],
        "offer_id": row["offer_id"],
        "option_id": row["option_id"],
        "fulfillment_id": row["fulfillment_id"],
        "customer_id": row["customer_id"],
        "subscription_id": row["subscription_id"],
        "business_entity_id": row["business_entity_id"],
        "experiment_id": row.get("experiment_id"),
        "experiment_arm": row.get("experiment_arm"),
        "origin": row["origin"],
        "occurred_at": int(row["occurred_at"].timestamp()),
    }


async def list_events(
    conn: Conn,
    site_id: str,
    *,
    personalized_offer_id: str | None,
    type: str | None,
    before: int | None,
    limit: int,
) -> list[DictRow]:
    """The event log, newest first, from before the ``before`` sequence number."""
    return await store.list_events(
        conn,
        site_id,
        personalized_offer_id=personalized_offer_id,
        type=type,
        before=before,
        limit=limit,
    )


async def for_fulfillment(conn: Conn, site_id: str, fulfillment_id: str) -> list[DictRow]:
    """A fulfillment's events, in the order they were recorded."""
    return await store.for_fulfillment(conn, site_id, fulfillment_id)
