"""Fan-out: each recorded event that a channel subscribes to becomes one delivery (and its send
job) per channel, in the same transaction as the event.

Suppression (``chargebee-event-*: all-disabled`` on the request that caused the event, or on the
accept of the fulfillment it belongs to): ``actions`` skips every channel, ``webhook`` the webhook
channels, ``email`` the email channels. Skipped deliveries are recorded with their reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from offerd.db import Conn, fetchone
from offerd.edge.headers import Suppression
from offerd.fulfillments.views import resource as fulfillment_resource
from offerd.notifications import channel_store, dispatch, payloads
from offerd.notifications.models import NOTIFICATION_TYPE
from offerd.offers.views import personalized_offer_resource

if TYPE_CHECKING:
    from offerd.events.service import Event


def skip_reason(channel_type: str, suppression: Suppression) -> str | None:
    if suppression.actions:
        return "chargebee-event-actions: all-disabled"
    if channel_type == "webhook" and suppression.webhook:
        return "chargebee-event-webhook: all-disabled"
    if channel_type == "email" and suppression.email:
        return "chargebee-event-email: all-disabled"
    return None


def destination(channel: Mapping[str, Any]) -> str:
    config = channel["config"]
    if channel["type"] == "webhook":
        return str(config["url"])
    if channel["type"] == "slack":
        return "slack incoming webhook"
    if channel["type"] == "email":
        return ", ".join(config["to"])
    return str(config["endpoint"]) + "/v1/batch"


async def fanout(
    conn: Conn,
    event: Event,
    *,
    suppression: Suppression,
    fulfillment: Mapping[str, Any] | None = None,
    personalized_offer: Mapping[str, Any] | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """``channels``: the subscribed channels when the caller already read them."""
    notification_type = NOTIFICATION_TYPE[event.type]
    if channels is None:
        channels = await channel_store.subscribed(conn, event.site_id, notification_type)
    if not channels:
        return 0
    po = personalized_offer or await fetchone(
        conn, "SELECT * FROM personalized_offers WHERE id = %s", (event.personalized_offer_id,)
    )
    assert po is not None
    values = {
        "customer_id": po["customer_id"],
        "subscription_id": po["subscription_id"],
        "personalized_offer_id": po["id"],
    }
    content: dict[str, Any] = {
        "personalized_offer": personalized_offer_resource(
            po["id"], po["offer_id"], po["content"], po["options"], values
        ),
        "offer_event": {
            "type": event.type,
            "option_id": event.option_id,
            "customer_id": event.customer_id,
            "subscription_id": event.subscription_id,
            "external_user_id": (po["context"] or {}).get("user", {}).get("external_user_id"),
        },
    }
    if fulfillment is not None:
        content["offer_fulfillment"] = fulfillment_resource(fulfillment)
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
                skip_reason=skip_reason(channel["type"], suppression),
            )
            for channel in channels
        ],
        now=event.occurred_at,
        fulfillment_id=event.fulfillment_id,
    )
    return len(channels)
