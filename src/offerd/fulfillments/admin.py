"""The fulfillments as the admin API (and the console) see them: search, the detail of one with
its events, the jobs that carry it forward and the deliveries it caused, and expiring one that
is stuck. Each other slice's rows come through that slice's service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.db import Conn, transaction
from offerd.edge.errors import InvalidState, NotFound
from offerd.events import service as events
from offerd.fulfillments import store, transitions
from offerd.fulfillments.views import resource
from offerd.notifications import service as notifications
from offerd.queue import jobs

ADMIN_EXPIRED = "expired by an administrator"


def admin_resource(row: DictRow) -> dict[str, Any]:
    """The public resource, with what an operator searches by."""
    return {
        **resource(row),
        "offer_id": row["offer_id"],
        "customer_id": row["customer_id"],
        "subscription_id": row["subscription_id"],
        "deadline_at": int(row["deadline_at"].timestamp()) if row["deadline_at"] else None,
    }


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


async def search(
    conn: Conn,
    site_id: str,
    *,
    status: str | None,
    customer_id: str | None,
    subscription_id: str | None,
    offer_id: str | None,
    created_after: int | None,
    created_before: int | None,
    before: str | None,
    limit: int,
) -> list[DictRow]:
    return await store.list_fulfillments(
        conn,
        site_id,
        status=status,
        customer=customer_id,
        subscription=subscription_id,
        offer=offer_id,
        after=_at(created_after),
        until=_at(created_before),
        before=before,
        limit=limit,
    )


def _job(row: DictRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "attempts": row["attempts"],
        "run_at": int(row["run_at"].timestamp()),
        "running": row["locked_by"] is not None,
        "last_error": row["last_error"],
    }


async def detail(conn: Conn, site_id: str, fulfillment_id: str) -> dict[str, Any]:
    row = await store.get(conn, site_id, fulfillment_id)
    if row is None:
        raise NotFound(f"Offer fulfillment {fulfillment_id!r} not found")
    event_rows = await events.for_fulfillment(conn, site_id, fulfillment_id)
    job_rows = await jobs.for_fulfillment(conn, fulfillment_id)
    sent = await notifications.list_deliveries(
        conn,
        site_id,
        status=None,
        channel=None,
        event_type=None,
        fulfillment_id=fulfillment_id,
        limit=100,
    )
    return {
        **admin_resource(row),
        "events": [events.event_resource(e) for e in event_rows],
        "jobs": [_job(j) for j in job_rows],
        "deliveries": [
            await notifications.delivery_detail(conn, site_id, d["id"]) for d in reversed(sent)
        ],
    }


async def detail_row(conn: Conn, site_id: str, fulfillment_id: str) -> DictRow | None:
    return await store.get(conn, site_id, fulfillment_id)


async def expire(conn: Conn, site_id: str, fulfillment_id: str, *, now: datetime) -> DictRow:
    """End a stuck fulfillment as ``fulfillment_expired``, with its ``failed`` event and
    notifications, as the deadline sweep does. Expiring one already expired is a no-op; one that
    ended otherwise is a 409."""
    async with transaction(conn):
        row = await store.get(conn, site_id, fulfillment_id, lock=True)
        if row is None:
            raise NotFound(f"Offer fulfillment {fulfillment_id!r} not found")
        if row["status"] == "in_progress":
            failed = await transitions.fail(
                conn, row, "fulfillment_expired", ADMIN_EXPIRED, now=now
            )
            assert failed is not None
            return failed
        if row["error_code"] == "fulfillment_expired":
            return row
        raise InvalidState(f"Offer fulfillment {fulfillment_id!r} is already {row['status']}")
