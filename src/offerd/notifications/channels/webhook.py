"""Webhooks: a signed JSON POST of a Chargebee-style event, as Standard Webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from offerd.notifications import signing
from offerd.notifications.channels import Outcome, post

if TYPE_CHECKING:
    from offerd.edge.deps import Services


def secret_for(delivery: Mapping[str, Any]) -> str | None:
    secret = delivery.get("channel_secret") or delivery.get("site_webhook_secret")
    return str(secret) if secret else None


class WebhookChannel:
    name = "webhook"

    async def deliver(self, delivery: Mapping[str, Any], services: Services) -> Outcome:
        body = orjson.dumps(delivery["payload"])
        headers = {"content-type": "application/json", "user-agent": "offerd-webhooks/1"}
        secret = secret_for(delivery)
        if secret:
            timestamp = int(services.clock.now().timestamp())
            headers.update(signing.headers(secret, delivery["event_id"], timestamp, body))
        auth = (delivery.get("channel_config") or {}).get("basic_auth")
        return await post(
            services,
            delivery,
            delivery["destination"],
            content=body,
            headers=headers,
            auth=(auth["username"], auth["password"]) if auth else None,
            final_on=(410,),
        )
