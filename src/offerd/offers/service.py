"""Use cases of the offers slice: choosing the offer for a subscriber, and saving offers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import DictRow

from offerd.db import Conn, transaction
from offerd.errors import NotFound, ParamWrongValue
from offerd.headers import RequestMeta
from offerd.ids import new_id
from offerd.offers import store, targeting
from offerd.offers.catalog import Catalog
from offerd.offers.models import OfferIn
from offerd.offers.views import personalized_offer_resource
from offerd.sites import store as sites_store
from offerd.sites.models import Brand, Site

_LEDGER_TIMES = (
    "trial_end",
    "current_term_start",
    "current_term_end",
    "pause_until",
    "cancel_at",
    "cancelled_at",
    "created_at",
    "updated_at",
)
_HIDDEN = ("site_id", "version")


@dataclass(frozen=True, slots=True)
class Ask:
    """What the product told us about the subscriber (the personalized_offers params)."""

    customer_id: str
    subscription_id: str | None
    user: Mapping[str, Any]
    custom: Mapping[str, Any] | None
    request_context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    personalized_offer: dict[str, Any] | None
    expires_at: datetime
    brand: Brand | None


def _ledger_view(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    view = {k: v for k, v in raw.items() if k not in _HIDDEN}
    for key in _LEDGER_TIMES:
        if isinstance(view.get(key), str):
            view[key] = datetime.fromisoformat(view[key])
    return view


async def personalize(
    conn: Conn, *, site: Site, catalog: Catalog, ask: Ask, meta: RequestMeta, now: datetime
) -> Decision:
    """Evaluate the site's active offers for this subscriber and snapshot the winner."""
    ledger = await store.ledger(conn, site.id, ask.customer_id, ask.subscription_id)
    customer = _ledger_view(ledger["customer"])
    subscription = _ledger_view(ledger["subscription"])
    entity = meta.business_entity_id
    if customer is not None and entity and customer.get("business_entity_id") not in (None, entity):
        raise NotFound(f"Customer {ask.customer_id!r} not found", param="customer_id")
    if subscription is not None and subscription["customer_id"] != ask.customer_id:
        raise ParamWrongValue("subscription_id", "belongs to another customer")
    subscription_id = subscription["id"] if subscription else ask.subscription_id

    ctx = targeting.build_context(
        now=now,
        customer=customer or {"id": ask.customer_id},
        subscription=subscription or ({"id": subscription_id} if subscription_id else {}),
        user=ask.user,
        custom=ask.custom,
        context={**ask.request_context, "device": meta.origin.device},
    )
    ranked = await catalog.candidates(conn, site)
    chosen = targeting.choose(ranked, ctx, now=now, business_entity_id=entity)
    expires_at = now + timedelta(seconds=site.settings.personalized_offer_ttl_seconds)
    if chosen is None:
        return Decision(None, expires_at, site.brand)

    po_id = new_id("po")
    definition = chosen.definition
    await store.insert_personalized_offer(
        conn,
        id=po_id,
        site=site.id,
        offer_id=chosen.id,
        offer_version=chosen.version,
        customer_id=ask.customer_id,
        subscription_id=subscription_id,
        business_entity_id=entity,
        brand_id=site.brand.id if site.brand else None,
        content=definition["content"],
        options=definition["options"],
        context={
            "user": dict(ask.user),
            "custom": ask.custom,
            "request_context": dict(ask.request_context),
        },
        origin=meta.origin.as_dict(),
        now=now,
        expires_at=expires_at,
    )
    values = {
        "customer_id": ask.customer_id,
        "subscription_id": subscription_id,
        "personalized_offer_id": po_id,
    }
    resource = personalized_offer_resource(
        po_id, chosen.id, definition["content"], definition["options"], values
    )
    return Decision(resource, expires_at, site.brand)


async def save_offer(
    conn: Conn, *, site_id: str, offer_id: str, offer: OfferIn, now: datetime
) -> DictRow:
    """Upsert an offer; its eligibility expression must compile. A changed definition is a new version."""
    if offer.eligibility:
        try:
            targeting.compile_rule(offer.eligibility)
        except targeting.RuleError as exc:
            raise ParamWrongValue("eligibility", str(exc)) from None
    async with transaction(conn):
        row = await store.upsert_offer(
            conn, site_id, offer_id, offer.model_dump(mode="json", exclude_none=True), now
        )
        await sites_store.bump_catalog(conn, site_id)
    return row


def offer_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    definition = dict(row["definition"])
    return {
        "id": row["id"],
        "object": "offer",
        "version": row["version"],
        **definition,
        "created_at": int(row["created_at"].timestamp()),
        "updated_at": int(row["updated_at"].timestamp()),
    }
