"""One plugin per way offerd reaches a merchant. Each takes a delivery (a row with its rendered
payload) and returns an ``Outcome``; the dispatcher records it and decides about retries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None
    final: bool = False  # a failure no retry will fix (a 410, a refused destination)
    disable_channel: str | None = None  # why the channel should stop receiving


class Channel(Protocol):
    name: str

    async def deliver(self, delivery: Mapping[str, Any], services: Any) -> Outcome: ...


def delivery_url(base_url: str, delivery: Mapping[str, Any]) -> str:
    """Where an admin sees a delivery and its attempts."""
    return f"{base_url}/admin/v1/sites/{delivery['site_id']}/deliveries/{delivery['id']}"


def registry() -> dict[str, Channel]:
    from offerd.notifications.channels.email import EmailChannel
    from offerd.notifications.channels.segment import SegmentChannel
    from offerd.notifications.channels.slack import SlackChannel
    from offerd.notifications.channels.webhook import WebhookChannel

    channels: list[Channel] = [WebhookChannel(), SlackChannel(), EmailChannel(), SegmentChannel()]
    return {c.name: c for c in channels}
