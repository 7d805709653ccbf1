"""Slack: a Block Kit message to the channel's incoming webhook URL. A 429 waits for its
Retry-After; a 404 or 410 (the webhook or its channel is gone) disables the channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from offerd.notifications import outbound, render
from offerd.notifications.channels import Outcome, delivery_url


class SlackChannel:
    name = "slack"

    async def deliver(self, delivery: Mapping[str, Any], services: Any) -> Outcome:
        config = delivery.get("channel_config") or {}
        message = render.slack(
            delivery["payload"],
            delivery_id=delivery["id"],
            delivery_url=delivery_url(services.settings.base_url, delivery),
        )
        settings = delivery.get("site_settings") or {}
        try:
            result = await outbound.post(
                services.http,
                config["webhook_url"],
                content=orjson.dumps(message),
                headers={"content-type": "application/json"},
                allow_http=bool(settings.get("test_mode")),
                allow_private=services.settings.allow_private_destinations,
            )
        except outbound.DestinationRefused as exc:
            return Outcome(False, error=str(exc), final=True)
        gone = result.status_code in (404, 410)
        return Outcome(
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            excerpt=result.excerpt,
            retry_after=result.retry_after if result.status_code == 429 else None,
            final=gone or result.status_code == 400,
            disable_channel=f"Slack answered {result.status_code}: the webhook is gone"
            if gone
            else None,
        )
