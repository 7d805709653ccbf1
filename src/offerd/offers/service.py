"""Use cases of the offers slice: choosing the offer for a subscriber, and saving offers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.db import Conn, transaction
from offerd.edge.errors import InvalidState, NotFound, ParamMissing, ParamWrongValue
from offerd.edge.headers import RequestMeta
from offerd.observability import RULE_BUDGET_EXCEEDED
from offerd.offers import guards, store, targeting
from offerd.offers.budget import RECORD_EXTENT, REQUEST_BUDGET, Allowance
from offerd.offers.catalog import Catalog, Compiled
from offerd.offers.catalog import load as load_catalog
from offerd.offers.decide import Outcome, decide
from offerd.offers.issued import IssuedOffer
from offerd.offers.localization import localize
from offerd.offers.models import ExperimentIn, OfferIn
from offerd.offers.views import personalized_offer_resource
from offerd.sites import service as sites
from offerd.sites.models import Brand, Site

log = structlog.get_logger("offerd.offers")


@dataclass(frozen=True, slots=True)
class Ask:
    """What the product told us about the subscriber (the personalized_offers params)."""

    customer_id: str
    subscription_id: str | None
    user: Mapping[str, Any]
    custom: Mapping[str, Any] | None
    request_context: Mapping[str, Any]
    # the longest list or map in custom (see budget.check_custom): what the rules' cost scales by
    custom_extent: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    personalized_offer: dict[str, Any] | None
    expires_at: datetime
    brand: Brand | None


class MissingFetch(Protocol):
    """Fetches a customer or subscription a remote billing provider has and the mirror lacks
    (``billing.sites.SiteProviders.fetch_missing``): whether it is mirrored now, and if not a
    note for ``explain`` (None: the site is on the ledger, there is nothing to fetch)."""

    async def fetch_missing(
        self, conn: Conn, site_id: str, kind: Literal["customer", "subscription"], oid: str
    ) -> tuple[bool, str | None]: ...


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything decisioning looks at for one request, read before any rule runs."""

    ctx: Any
    subscription_id: str | None
    brand: Brand | None
    history: dict[str, list[guards.Seen]]
    allowance: Allowance
    notes: tuple[str, ...] = ()


async def situation(
    conn: Conn,
    *,
    site: Site,
    ask: Ask,
    meta: RequestMeta,
    now: datetime,
    lookback_days: int,
    guarded: frozenset[str],
    reads: targeting.Reads | None = None,
    fetch: MissingFetch | None = None,
) -> Situation:
    """The ledger's customer and subscription (the mirror's, for a remote provider: one it
    lacks is fetched first, within a budget), the brand, and the guard history."""
    if site.multi_brand and not ask.subscription_id:
        raise ParamMissing("subscription_id", "is required when the site has several brands")
    since = now - timedelta(days=lookback_days) if guarded and lookback_days else None
    ledger = await store.ledger(
        conn, site.id, ask.customer_id, ask.subscription_id, history_since=since
    )
    notes: tuple[str, ...] = ()
    wanted: tuple[Literal["customer", "subscription"], str] | None = (
        ("subscription", ask.subscription_id)
        if ask.subscription_id and ledger.subscription is None
        else ("customer", ask.customer_id)
        if ledger.customer is None
        else None
    )
    if wanted is not None and fetch is not None:
        fetched, note = await fetch.fetch_missing(conn, site.id, wanted[0], wanted[1])
        if fetched:
            ledger = await store.ledger(
                conn, site.id, ask.customer_id, ask.subscription_id, history_since=since
            )
        elif note is not None:
            notes = (note,)
    customer, subscription = ledger.customer, ledger.subscription
    entity = meta.business_entity_id
    if customer is not None and entity and customer.get("business_entity_id") not in (None, entity):
        raise NotFound(f"Customer {ask.customer_id!r} not found", param="customer_id")
    if subscription is not None and subscription["customer_id"] != ask.customer_id:
        raise ParamWrongValue("subscription_id", "belongs to another customer")
    subscription_id = subscription["id"] if subscription else ask.subscription_id
    brand = site.brand
    if site.multi_brand and subscription is not None:
        brand = site.brand_by_id(subscription.get("brand_id")) or site.brand
    history: dict[str, list[guards.Seen]] = {}
    for offer_id, type_, at in ledger.history:
        if offer_id in guarded:
            history.setdefault(offer_id, []).append(guards.Seen(type_, at))
    ctx = targeting.build_context(
        now=now,
        customer=customer or {"id": ask.customer_id},
        subscription=subscription or ({"id": subscription_id} if subscription_id else {}),
        user=ask.user,
        custom=ask.custom,
        context={**ask.request_context, "device": meta.origin.device},
        wanted=reads,
    )
    extent = max(ask.custom_extent, len(ask.user.get("roles") or ()), RECORD_EXTENT)
    return Situation(ctx, subscription_id, brand, history, Allowance(extent), notes)


async def _decide(
    conn: Conn,
    compiled: Compiled,
    *,
    site: Site,
    ask: Ask,
    meta: RequestMeta,
    now: datetime,
    explain: bool = False,
    fetch: MissingFetch | None = None,
) -> tuple[Situation, Outcome]:
    seen = await situation(
        conn,
        site=site,
        ask=ask,
        meta=meta,
        now=now,
        lookback_days=compiled.guard_lookback_days,
        guarded=compiled.offers_with_guards,
        reads=compiled.reads,
        fetch=fetch,
    )
    allowance = seen.allowance
    outcome = decide(
        compiled.ranked,
        seen.ctx,
        now=now,
        site_id=site.id,
        customer_id=ask.customer_id,
        business_entity_id=meta.business_entity_id,
        brand_id=seen.brand.id if site.multi_brand and seen.brand else None,
        history=seen.history,
        experiments_by_offer=compiled.experiments_by_offer,
        explain=explain,
        by_id=compiled.by_id,
        # the typical request: every rule together fits the budget, so none is counted
        allowance=allowance if 2 * compiled.units(allowance.extent) > REQUEST_BUDGET else None,
    )
    for offer_id in allowance.exceeded:
        RULE_BUDGET_EXCEEDED.inc()
        log.warning(
            "rule_budget_exceeded",
            site=site.id,
            offer=offer_id,
            customer_id=ask.customer_id,
            extent=allowance.extent,
        )
    return seen, outcome


async def personalize(
    conn: Conn,
    *,
    site: Site,
    catalog: Catalog,
    ask: Ask,
    meta: RequestMeta,
    now: datetime,
    fetch: MissingFetch | None = None,
) -> Decision:
    """Decide for this subscriber and snapshot the winner as a personalized offer."""
    compiled = await catalog.compiled(conn, site)
    seen, outcome = await _decide(
        conn, compiled, site=site, ask=ask, meta=meta, now=now, fetch=fetch
    )
    expires_at = now + timedelta(seconds=site.settings.personalized_offer_ttl_seconds)
    chosen = outcome.offer
    po_id = new_id("po") if chosen is not None else None
    if outcome.experiment is not None and outcome.arm is not None:
        await store.insert_served(
            conn,
            id=new_id("sv"),
            site=site.id,
            customer_id=ask.customer_id,
            subscription_id=seen.subscription_id,
            experiment_id=outcome.experiment.id,
            experiment_arm=outcome.arm.id,
            offer_id=chosen.id if chosen else None,
            personalized_offer_id=po_id,
            now=now,
        )
    if chosen is None or po_id is None:
        return Decision(None, expires_at, seen.brand)

    content, options, locale = localize(chosen.definition, ask.request_context.get("locale"))
    await store.insert_personalized_offer(
        conn,
        id=po_id,
        site=site.id,
        offer_id=chosen.id,
        offer_version=chosen.version,
        customer_id=ask.customer_id,
        subscription_id=seen.subscription_id,
        business_entity_id=meta.business_entity_id,
        brand_id=seen.brand.id if seen.brand else None,
        content=content,
        options=options,
        context={
            "user": dict(ask.user),
            "custom": ask.custom,
            "request_context": dict(ask.request_context),
        },
        origin=meta.origin.as_dict(),
        locale=locale,
        experiment_id=outcome.experiment.id if outcome.experiment else None,
        experiment_arm=outcome.arm.id if outcome.arm else None,
        now=now,
        expires_at=expires_at,
    )
    values = {
        "customer_id": ask.customer_id,
        "subscription_id": seen.subscription_id,
        "personalized_offer_id": po_id,
    }
    resource = personalized_offer_resource(po_id, chosen.id, content, options, values)
    return Decision(resource, expires_at, seen.brand)


async def issued(conn: Conn, site_id: str, personalized_offer_id: str) -> IssuedOffer | None:
    """A personalized offer this site gave out, for the slices that act on it."""
    row = await store.get_personalized_offer(conn, site_id, personalized_offer_id)
    return IssuedOffer.of(row) if row is not None else None


async def explain(
    conn: Conn,
    *,
    site: Site,
    ask: Ask,
    meta: RequestMeta,
    now: datetime,
    fetch: MissingFetch | None = None,
) -> dict[str, Any]:
    """The decision for this request, with every offer of the site judged, recording nothing."""
    compiled = await load_catalog(conn, site.id, active_only=False)
    seen, outcome = await _decide(
        conn, compiled, site=site, ask=ask, meta=meta, now=now, explain=True, fetch=fetch
    )
    locale = None
    if outcome.offer is not None:
        _, _, locale = localize(outcome.offer.definition, ask.request_context.get("locale"))
    return {
        "object": "decision_explanation",
        "winner": outcome.offer.id if outcome.offer else None,
        "holdout": outcome.holdout,
        "experiment": (
            {"id": outcome.experiment.id, "arm": outcome.arm.id if outcome.arm else None}
            if outcome.experiment
            else None
        ),
        "locale": locale,
        "brand": seen.brand.model_dump() if seen.brand else None,
        "subscription_id": seen.subscription_id,
        "candidates": [j.as_dict() for j in outcome.judgements],
        # what the decision could not see (a subscription the billing provider did not give in
        # time): decided without it
        "notes": list(seen.notes),
    }


async def save_offer(
    conn: Conn,
    *,
    site_id: str,
    offer_id: str,
    offer: OfferIn,
    now: datetime,
    site: Site | None = None,
) -> DictRow:
    """Upsert an offer; its eligibility expression must compile and its brand exist. A changed
    definition is a new version (kept in offer_versions)."""
    if offer.brand_id is not None and site is not None and site.brand_by_id(offer.brand_id) is None:
        raise ParamWrongValue("brand_id", f"is not a brand of site {site.id!r}")
    if offer.eligibility:
        try:
            targeting.compile_rule(offer.eligibility)
        except targeting.RuleError as exc:
            raise ParamWrongValue("eligibility", str(exc)) from None
    async with transaction(conn):
        definition = offer.model_dump(mode="json", exclude_none=True)
        row = await store.upsert_offer(conn, site_id, offer_id, definition, now)
        await store.insert_version(conn, site_id, offer_id, row["version"], definition, now)
        await sites.catalog_changed(conn, site_id)
    return row


def billing_actions(offer: OfferIn) -> list[tuple[str, str]]:
    """The offer's billing action types, with the param naming each."""
    return [
        (f"options[{index}][billing_action][type]", option.billing_action.type)
        for index, option in enumerate(offer.options)
        if option.billing_action is not None
    ]


def billing_references(offer: OfferIn) -> list[tuple[str, Literal["plan", "coupon"], str]]:
    """The plans and coupons the offer's billing actions name, with the param naming each."""
    refs: list[tuple[str, Literal["plan", "coupon"], str]] = []
    for index, option in enumerate(offer.options):
        action = option.billing_action
        plan, coupon = getattr(action, "plan_id", None), getattr(action, "coupon_id", None)
        if plan:
            refs.append((f"options[{index}][billing_action][plan_id]", "plan", plan))
        if coupon:
            refs.append((f"options[{index}][billing_action][coupon_id]", "coupon", coupon))
    return refs


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


async def save_experiment(
    conn: Conn, *, site_id: str, experiment_id: str, experiment: ExperimentIn, now: datetime
) -> DictRow:
    """Upsert an experiment: its offers must exist, and a running one may not share an offer
    with another running experiment (a customer's arm must be unambiguous)."""
    offer_ids = [a.offer_id for a in experiment.arms if a.offer_id is not None]
    async with transaction(conn):
        found = await store.existing_offers(conn, site_id, offer_ids)
        for index, arm in enumerate(experiment.arms):
            if arm.offer_id is not None and arm.offer_id not in found:
                raise NotFound(
                    f"Offer {arm.offer_id!r} not found", param=f"arms[{index}][offer_id]"
                )
        if experiment.status == "running":
            clash = await store.contested(conn, site_id, experiment_id, offer_ids)
            if clash:
                raise InvalidState(
                    f"Offer {clash[0]['offer_id']!r} is already in running experiment "
                    f"{clash[0]['experiment_id']!r}"
                )
        row = await store.upsert_experiment(
            conn, site_id, experiment_id, experiment.model_dump(mode="json"), now
        )
        await sites.catalog_changed(conn, site_id)
    return row


def experiment_resource(
    row: Mapping[str, Any], results: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "object": "experiment",
        "name": row["name"],
        "status": row["status"],
        "arms": row["arms"],
        "created_at": int(row["created_at"].timestamp()),
        "updated_at": int(row["updated_at"].timestamp()),
    }
    if results is not None:
        out["results"] = results
    return out


# What the admin API and the command line read of the catalog.


async def get_offer(conn: Conn, site_id: str, offer_id: str) -> DictRow | None:
    return await store.get_offer(conn, site_id, offer_id)


async def list_offers(conn: Conn, site_id: str, status: str | None) -> list[DictRow]:
    return await store.list_offers(conn, site_id, status)


async def versions(conn: Conn, site_id: str, offer_id: str) -> list[DictRow]:
    return await store.versions(conn, site_id, offer_id)


async def existing_offers(conn: Conn, site_id: str, offer_ids: list[str]) -> set[str]:
    return await store.existing_offers(conn, site_id, offer_ids)


async def get_experiment(conn: Conn, site_id: str, experiment_id: str) -> DictRow | None:
    return await store.get_experiment(conn, site_id, experiment_id)


async def list_experiments(conn: Conn, site_id: str) -> list[DictRow]:
    return await store.list_experiments(conn, site_id)


async def experiment_detail(conn: Conn, site_id: str, experiment_id: str) -> dict[str, Any] | None:
    """The experiment with, per arm, how many were served and what they did."""
    row = await store.get_experiment(conn, site_id, experiment_id)
    if row is None:
        return None
    results = await store.experiment_results(conn, site_id, experiment_id)
    return experiment_resource(row, results)
