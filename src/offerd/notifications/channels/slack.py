"""Slack: a Block Kit message to the channel's incoming webhook URL. A 429 waits for its
Retry-After; a 404 or 410 (the webhook or its channel is gone) disables the channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from offerd.notifications import render
from offerd.notifications.channels import Outcome, delivery_url, post

if TYPE_CHECKING:
    from offerd.edge.deps import Services


class SlackChannel:
    name = "slack"

    async def deliver(self, delivery: Mapping[str, Any], services: Services) -> Outcome:
        config = delivery.get("channel_config") or {}
        message = render.slack(
            delivery["payload"],
            delivery_id=delivery["id"],
            delivery_url=delivery_url(services.settings.base_url, delivery),
        )
        return await post(
            services,
            delivery,
            config["webhook_url"],
            content=orjson.dumps(message),
            headers={"content-type": "application/json"},
            final_on=(400,),
            disable_on=(404, 410),
            disable_reason="Slack answered {status}: the webhook is gone",
            retry_after_on=(429,),
        )
