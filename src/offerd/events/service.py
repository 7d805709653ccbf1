"""The offer event log: every event the API takes or the system logs goes through ``record``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from offerd.common.ids import new_id
from offerd.db import Conn
from offerd.edge.headers import Origin, Suppression
from offerd.events import store
from offerd.notifications.fanout import fanout

EventType = Literal["viewed", "dismissed", "accepted", "fulfilled", "failed"]


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    site_id: str
    personalized_offer_id: str
    offer_id: str
    customer_id: str
    occurred_at: datetime
    origin: Origin
    subscription_id: str | None = None
    business_entity_id: str | None = None
    option_id: str | None = None
    fulfillment_id: str | None = None
    experiment_id: str | None = None
    experiment_arm: str | None = None
    id: str = ""

    def values(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies every value, on the accept path
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["origin"] = self.origin.as_dict()
        return values


async def record(
    conn: Conn,
    event: Event,
    *,
    suppression: Suppression,
    fulfillment: Mapping[str, Any] | None = None,
    personalized_offer: Mapping[str, Any] | None = None,
) -> Event:
    """Write the event and its notifications, in the caller's transaction. ``suppression`` says
    which notifications the request asked not to send; the rows given spare a lookup."""
    if not event.id:
        event = replace(event, id=new_id("ev"))
    await store.insert_event(conn, event.values())
    await fanout(
        conn,
        event,
        suppression=suppression,
        fulfillment=fulfillment,
        personalized_offer=personalized_offer,
    )
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
