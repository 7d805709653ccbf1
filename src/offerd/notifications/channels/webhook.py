"""Webhooks: a signed JSON POST of a Chargebee-style event, as Standard Webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from offerd.notifications import outbound, signing
from offerd.notifications.channels import Outcome


def secret_for(delivery: Mapping[str, Any]) -> str | None:
    secret = delivery.get("channel_secret") or delivery.get("site_webhook_secret")
    return str(secret) if secret else None


class WebhookChannel:
    name = "webhook"

    async def deliver(self, delivery: Mapping[str, Any], services: Any) -> Outcome:
        body = orjson.dumps(delivery["payload"])
        headers = {"content-type": "application/json", "user-agent": "offerd-webhooks/1"}
        secret = secret_for(delivery)
        if secret:
            timestamp = int(services.clock.now().timestamp())
            headers.update(signing.headers(secret, delivery["event_id"], timestamp, body))
        settings = delivery.get("site_settings") or {}
        auth = (delivery.get("channel_config") or {}).get("basic_auth")
        try:
            result = await outbound.post(
                services.http,
                delivery["destination"],
                content=body,
                headers=headers,
                allow_http=bool(settings.get("test_mode")),
                allow_private=services.settings.allow_private_destinations,
                auth=(auth["username"], auth["password"]) if auth else None,
            )
        except outbound.DestinationRefused as exc:
            return Outcome(False, error=str(exc), final=True)
        return Outcome(
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            excerpt=result.excerpt,
            retry_after=result.retry_after,
            final=result.status_code == 410,
        )
