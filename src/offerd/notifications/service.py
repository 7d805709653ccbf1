"""Admin use cases of notifications: channels, and the delivery log with replay."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.common.secrets import SecretBox
from offerd.db import Conn, in_batches, transaction
from offerd.edge.errors import InvalidState, NotFound
from offerd.notifications import (
    channel_secrets,
    channel_store,
    dispatch,
    fanout,
    payloads,
    signing,
    store,
)
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
    conn: Conn,
    *,
    site_id: str,
    channel_id: str,
    channel: ChannelIn,
    now: datetime,
    box: SecretBox,
) -> tuple[DictRow, str | None]:
    """Upsert a channel, its secrets encrypted; returns it and, for a webhook whose secret offerd
    made, that secret."""
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
        config, secret = channel_secrets.seal(box, channel.type, config, secret)
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


def channel_resource(row: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """A channel as the admin API shows it: secrets redacted to their last characters."""
    config = channel_secrets.reveal_config(box, row["type"], row["config"])
    secret = channel_secrets.reveal_secret(box, row["secret"])
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
    if row["type"] == "webhook" and secret:
        out["secret_hint"] = "whsec_" + _tail(secret)
    if row["type"] == "segment" and secret:
        out["write_key_hint"] = _tail(secret)
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


def sample_event(site_id: str, event_id: str, now: datetime) -> dict[str, Any]:
    """What a channel's test send carries: an ``offer_accepted`` event with sample values
    (``ev_test_`` ids, ``cus_test`` customer) shaped like a real one, so it renders as one."""
    option = {"id": "test_option", "label": "Sample option", "processing_type": "webhook"}
    return payloads.chargebee_event(
        event_id=event_id,
        event_type="offer_accepted",
        occurred_at=now,
        content={
            "personalized_offer": {
                "id": "po_test",
                "offer_id": "test_offer",
                "content": {"title": f"Test send from offerd ({site_id})", "description": ""},
                "options": [option],
            },
            "offer_event": {
                "type": "accepted",
                "option_id": option["id"],
                "customer_id": "cus_test",
                "subscription_id": None,
                "external_user_id": None,
            },
        },
        source="api",
    )


async def test_send(conn: Conn, site_id: str, channel_id: str, *, now: datetime) -> DictRow:
    """Queue a sample event to one channel (enabled or not), as a ``test`` delivery."""
    async with transaction(conn):
        channel = await channel_store.get(conn, site_id, channel_id)
        if channel is None:
            raise NotFound(f"Notification channel {channel_id!r} not found", param="channel_id")
        event_id = new_id("ev_test")
        await dispatch.create(
            conn,
            site_id=site_id,
            purpose="test",
            event_id=event_id,
            event_type="offer_accepted",
            payload=sample_event(site_id, event_id, now),
            targets=[
                dispatch.Target(
                    channel=channel["type"],
                    channel_id=channel["id"],
                    destination=fanout.destination(channel),
                    skip_reason=None,
                )
            ],
            now=now,
        )
        row = await store.test_delivery(conn, site_id, event_id)
    assert row is not None
    return row


async def reseal_channels(
    conn: Conn,
    box: SecretBox,
    *,
    rotate: bool,
    batch: int = 200,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Encrypt stored channel secrets: every one with the newest key (``rotate``), or only those
    stored before encryption. One transaction per batch, so a crash loses at most a batch, and
    a re-run does again what is left (both are idempotent). Returns how many channels changed."""
    fn = channel_secrets.rotate if rotate else channel_secrets.seal

    async def each(conn: Conn, row: DictRow) -> bool:
        config, secret = fn(box, row["type"], row["config"], row["secret"])
        if config == row["config"] and secret == row["secret"]:
            return False
        await channel_store.set_secrets(conn, row["site_id"], row["id"], config, secret)
        return True

    return await in_batches(
        conn,
        start=("", ""),
        fetch=lambda conn, after: channel_store.batch_after(
            conn, after, limit=batch, plaintext_only=not rotate
        ),
        key=lambda row: (str(row["site_id"]), str(row["id"])),
        each=each,
        progress=progress,
    )


async def count_channels(conn: Conn) -> int:
    """Every site's channels (the total ``offerd secrets rotate`` works through)."""
    return await channel_store.count_all(conn)


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
