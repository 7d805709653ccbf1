"""What offerd tells the merchant when it asks them to fulfil (the webhook and email options):
the fulfillment, the personalized offer and the chosen option, the customer and the
subscription, each as its own slice renders it on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offerd.billing import service as billing
from offerd.db import Conn
from offerd.fulfillments.views import resource
from offerd.offers import service as offers


async def content(conn: Conn, fulfillment: Mapping[str, Any]) -> dict[str, Any]:
    site = fulfillment["site_id"]
    offer = await offers.issued(conn, site, fulfillment["personalized_offer_id"])
    assert offer is not None
    customer = await billing.customer_view(conn, site, fulfillment["customer_id"])
    subscription = None
    if fulfillment["subscription_id"]:
        subscription = await billing.subscription_view(conn, site, fulfillment["subscription_id"])
    option = offer.option(fulfillment["option_id"])
    return {
        "offer_fulfillment": resource(fulfillment),
        "personalized_offer": offer.resource(),
        "option": {"id": option["id"], "label": option["label"]} if option else None,
        "customer": customer or {"id": fulfillment["customer_id"]},
        "subscription": subscription,
    }
