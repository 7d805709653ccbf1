"""Writing a fulfillment's move to ``completed`` or ``failed``: the status, the event, and its
notifications (fanned out here, the fulfillment and the offer rendered for them), all in the
caller's transaction. Every driver of the state machine (the merchant's update, the worker, the
hosted page, email links, the expiry sweep) comes here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.db import Conn
from offerd.edge.headers import Origin, Suppression
from offerd.events.models import Event, EventType
from offerd.fulfillments import machine, store
from offerd.fulfillments.views import resource
from offerd.notifications.fanout import Subject, fanout
from offerd.notifications.models import NOTIFICATION_TYPE
from offerd.observability import FULFILLMENTS
from offerd.offers.issued import IssuedOffer


def event_for(row: Mapping[str, Any], type: EventType, now: datetime, origin: Origin) -> Event:
    return Event(
        type=type,
        site_id=row["site_id"],
        personalized_offer_id=row["personalized_offer_id"],
        offer_id=row["offer_id"],
        option_id=row["option_id"],
        fulfillment_id=row["id"],
        customer_id=row["customer_id"],
        subscription_id=row["subscription_id"],
        business_entity_id=row["business_entity_id"],
        experiment_id=row.get("experiment_id"),
        experiment_arm=row.get("experiment_arm"),
        occurred_at=now,
        origin=origin,
        id=new_id("ev"),
    )


def subject(offer: IssuedOffer, fulfillment: Mapping[str, Any]) -> Subject:
    """What the notifications of a fulfillment's event tell besides the event."""
    return Subject(
        personalized_offer=offer.resource(),
        external_user_id=offer.external_user_id,
        fulfillment=resource(fulfillment),
    )


def stored_suppression(row: Mapping[str, Any]) -> Suppression:
    return Suppression(
        actions=row["suppress_actions"],
        webhook=row["suppress_webhook"],
        email=row["suppress_email"],
    )


def stored_origin(row: Mapping[str, Any]) -> Origin:
    origin = row["origin"] or {}
    return Origin(ip=origin.get("ip"), user=origin.get("user"), device=origin.get("device"))


async def finalize(
    conn: Conn,
    row: Mapping[str, Any],
    transition: machine.Transition,
    *,
    now: datetime,
    origin: Origin | None = None,
    suppression: Suppression | None = None,
) -> DictRow | None:
    """Write a transition, its event and its deliveries, in the caller's transaction.

    Returns the updated row, or None when the fulfillment had already left ``in_progress`` (a
    retried job, a page submitted twice): the change is applied once. The suppression headers of
    the accept carry over to this event; those of the request causing it add to them.
    """
    event = event_for(row, transition.event, now, origin or stored_origin(row))
    updated, channels, po = await store.apply_transition(
        conn,
        row["id"],
        status=transition.status,
        error_code=transition.error_code,
        error_message=transition.error_message,
        now=now,
        event_id=event.id,
        event_type=transition.event,
        origin=event.origin.as_dict(),
        notification=NOTIFICATION_TYPE[transition.event],
    )
    if updated is None:
        return None
    FULFILLMENTS.labels(updated["processing_type"], transition.status).inc()
    if channels:
        merged = stored_suppression(row)
        if suppression is not None:
            merged = Suppression(
                actions=merged.actions or suppression.actions,
                webhook=merged.webhook or suppression.webhook,
                email=merged.email or suppression.email,
            )
        assert po is not None  # the statement reads it when a channel listens
        await fanout(
            conn,
            event,
            subject(IssuedOffer.of(po), updated),
            suppression=merged,
            channels=channels,
        )
    return updated


async def lock(conn: Conn, fulfillment_id: str) -> DictRow | None:
    """The fulfillment row, locked: for a driver (the hosted page) that decides on it with its
    own rows locked first, then moves it here before the lock is released."""
    return await store.lock(conn, fulfillment_id)


async def complete(conn: Conn, row: Mapping[str, Any], *, now: datetime) -> DictRow | None:
    return await finalize(conn, row, machine.complete(row["status"]), now=now)


async def fail(
    conn: Conn, row: Mapping[str, Any], code: machine.ErrorCode, message: str, *, now: datetime
) -> DictRow | None:
    return await finalize(conn, row, machine.fail(row["status"], code, message), now=now)
