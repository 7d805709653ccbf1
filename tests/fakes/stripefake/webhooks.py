"""Stripe webhook deliveries: events signed as Stripe signs them, POSTed to a URL.

``Stripe-Signature: t=TIMESTAMP,v1=hex(HMAC_SHA256(secret, "TIMESTAMP.payload"))`` — computed
here from the documented scheme (not with the SDK's helper), so a test that verifies with
``stripe.Webhook.construct_event`` checks the two against each other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Any

import httpx
import orjson


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed(
    event: dict[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send for ``event``."""
    payload = orjson.dumps(event, option=orjson.OPT_INDENT_2)
    return payload, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def post_events(
    url: str,
    events: Iterable[dict[str, Any]],
    secret: str,
    *,
    timestamp: int | None = None,
    timeout: float = 30.0,
) -> list[httpx.Response]:
    """POST each event, in the order given (reorder or repeat the list to test out-of-order and
    duplicate delivery); returns the responses."""
    responses = []
    with httpx.Client(timeout=timeout) as client:
        for event in events:
            body, headers = signed(event, secret, timestamp)
            responses.append(client.post(url, content=body, headers=headers))
    return responses
