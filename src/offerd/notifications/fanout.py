"""Fan-out: each recorded event that a channel subscribes to becomes one delivery (and its send
job) per channel, in the same transaction as the event.

The slice that recorded the event fans it out, and gives what the notification tells besides
the event already rendered (``Subject``): notifications render what they are given and read no
other slice's rows.

Suppression (``chargebee-event-*: all-disabled`` on the request that caused the event, or on the
accept of the fulfillment it belongs to): ``actions`` skips every channel, ``webhook`` the webhook
channels, ``email`` the email channels. Skipped deliveries are recorded with their reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import DictRow

from offerd.db import Conn
from offerd.edge.headers import Suppression
from offerd.notifications import channel_store, dispatch, payloads
from offerd.notifications.models import NOTIFICATION_TYPE

if TYPE_CHECKING:
    from offerd.events.models import Event, EventType


@dataclass(frozen=True, slots=True)
class Subject:
    """What a notification tells of the event's personalized offer (and fulfillment), as the
    slices that own them render them on the wire."""

    personalized_offer: dict[str, Any]
    external_user_id: str | None
    fulfillment: dict[str, Any] | None = None


def destination(channel: Mapping[str, Any]) -> str:
    config = channel["config"]
    if channel["type"] == "webhook":
        return str(config["url"])
    if channel["type"] == "slack":
        return "slack incoming webhook"
    if channel["type"] == "email":
        return ", ".join(config["to"])
    return str(config["endpoint"]) + "/v1/batch"


async def listening(conn: Conn, site_id: str, event_type: EventType) -> list[DictRow]:
    """The site's channels subscribed to this type of event (none: nothing to fan out)."""
    return await channel_store.subscribed(conn, site_id, NOTIFICATION_TYPE[event_type])


async def fanout(
    conn: Conn,
    event: Event,
    subject: Subject,
    *,
    suppression: Suppression,
    channels: Sequence[Mapping[str, Any]],
) -> int:
    """``channels``: the subscribed channels, as ``listening`` (or the caller's statement) read
    them; the caller asks for none of this when there are none."""
    if not channels:
        return 0
    notification_type = NOTIFICATION_TYPE[event.type]
    content: dict[str, Any] = {
        "personalized_offer": subject.personalized_offer,
        "offer_event": {
            "type": event.type,
            "option_id": event.option_id,
            "customer_id": event.customer_id,
            "subscription_id": event.subscription_id,
            "external_user_id": subject.external_user_id,
        },
    }
    if subject.fulfillment is not None:
        content["offer_fulfillment"] = subject.fulfillment
    payload = payloads.chargebee_event(
        event_id=event.id,
        event_type=notification_type,
        occurred_at=event.occurred_at,
        content=content,
        source="api" if event.type in ("viewed", "dismissed", "accepted") else "system",
    )
    await dispatch.create(
        conn,
        site_id=event.site_id,
        purpose="notification",
        event_id=event.id,
        event_type=notification_type,
        payload=payload,
        targets=[
            dispatch.Target(
                channel=channel["type"],
                channel_id=channel["id"],
                destination=destination(channel),
                skip_reason=suppression.skip_reason(channel["type"]),
            )
            for channel in channels
        ],
        now=event.occurred_at,
        fulfillment_id=event.fulfillment_id,
    )
    return len(channels)
