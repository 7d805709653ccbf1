"""The ``chargebee-*`` request headers the offers operations take (spec §2, §9)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from offerd.edge.errors import ParamWrongValue

MAX_ORIGIN = 255
MAX_BUSINESS_ENTITY = 50
MAX_IDEMPOTENCY_KEY = 100
DISABLED = "all-disabled"


@dataclass(frozen=True, slots=True)
class Origin:
    """Who the end user is, recorded with every event and fulfillment, never echoed back."""

    ip: str | None = None
    user: str | None = None
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ip": self.ip, "user": self.user, "device": self.device}


@dataclass(frozen=True, slots=True)
class Suppression:
    """``chargebee-event-actions|webhook|email: all-disabled`` on the request that causes events."""

    actions: bool = False
    webhook: bool = False
    email: bool = False

    def skip_reason(self, channel: str) -> str | None:
        """Why a message to this channel type is not sent (None: it is). The one rule, for the
        notifications and for the processing requests of webhook and email options."""
        if self.actions:
            return f"chargebee-event-actions: {DISABLED}"
        if channel == "webhook" and self.webhook:
            return f"chargebee-event-webhook: {DISABLED}"
        if channel == "email" and self.email:
            return f"chargebee-event-email: {DISABLED}"
        return None


@dataclass(frozen=True, slots=True)
class RequestMeta:
    origin: Origin
    suppression: Suppression
    business_entity_id: str | None
    idempotency_key: str | None


def _bounded(headers: Mapping[str, str], name: str, limit: int) -> str | None:
    value = headers.get(name)
    if value is None or value == "":
        return None
    if len(value) > limit:
        raise ParamWrongValue(name, f"cannot be more than {limit} characters")
    return value


def _flag(headers: Mapping[str, str], name: str) -> bool:
    value = headers.get(name)
    if value is None or value == "":
        return False
    if value.strip().lower() != DISABLED:
        raise ParamWrongValue(name, f"invalid value; expected '{DISABLED}'")
    return True


def origin_user(headers: Mapping[str, str]) -> str | None:
    """``-user-encoded`` (Base64, for UTF-8 emails) wins over the plain ``-user``."""
    encoded = _bounded(headers, "chargebee-request-origin-user-encoded", MAX_ORIGIN * 2)
    if encoded is not None:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ParamWrongValue(
                "chargebee-request-origin-user-encoded", "is not Base64 of a UTF-8 string"
            ) from None
        if len(decoded) > MAX_ORIGIN:
            raise ParamWrongValue(
                "chargebee-request-origin-user-encoded",
                f"cannot be more than {MAX_ORIGIN} characters",
            )
        return decoded
    return _bounded(headers, "chargebee-request-origin-user", MAX_ORIGIN)


def chargebee_headers(headers: Headers) -> dict[str, str]:
    """The request's ``chargebee-*`` headers (the first of each name), in one pass over them."""
    found: dict[str, str] = {}
    for name, value in headers.raw:
        if name[:10].lower() == b"chargebee-":
            found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def read_meta(request_headers: Headers, *, post: bool) -> RequestMeta:
    headers = chargebee_headers(request_headers)
    origin = Origin(
        ip=_bounded(headers, "chargebee-request-origin-ip", MAX_ORIGIN),
        user=origin_user(headers),
        device=_bounded(headers, "chargebee-request-origin-device", MAX_ORIGIN),
    )
    suppression = (
        Suppression(
            actions=_flag(headers, "chargebee-event-actions"),
            webhook=_flag(headers, "chargebee-event-webhook"),
            email=_flag(headers, "chargebee-event-email"),
        )
        if post
        else Suppression()
    )
    return RequestMeta(
        origin=origin,
        suppression=suppression,
        business_entity_id=_bounded(headers, "chargebee-business-entity-id", MAX_BUSINESS_ENTITY),
        idempotency_key=(
            _bounded(headers, "chargebee-idempotency-key", MAX_IDEMPOTENCY_KEY) if post else None
        ),
    )


def entity_visible(stored: str | None, header: str | None) -> bool:
    """With ``chargebee-business-entity-id`` set, only that entity's records are visible (spec §9)."""
    return header is None or stored == header
