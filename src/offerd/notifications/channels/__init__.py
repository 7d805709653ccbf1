"""One plugin per way offerd reaches a merchant. Each takes a delivery (a row with its rendered
payload) and returns an ``Outcome``; the dispatcher records it and decides about retries."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from offerd.notifications import outbound

if TYPE_CHECKING:
    from offerd.edge.deps import Services


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

    async def deliver(self, delivery: Mapping[str, Any], services: Services) -> Outcome: ...


async def post(
    services: Services,
    delivery: Mapping[str, Any],
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    auth: tuple[str, str] | None = None,
    final_on: Container[int] = (),
    disable_on: Container[int] = (),
    disable_reason: str = "",
    retry_after_on: Container[int] | None = None,
) -> Outcome:
    """POST through the outbound guard and map the answer to an outcome, the same way for every
    HTTP channel: a refused destination is final; ``final_on`` statuses are not retried;
    ``disable_on`` statuses also stop the channel (``disable_reason`` formatted with ``status``);
    a Retry-After is honoured on the ``retry_after_on`` statuses (None: on any)."""
    settings = delivery.get("site_settings") or {}
    try:
        result = await outbound.post(
            services.http,
            url,
            content=content,
            headers=headers,
            allow_http=bool(settings.get("test_mode")),
            allow_private=services.settings.allow_private_destinations,
            auth=auth,
        )
    except outbound.DestinationRefused as exc:
        return Outcome(False, error=str(exc), final=True)
    status = result.status_code
    disable = status is not None and status in disable_on
    honour = retry_after_on is None or (status is not None and status in retry_after_on)
    return Outcome(
        ok=result.ok,
        status_code=status,
        latency_ms=result.latency_ms,
        error=result.error,
        excerpt=result.excerpt,
        retry_after=result.retry_after if honour else None,
        final=disable or (status is not None and status in final_on),
        disable_channel=disable_reason.format(status=status) if disable else None,
    )


def delivery_url(base_url: str, delivery: Mapping[str, Any]) -> str:
    """Where a person sees a delivery and its attempts: its console page."""
    return f"{base_url}/console/sites/{delivery['site_id']}/deliveries/{delivery['id']}"


def registry() -> dict[str, Channel]:
    from offerd.notifications.channels.email import EmailChannel
    from offerd.notifications.channels.segment import SegmentChannel
    from offerd.notifications.channels.slack import SlackChannel
    from offerd.notifications.channels.webhook import WebhookChannel

    channels: list[Channel] = [WebhookChannel(), SlackChannel(), EmailChannel(), SegmentChannel()]
    return {c.name: c for c in channels}
