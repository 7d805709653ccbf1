"""The offer event log: the events the API takes are written by ``record`` (the fulfillments'
events are written with their change, in one statement, by the fulfillments' store)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

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
