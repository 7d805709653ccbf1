"""One-time links in fulfillment emails: "Mark fulfilled" and "Mark failed".

A link is a 192-bit random token; only its SHA-256 is stored. Opening a link shows a page (a GET
changes nothing, so mail scanners that prefetch links do no harm); submitting it performs the
update once, and then both links of that fulfillment are spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.rows import DictRow

from offerd.common.ids import secret_token
from offerd.db import Conn, fetchone, transaction
from offerd.fulfillments import machine, store, transitions

Action = Literal["complete", "fail"]

_INSERT = """
INSERT INTO action_links (token_hash, site_id, fulfillment_id, action, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_FIND = """
SELECT l.*, f.status AS fulfillment_status, f.processing_type, f.option_id, f.customer_id,
       f.subscription_id, po.content AS offer_content
FROM action_links l
JOIN offer_fulfillments f ON f.id = l.fulfillment_id
JOIN personalized_offers po ON po.id = f.personalized_offer_id
WHERE l.token_hash = %s
"""
_SPEND = "UPDATE action_links SET used_at = %s WHERE fulfillment_id = %s AND used_at IS NULL"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue(
    conn: Conn, fulfillment: Mapping[str, Any], *, base_url: str, now: datetime
) -> dict[str, str]:
    """Create both links for a fulfillment; they expire with it."""
    urls = {}
    for action in ("complete", "fail"):
        token = secret_token("act", bits=192)
        await conn.execute(
            _INSERT,
            (
                _hash(token),
                fulfillment["site_id"],
                fulfillment["id"],
                action,
                now,
                fulfillment["deadline_at"],
            ),
        )
        urls[action] = f"{base_url}/fulfillment_actions/{token}"
    return urls


@dataclass(frozen=True)
class Link:
    row: DictRow
    state: Literal["open", "used", "expired", "closed"]


async def find(conn: Conn, token: str, now: datetime) -> Link | None:
    row = await fetchone(conn, _FIND, (_hash(token),))
    if row is None:
        return None
    if row["used_at"] is not None:
        return Link(row, "used")
    if row["fulfillment_status"] != "in_progress":
        return Link(row, "closed")
    if now >= row["expires_at"]:
        return Link(row, "expired")
    return Link(row, "open")


async def perform(conn: Conn, token: str, *, reason: str | None, now: datetime) -> Link | None:
    """Submit a link: the merchant's update, once. Returns the link as it stands afterwards."""
    async with transaction(conn):
        link = await find(conn, token, now)
        if link is None or link.state != "open":
            return link
        fulfillment = await store.lock(conn, link.row["fulfillment_id"])
        assert fulfillment is not None
        action: Action = link.row["action"]
        try:
            transition = machine.merchant_update(
                fulfillment["status"],
                fulfillment["processing_type"],
                "completed" if action == "complete" else "failed",
                reason,
            )
        except machine.IllegalTransition:
            return Link(link.row, "closed")
        await transitions.finalize(conn, fulfillment, transition, now=now)
        await conn.execute(_SPEND, (now, fulfillment["id"]))
    return Link(link.row, "used")
