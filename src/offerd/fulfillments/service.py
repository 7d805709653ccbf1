"""Accepting an offer, and every later change of a fulfillment's status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import DictRow

from offerd import urls
from offerd.db import Conn, transaction
from offerd.errors import InvalidState, NotFound
from offerd.events import service as events
from offerd.fulfillments import machine, processors, store, transitions
from offerd.fulfillments.views import resource
from offerd.headers import Origin, RequestMeta, entity_visible
from offerd.ids import new_id
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
    """The accept path: in one transaction, the fulfillment, its ``accepted`` event and what
    carries it forward (its job, its hosted page, or its completion).

    The personalized offer's row lock makes concurrent accepts of it take turns, so exactly one
    creates the fulfillment and the rest find it (same option) or are refused (another option).
    """
    async with transaction(conn):
        po, live = await store.lock_for_accept(conn, site.id, personalized_offer_id)
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
        if live is not None:
            if live["option_id"] != option_id:
                raise InvalidState(
                    f"Personalized offer {personalized_offer_id!r} was already accepted with "
                    f"option {live['option_id']!r}"
                )
            existing = await store.get(conn, site.id, live["id"])
            assert existing is not None
            extra = await processors.on_existing(conn, existing, base_url)
            return Accepted(existing, created=False, extra=extra)
        if po["expires_at"] <= now:
            raise InvalidState(f"Personalized offer {personalized_offer_id!r} has expired")

        fulfillment_id = new_id("of")
        kind = option["processing_type"]
        template = option.get("redirect_url")
        redirect_url = None
        if template and kind in ("url_redirect", "billing_update"):
            redirect_url = urls.render(
                template,
                {
                    "customer_id": po["customer_id"],
                    "subscription_id": po["subscription_id"],
                    "personalized_offer_id": po["id"],
                    "fulfillment_id": fulfillment_id,
                    "option_id": option_id,
                },
            )
        suppression = meta.suppression
        row = await store.insert(
            conn,
            {
                "id": fulfillment_id,
                "site_id": site.id,
                "personalized_offer_id": po["id"],
                "offer_id": po["offer_id"],
                "option_id": option_id,
                "processing_type": kind,
                "status": "in_progress",
                "redirect_url": redirect_url,
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
            },
        )
        await events.record(
            conn,
            transitions.event_for(row, "accepted", now, meta.origin),
            suppression=suppression,
            fulfillment=row,
            personalized_offer=po,
        )
        outcome = await processors.on_accept(
            processors.Accepting(conn, site, row, option, po, now, base_url)
        )
    return Accepted(outcome.fulfillment, created=True, extra=outcome.extra)


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
