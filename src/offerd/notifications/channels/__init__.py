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


class Channel(Protocol):
    name: str

    async def deliver(self, delivery: Mapping[str, Any], services: Any) -> Outcome: ...


def registry() -> dict[str, Channel]:
    from offerd.notifications.channels.email import EmailChannel
    from offerd.notifications.channels.webhook import WebhookChannel

    channels: list[Channel] = [WebhookChannel(), EmailChannel()]
    return {c.name: c for c in channels}
