"""Segment: Track calls through the HTTP Tracking API's ``/v1/batch``, the write key as Basic
auth, within Segment's limits (32 KB per event, 500 KB per batch). Sent from offerd's own
durable jobs: the official library buffers in memory and loses events on a crash."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

import orjson

from offerd.notifications import render
from offerd.notifications.channels import Outcome, post

if TYPE_CHECKING:
    from offerd.edge.deps import Services

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


def track(delivery: Mapping[str, Any]) -> bytes:
    return orjson.dumps(render.segment_track(delivery["payload"]))


def fits(
    deliveries: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Split into what goes in one batch (in order, under 500 KB) and what is too large alone."""
    batch: list[Mapping[str, Any]] = []
    oversized: list[Mapping[str, Any]] = []
    size = 64  # the envelope
    for d in deliveries:
        event_size = len(track(d)) + 1
        if event_size > MAX_EVENT_BYTES:
            oversized.append(d)
        elif size + event_size <= MAX_BATCH_BYTES:
            batch.append(d)
            size += event_size
    return batch, oversized


class SegmentChannel:
    name = "segment"

    async def deliver(self, delivery: Mapping[str, Any], services: Services) -> Outcome:
        return await self.deliver_batch([delivery], services)

    async def deliver_batch(
        self, deliveries: Sequence[Mapping[str, Any]], services: Services
    ) -> Outcome:
        first = deliveries[0]
        config = first.get("channel_config") or {}
        body = orjson.dumps(
            {
                "batch": [render.segment_track(d["payload"]) for d in deliveries],
                "sentAt": services.clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
        )
        key = base64.b64encode(f"{first['channel_secret']}:".encode()).decode()
        return await post(
            services,
            first,
            config["endpoint"].rstrip("/") + "/v1/batch",
            content=body,
            headers={"content-type": "application/json", "authorization": f"Basic {key}"},
            final_on=(400, 401, 403),
            retry_after_on=(429,),
        )
