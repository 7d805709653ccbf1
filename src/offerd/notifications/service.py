"""Admin use cases of notifications: channels, and the delivery log with replay."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.db import Conn, transaction
from offerd.edge.errors import InvalidState, NotFound
from offerd.notifications import channel_store, dispatch, signing, store
from offerd.notifications.models import (
    ChannelIn,
    EmailChannel,
    SegmentChannel,
    SlackChannel,
    WebhookChannel,
)


def _tail(value: str, keep: int = 4) -> str:
    return "…" + value[-keep:] if len(value) > keep else "…"


async def save_channel(
    conn: Conn, *, site_id: str, channel_id: str, channel: ChannelIn, now: datetime
) -> tuple[DictRow, str | None]:
    """Upsert a channel; returns it and, for a webhook whose secret offerd made, that secret."""
    async with transaction(conn):
        existing = await channel_store.get(conn, site_id, channel_id)
        shown: str | None = None
        secret: str | None
        config: dict[str, Any]
        match channel:
            case WebhookChannel():
                config = {"url": channel.url}
                if channel.basic_auth:
                    config["basic_auth"] = channel.basic_auth.model_dump()
                secret = channel.secret
                keeps = existing and existing["type"] == "webhook" and existing["secret"]
                if secret is None and not keeps:
                    secret = shown = signing.new_secret()
            case SlackChannel():
                config, secret = {"webhook_url": channel.webhook_url}, None
            case EmailChannel():
                config, secret = {"to": channel.to}, None
            case SegmentChannel():
                config, secret = {"endpoint": channel.endpoint}, channel.write_key
        row = await channel_store.upsert(
            conn,
            site_id=site_id,
            channel_id=channel_id,
            type=channel.type,
            config=config,
            secret=secret,
            event_types=list(channel.event_types),
            now=now,
        )
    return row, shown


def channel_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    """A channel as the admin API shows it: secrets redacted to their last characters."""
    config = dict(row["config"])
    if row["type"] == "slack":
        url = str(config["webhook_url"])
        config["webhook_url"] = url.split("/", 3)[:3] and "/".join(
            url.split("/")[:3]
        ) + "/" + _tail(url)
    if "basic_auth" in config:
        config["basic_auth"] = {
            "username": config["basic_auth"]["username"],
            "password": "********",
        }
    out: dict[str, Any] = {
        "id": row["id"],
        "object": "notification_channel",
        "type": row["type"],
        **config,
        "event_types": list(row["event_types"]),
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "created_at": int(row["created_at"].timestamp()),
        "updated_at": int(row["updated_at"].timestamp()),
    }
    if row["type"] == "webhook" and row["secret"]:
        out["secret_hint"] = "whsec_" + _tail(row["secret"])
    if row["type"] == "segment" and row["secret"]:
        out["write_key_hint"] = _tail(row["secret"])
    return out


def delivery_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    def ts(value: datetime | None) -> int | None:
        return None if value is None else int(value.timestamp())

    return {
        "id": row["id"],
        "object": "delivery",
        "purpose": row["purpose"],
        "channel": row["channel"],
        "channel_id": row["channel_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "fulfillment_id": row["fulfillment_id"],
        "destination": row["destination"],
        "status": row["status"],
        "skip_reason": row["skip_reason"],
        "attempts": row["attempts"],
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
        "delivered_at": ts(row["delivered_at"]),
    }


async def delivery_detail(conn: Conn, site_id: str, delivery_id: str) -> dict[str, Any]:
    row = await store.get(conn, site_id, delivery_id)
    if row is None:
        raise NotFound(f"Delivery {delivery_id!r} not found")
    attempts = await store.attempts(conn, delivery_id)
    return {
        **delivery_resource(row),
        "payload": row["payload"],
        "attempt_log": [
            {
                "attempted_at": int(a["attempted_at"].timestamp()),
                "status_code": a["status_code"],
                "latency_ms": a["latency_ms"],
                "error": a["error"],
                "response_excerpt": a["response_excerpt"],
            }
            for a in attempts
        ],
    }


async def retry(conn: Conn, site_id: str, delivery_id: str, *, now: datetime) -> DictRow:
    """Send a delivery again (a failed, skipped or delivered one; a pending one is already queued)."""
    async with transaction(conn):
        row = await store.get(conn, site_id, delivery_id)
        if row is None:
            raise NotFound(f"Delivery {delivery_id!r} not found")
        if row["status"] == "pending":
            raise InvalidState(f"Delivery {delivery_id!r} is already waiting to be sent")
        await dispatch.requeue(conn, row, now=now)
        updated = await store.get(conn, site_id, delivery_id)
    assert updated is not None
    return updated


async def get_channel(conn: Conn, site_id: str, channel_id: str) -> DictRow | None:
    return await channel_store.get(conn, site_id, channel_id)


async def list_channels(conn: Conn, site_id: str) -> list[DictRow]:
    return await channel_store.list_all(conn, site_id)


async def delete_channel(conn: Conn, site_id: str, channel_id: str) -> bool:
    """Whether there was such a channel."""
    return await channel_store.delete(conn, site_id, channel_id)


async def list_deliveries(
    conn: Conn,
    site_id: str,
    *,
    status: str | None,
    channel: str | None,
    event_type: str | None,
    fulfillment_id: str | None = None,
    before: str | None = None,
    limit: int,
) -> list[DictRow]:
    """The delivery log, newest first, from before the ``before`` delivery."""
    return await store.list_deliveries(
        conn,
        site_id,
        status=status,
        channel=channel,
        event_type=event_type,
        fulfillment_id=fulfillment_id,
        before=before,
        limit=limit,
    )
