"""Which parts of a channel are secret, and their encryption at rest (and the site's signing
secret for processing webhooks, which a delivery reads with its channel's).

A channel's secrets: the ``secret`` column (a webhook's signing secret, a Segment write key), a
Slack incoming-webhook URL (``config.webhook_url``: the URL is the credential) and an HTTP Basic
password (``config.basic_auth.password``). They are stored encrypted (``offerd.common.secrets``)
and decrypted only where a delivery is made, or for the admin API's hints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from offerd.common.secrets import SecretBox


def _map_config(config: Mapping[str, Any], kind: str, fn: Callable[[str], str]) -> dict[str, Any]:
    out = dict(config)
    if kind == "slack" and isinstance(out.get("webhook_url"), str):
        out["webhook_url"] = fn(out["webhook_url"])
    auth = out.get("basic_auth")
    if isinstance(auth, Mapping) and isinstance(auth.get("password"), str):
        out["basic_auth"] = {**auth, "password": fn(auth["password"])}
    return out


def seal(
    box: SecretBox, kind: str, config: Mapping[str, Any], secret: str | None
) -> tuple[dict[str, Any], str | None]:
    """As stored: every secret part encrypted (what is already encrypted is left as it is)."""
    return _map_config(config, kind, lambda v: box.seal(v) or v), box.seal(secret)


def rotate(
    box: SecretBox, kind: str, config: Mapping[str, Any], secret: str | None
) -> tuple[dict[str, Any], str | None]:
    """Every secret part encrypted with the newest key."""
    return _map_config(config, kind, box.rotate), None if secret is None else box.rotate(secret)


def reveal_config(box: SecretBox, kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    return _map_config(config, kind, box.decrypt)


def reveal_secret(box: SecretBox, secret: str | None) -> str | None:
    return None if secret is None else box.decrypt(secret)


def reveal_delivery(box: SecretBox, delivery: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery row as read for sending, its channel's secrets decrypted for the channel."""
    out = dict(delivery)
    if out.get("channel_config") is not None:
        out["channel_config"] = reveal_config(box, out["channel"], out["channel_config"])
    out["channel_secret"] = reveal_secret(box, out.get("channel_secret"))
    out["site_webhook_secret"] = reveal_secret(box, out.get("site_webhook_secret"))
    return out
