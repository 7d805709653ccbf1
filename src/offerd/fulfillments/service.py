"""Accepting an offer, and every later change of a fulfillment's status."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import DictRow

from offerd.common import urls
from offerd.common.ids import new_id
from offerd.db import Conn, transaction
from offerd.edge.errors import InvalidState, NotFound
from offerd.edge.headers import Origin, RequestMeta, entity_visible
from offerd.fulfillments import machine, processors, store, transitions
from offerd.fulfillments.views import resource
from offerd.notifications.fanout import fanout
from offerd.observability import FULFILLMENTS
from offerd.offers import service as offers
from offerd.offers.issued import IssuedOffer
from offerd.sites.models import Site

__all__ = ["Accepted", "accept", "get", "resource", "update_by_merchant"]


@dataclass(frozen=True, slots=True)
class Accepted:
    fulfillment: DictRow
    created: bool
    extra: dict[str, Any]


async def accept(
    conn: Conn,
    *,
    site: Site,
    personalized_offer_id: str,
    option_id: str,
    meta: RequestMeta,
    now: datetime,
    base_url: str,
) -> Accepted:
    """The accept path: the fulfillment, its ``accepted`` event and what carries it forward (its
    job, its hosted page, or its completion), all or nothing.

    Concurrent accepts of one personalized offer are settled by the unique index on its live
    fulfillment: exactly one creates it, the rest find it (same option) or are refused (another
    option). No lock is needed for that, so none is taken, and in the common case (a job to
    enqueue, no channel listening) the writes are one statement, atomic on its own: the accept
    is two statements, the read and the write, where a bare insert of a fulfillment and its
    event in a transaction takes four. Anything more (a hosted page, a completion, deliveries)
    goes in one transaction with the write.
    """
    po = await store.personalized_offer(conn, site.id, personalized_offer_id)
    if po is None or not entity_visible(po["business_entity_id"], meta.business_entity_id):
        raise NotFound(
            f"Personalized offer {personalized_offer_id!r} not found",
            param="personalized_offer_id",
        )
    option = next((o for o in po["options"] if o["id"] == option_id), None)
    if option is None:
        raise NotFound(
            f"Option {option_id!r} is not an option of personalized offer "
            f"{personalized_offer_id!r}",
            param="option_id",
        )
    if po["expires_at"] <= now:
        # a retry of an accept made before the expiry still gets its fulfillment
        existing = await _existing(conn, site, po, option_id, base_url)
        if existing is not None:
            return existing
        raise InvalidState(f"Personalized offer {personalized_offer_id!r} has expired")

    fulfillment_id = new_id("of")
    kind = option["processing_type"]
    suppression = meta.suppression
    values = {
        "id": fulfillment_id,
        "site_id": site.id,
        "personalized_offer_id": po["id"],
        "offer_id": po["offer_id"],
        "option_id": option_id,
        "processing_type": kind,
        "status": "in_progress",
        "redirect_url": _redirect_url(option, po, fulfillment_id),
        "customer_id": po["customer_id"],
        "subscription_id": po["subscription_id"],
        "business_entity_id": po["business_entity_id"],
        "suppress_actions": suppression.actions,
        "suppress_webhook": suppression.webhook,
        "suppress_email": suppression.email,
        "origin": meta.origin.as_dict(),
        "created_at": now,
        "completed_at": None,
        "deadline_at": now + timedelta(days=site.settings.fulfillment_timeout_days),
        "experiment_id": po["experiment_id"],
        "experiment_arm": po["experiment_arm"],
    }
    event = transitions.event_for(values, "accepted", now, meta.origin)
    processor = processors.of(kind)
    more = po["notify"] or processor.follows_up(site)
    async with transaction(conn) if more else nullcontext():
        row, channels = await store.insert_accepted(
            conn,
            values,
            event_id=event.id,
            event_origin=meta.origin.as_dict(),
            job_kind=processor.accept_job,
        )
        if row is None:  # a live fulfillment exists: this accept is a repeat, or a conflict
            existing = await _existing(conn, site, po, option_id, base_url)
            assert existing is not None
            return existing
        FULFILLMENTS.labels(kind, "in_progress").inc()
        if channels:
            # read with the content when a channel listened then; one added since reads it
            offer = (
                IssuedOffer.of(po) if po["notify"] else await offers.issued(conn, site.id, po["id"])
            )
            assert offer is not None
            await fanout(
                conn,
                event,
                transitions.subject(offer, row),
                suppression=suppression,
                channels=channels,
            )
        outcome = await processor.on_accept(
            processors.Accepting(conn, site, row, option, po, now, base_url)
        )
    return Accepted(outcome.fulfillment, created=True, extra=outcome.extra)


def _redirect_url(
    option: Mapping[str, Any], po: Mapping[str, Any], fulfillment_id: str
) -> str | None:
    template = option.get("redirect_url")
    if not template or option["processing_type"] not in ("url_redirect", "billing_update"):
        return None
    return urls.fill(
        template,
        customer_id=po["customer_id"],
        subscription_id=po["subscription_id"],
        personalized_offer_id=po["id"],
        fulfillment_id=fulfillment_id,
        option_id=option["id"],
    )


async def _existing(
    conn: Conn, site: Site, po: Mapping[str, Any], option_id: str, base_url: str
) -> Accepted | None:
    """The live fulfillment of this personalized offer, if it is for this option; a live one for
    another option is a conflict."""
    live = await store.live_fulfillment(conn, po["id"])
    if live is None:
        return None
    if live["option_id"] != option_id:
        raise InvalidState(
            f"Personalized offer {po['id']!r} was already accepted with option {live['option_id']!r}"
        )
    existing = await store.get(conn, site.id, live["id"])
    assert existing is not None
    extra = await processors.of(existing["processing_type"]).on_existing(conn, existing, base_url)
    return Accepted(existing, created=False, extra=extra)


async def get(conn: Conn, *, site: Site, fulfillment_id: str, meta: RequestMeta) -> DictRow:
    row = await store.get(conn, site.id, fulfillment_id)
    if row is None or not entity_visible(row["business_entity_id"], meta.business_entity_id):
        raise NotFound(f"Offer fulfillment {fulfillment_id!r} not found")
    return row


async def update_by_merchant(
    conn: Conn,
    *,
    site: Site,
    fulfillment_id: str,
    status: Any,
    failure_reason: str | None,
    meta: RequestMeta,
    now: datetime,
) -> DictRow:
    async with transaction(conn):
        row = await store.get(conn, site.id, fulfillment_id, lock=True)
        if row is None or not entity_visible(row["business_entity_id"], meta.business_entity_id):
            raise NotFound(f"Offer fulfillment {fulfillment_id!r} not found")
        try:
            transition = machine.merchant_update(
                row["status"], row["processing_type"], status, failure_reason
            )
        except machine.IllegalTransition as exc:
            raise InvalidState(str(exc)) from None
        updated = await transitions.finalize(
            conn,
            row,
            transition,
            now=now,
            origin=meta.origin if meta.origin != Origin() else None,
            suppression=meta.suppression,
        )
        assert updated is not None  # the row lock means nothing moved it since we read it
        return updated
