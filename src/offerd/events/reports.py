"""The subscriber's reports that an offer was viewed or dismissed: the event, and what it tells
the channels that listen, in the caller's transaction.

Apart from the event log (``events.service``), which only writes: the log is the ground the
fulfillments write their events beside, and it must not send."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from offerd.db import Conn
from offerd.edge.errors import NotFound
from offerd.edge.headers import RequestMeta, entity_visible
from offerd.events import service
from offerd.events.models import Event
from offerd.notifications.fanout import Subject, fanout, listening
from offerd.offers import service as offers

Reported = Literal["viewed", "dismissed"]


async def report(
    conn: Conn,
    *,
    site_id: str,
    personalized_offer_id: str,
    type: Reported,
    meta: RequestMeta,
    now: datetime,
) -> Event:
    offer = await offers.issued(conn, site_id, personalized_offer_id)
    entity = meta.business_entity_id
    if offer is None or not entity_visible(offer.business_entity_id, entity):
        raise NotFound(
            f"Personalized offer {personalized_offer_id!r} not found",
            param="personalized_offer_id",
        )
    event = await service.record(
        conn,
        Event(
            type=type,
            site_id=site_id,
            personalized_offer_id=offer.id,
            offer_id=offer.offer_id,
            customer_id=offer.customer_id,
            subscription_id=offer.subscription_id,
            business_entity_id=entity or offer.business_entity_id,
            experiment_id=offer.experiment_id,
            experiment_arm=offer.experiment_arm,
            occurred_at=now,
            origin=meta.origin,
        ),
    )
    channels = await listening(conn, site_id, type)
    if channels:
        subject = Subject(offer.resource(), offer.external_user_id)
        await fanout(conn, event, subject, suppression=meta.suppression, channels=channels)
    return event
