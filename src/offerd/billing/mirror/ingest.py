"""A provider's webhook, received: authenticated as the provider signs it, then turned into
re-reads of the objects it names (``refresh``), queued in one short transaction. Nothing is
fetched while the provider waits for the answer, so a burst of events is taken as fast as the
database can queue them, and a duplicated event costs nothing more (its re-read is coalesced).

- Stripe: ``Stripe-Signature`` checked with stripe-python's webhook helper against the site's
  ``webhook_secret`` (and its 5-minute tolerance for the timestamp, against replays); a missing
  or bad signature is a 400.
- Chargebee Billing: HTTP Basic with the site's ``webhook_username``/``webhook_password``; wrong
  or missing credentials are a 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

import orjson
import stripe

from offerd.billing.mirror import refresh, webhooks
from offerd.db import transaction
from offerd.edge.deps import Services
from offerd.edge.errors import AuthenticationFailed, InvalidRequest, NotFound

STRIPE_TOLERANCE_SECONDS = 300


async def _remote(svc: Services, site_id: str, kind: str) -> Any:
    async with svc.db.connection() as conn:
        remote = await svc.billing.remote(conn, site_id)
    if remote is None or remote.type != kind:
        raise NotFound(f"site {site_id} has no {kind.capitalize()} billing provider")
    return remote


async def _queue(svc: Services, site_id: str, targets: list[webhooks.Target]) -> int:
    if not targets:
        return 0
    async with svc.db.connection() as conn, transaction(conn):
        return await refresh.enqueue(conn, site_id, targets, now=svc.clock.now())


async def stripe_event(svc: Services, site_id: str, body: bytes, signature: str | None) -> int:
    """Check the event's signature and queue its re-reads; returns how many were queued."""
    remote = await _remote(svc, site_id, "stripe")
    secret = remote.webhook.get("webhook_secret")
    if not secret:
        raise InvalidRequest("the site's Stripe provider has no webhook_secret")
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8"), signature or "", secret, STRIPE_TOLERANCE_SECONDS
        )
        event = orjson.loads(body)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Stripe-Signature does not verify: {exc}") from None
    except orjson.JSONDecodeError:
        raise InvalidRequest("the event is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidRequest("the event is not a JSON object")
    return await _queue(svc, site_id, webhooks.stripe_targets(event))


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def chargebee_event(
    svc: Services, site_id: str, body: bytes, authorization: str | None
) -> int:
    """Check the webhook's HTTP Basic credentials and queue its re-reads."""
    remote = await _remote(svc, site_id, "chargebee")
    given = _basic(authorization)
    want = (remote.webhook.get("webhook_username", ""), remote.webhook.get("webhook_password", ""))
    # both compared, whatever the first gives, so the time taken says nothing about either
    ok = given is not None
    ok &= hmac.compare_digest((given or ("", ""))[0].encode(), want[0].encode())
    ok &= hmac.compare_digest((given or ("", ""))[1].encode(), want[1].encode())
    if not ok or not want[1]:
        raise AuthenticationFailed(
            "wrong webhook credentials", headers={"WWW-Authenticate": 'Basic realm="offerd"'}
        )
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the event is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidRequest("the event is not a JSON object")
    return await _queue(svc, site_id, webhooks.chargebee_targets(event))
