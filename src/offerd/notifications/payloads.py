"""The Chargebee-style events offerd sends (spec §8, §11.18): ``object: "event"``, ``api_version:
"v2"``, ``event_type``, and ``content`` with the fulfillment, the personalized offer, the customer
and the subscription."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from offerd.billing.views import customer_resource, subscription_resource
from offerd.db import Conn, fetchone
from offerd.fulfillments.views import resource as fulfillment_resource
from offerd.offers.views import personalized_offer_resource


async def fulfillment_content(conn: Conn, fulfillment: Mapping[str, Any]) -> dict[str, Any]:
    site = fulfillment["site_id"]
    po = await fetchone(
        conn,
        "SELECT * FROM personalized_offers WHERE id = %s",
        (fulfillment["personalized_offer_id"],),
    )
    assert po is not None
    customer = await fetchone(
        conn,
        "SELECT * FROM customers WHERE site_id = %s AND id = %s",
        (site, fulfillment["customer_id"]),
    )
    subscription = None
    if fulfillment["subscription_id"]:
        subscription = await fetchone(
            conn,
            "SELECT * FROM subscriptions WHERE site_id = %s AND id = %s",
            (site, fulfillment["subscription_id"]),
        )
    values = {
        "customer_id": po["customer_id"],
        "subscription_id": po["subscription_id"],
        "personalized_offer_id": po["id"],
    }
    option = next((o for o in po["options"] if o["id"] == fulfillment["option_id"]), None)
    return {
        "offer_fulfillment": fulfillment_resource(fulfillment),
        "personalized_offer": personalized_offer_resource(
            po["id"], po["offer_id"], po["content"], po["options"], values
        ),
        "option": {"id": option["id"], "label": option["label"]} if option else None,
        "customer": customer_resource(customer) if customer else {"id": fulfillment["customer_id"]},
        "subscription": subscription_resource(subscription) if subscription else None,
    }


def chargebee_event(
    *, event_id: str, event_type: str, occurred_at: datetime, content: dict[str, Any], source: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "occurred_at": int(occurred_at.timestamp()),
        "source": source,
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "content": content,
    }
