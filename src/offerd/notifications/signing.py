"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made by the reference
``standardwebhooks`` library so that what receivers verify with it is what we sign.
``webhook-id`` is the event id (stable across retries), ``webhook-timestamp`` the attempt's Unix
time, ``webhook-signature`` ``v1,`` + Base64(HMAC-SHA256(id.timestamp.body)) keyed with the
secret's bytes (the library strips the ``whsec_`` prefix and decodes the Base64)."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    # The library takes a datetime and signs its whole seconds (an int converts exactly), and
    # the body as text: before 1.3 it formatted bytes as "b'...'"; ours is orjson's UTF-8.
    when = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret).sign(msg_id, when, body.decode())


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
