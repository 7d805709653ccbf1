"""Notification channels as the admin API takes them (DESIGN.md §6), and the event types they
subscribe to."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from offerd.common import urls

NotificationType = Literal[
    "offer_fulfillment_completed",
    "offer_fulfillment_failed",
    "offer_accepted",
    "offer_viewed",
    "offer_dismissed",
]

# offer event type -> the notification it causes
NOTIFICATION_TYPE: dict[str, NotificationType] = {
    "accepted": "offer_accepted",
    "fulfilled": "offer_fulfillment_completed",
    "failed": "offer_fulfillment_failed",
    "viewed": "offer_viewed",
    "dismissed": "offer_dismissed",
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
EventTypes = Annotated[list[NotificationType], Field(min_length=1, max_length=5)]


def _default_types() -> list[NotificationType]:
    return ["offer_fulfillment_completed"]


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_types: EventTypes = Field(default_factory=_default_types)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[NotificationType]) -> list[NotificationType]:
        if len(set(value)) != len(value):
            raise ValueError("event types must not repeat")
        return value


def _http_url(value: str) -> str:
    if not urls.is_http_url(value):
        raise ValueError("must be an http or https URL")
    return value


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: Url
    secret: Annotated[str, StringConstraints(max_length=200)] | None = None
    basic_auth: BasicAuth | None = None

    _url = field_validator("url")(_http_url)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be whsec_ followed by Base64") from None
        if not value.startswith("whsec_") or not 24 <= len(raw) <= 64:
            raise ValueError("must be whsec_ followed by Base64 of 24 to 64 bytes")
        return value


class SlackChannel(_Channel):
    type: Literal["slack"]
    webhook_url: Url

    _url = field_validator("webhook_url")(_http_url)


class EmailChannel(_Channel):
    type: Literal["email"]
    to: list[Annotated[str, StringConstraints(max_length=254)]] = Field(min_length=1, max_length=20)

    @field_validator("to")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value


class SegmentChannel(_Channel):
    type: Literal["segment"]
    write_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    endpoint: Url = "https://api.segment.io"

    _url = field_validator("endpoint")(_http_url)


ChannelIn = Annotated[
    WebhookChannel | SlackChannel | EmailChannel | SegmentChannel, Field(discriminator="type")
]


def destination(
    channel: WebhookChannel | SlackChannel | EmailChannel | SegmentChannel,
) -> tuple[str, str] | None:
    """The URL a channel posts to and the param that names it (an email channel has none)."""
    match channel:
        case WebhookChannel():
            return "url", channel.url
        case SlackChannel():
            return "webhook_url", channel.webhook_url
        case SegmentChannel():
            return "endpoint", channel.endpoint
    return None
