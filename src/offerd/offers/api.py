"""``POST /api/v2/personalized_offers`` and the admin API for offers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from psycopg.rows import DictRow
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.common import addresses
from offerd.db import Conn, transaction
from offerd.edge.deps import Admin, AdminSite, PublicPost, Services, Svc
from offerd.edge.endpoint import body_docs, error_responses, read_params, run_post
from offerd.edge.errors import NotFound, ParamWrongValue
from offerd.edge.headers import Origin, RequestMeta, Suppression
from offerd.edge.params import (
    Blank,
    Email70,
    Opt50,
    Opt64,
    Opt150,
    Opt250,
    Opt255,
    Params,
    Required50,
)
from offerd.edge.wire import JSONResponse
from offerd.offers import budget, service
from offerd.offers.models import ExperimentIn, OfferIn, OfferStatus
from offerd.sites.models import Site


class RequestContext(Params):
    user_agent: Opt255 = None
    locale: Opt50 = None
    timezone: Opt64 = None
    url: Opt250 = None
    referrer_url: Opt250 = None


class PersonalizedOffersParams(Params):
    customer_id: Required50
    subscription_id: Opt50 = None
    first_name: Opt150 = None
    last_name: Opt150 = None
    email: Email70 = None
    roles: Annotated[
        Annotated[list[Annotated[str, StringConstraints(max_length=50)]], Field(max_length=100)]
        | None,
        Blank,
    ] = None
    external_user_id: Opt50 = None
    custom: Annotated[dict[str, Any] | None, Blank] = None
    request_context: RequestContext | None = None


class Content(BaseModel):
    title: str
    description: str


class OptionOut(BaseModel):
    id: str
    label: str
    processing_type: str
    processing_layout: str
    redirect_url: str | None = None


class PersonalizedOfferOut(BaseModel):
    id: str
    offer_id: str
    object: str = "personalized_offer"
    content: Content
    options: list[OptionOut]


class BrandOut(BaseModel):
    id: str
    name: str
    object: str = "brand"


class PersonalizedOffersOut(BaseModel):
    personalized_offers: list[PersonalizedOfferOut]
    brand: BrandOut | None = None
    expires_at: int


def ask_from(params: PersonalizedOffersParams) -> service.Ask:
    """The params as decisioning takes them; ``custom`` past its size limits is a 400 here,
    before any database or rule work (see budget.check_custom)."""
    try:
        extent = budget.check_custom(params.custom)
    except ValueError as exc:
        raise ParamWrongValue("custom", str(exc)) from None
    user = {
        "first_name": params.first_name,
        "last_name": params.last_name,
        "email": params.email,
        "roles": params.roles,
        "external_user_id": params.external_user_id,
    }
    return service.Ask(
        customer_id=params.customer_id,
        subscription_id=params.subscription_id,
        user={k: v for k, v in user.items() if v is not None},
        custom=params.custom,
        request_context=(
            params.request_context.model_dump(exclude_none=True) if params.request_context else {}
        ),
        custom_extent=extent,
    )


public = APIRouter(tags=["personalized_offers"])


@public.post(
    "/api/v2/personalized_offers",
    summary="The best offer for a subscriber right now",
    response_model=PersonalizedOffersOut,
    responses=error_responses(400, 401, 404, 405, 413, 422, 429, 500, 503),
    openapi_extra=body_docs(PersonalizedOffersParams, json_keys=("custom",)),
)
async def personalized_offers(request: Request, call: PublicPost) -> Response:
    svc, caller, meta = call.svc, call.caller, call.meta
    params, data = await read_params(request, PersonalizedOffersParams)
    ask = ask_from(params)

    async def work(conn: Conn) -> Response:
        decision = await service.personalize(
            conn,
            site=caller.site,
            catalog=svc.catalog,
            ask=ask,
            meta=meta,
            now=svc.clock.now(),
            fetch=svc.billing,
        )
        body: dict[str, Any] = {
            "personalized_offers": [decision.personalized_offer]
            if decision.personalized_offer
            else [],
            "expires_at": int(decision.expires_at.timestamp()),
        }
        if decision.brand is not None:
            body["brand"] = {**decision.brand.model_dump(), "object": "brand"}
        return JSONResponse(body)

    return await run_post(svc, request, caller, meta, data, work)


# --- admin ------------------------------------------------------------------------------------

admin = APIRouter(prefix="/admin/v1/sites/{site}", tags=["admin: offers"], dependencies=[Admin])


@admin.put(
    "/offers/{offer_id}",
    summary="Create or replace an offer (a changed definition is a new version)",
    openapi_extra=body_docs(OfferIn),
    responses=error_responses(400, 401, 404),
)
async def put_offer(
    offer_id: Annotated[str, StringConstraints(min_length=1, max_length=50)],
    site: AdminSite,
    request: Request,
    svc: Svc,
) -> Response:
    offer, _ = await read_params(request, OfferIn)
    row = await store_offer(svc, site, offer_id, offer, actor=audit.ADMIN_API)
    return JSONResponse(service.offer_resource(row), status_code=201 if row["created"] else 200)


async def store_offer(
    svc: Services, site: Site, offer_id: str, offer: OfferIn, *, actor: str
) -> DictRow:
    """Save an offer as the admin API and the console do: its destinations and billing
    references checked, the change in the audit log (with the definition before)."""
    if not svc.settings.allow_private_destinations:
        for index, option in enumerate(offer.options):
            reason = option.webhook_url and addresses.refused_literal(option.webhook_url)
            if reason:
                raise ParamWrongValue(f"options[{index}][webhook_url]", reason)
    async with svc.db.connection() as conn:
        await svc.billing.check_offer(
            conn, site.id, service.billing_actions(offer), service.billing_references(offer)
        )
        async with transaction(conn):  # the change and its audit entry, together
            before = await service.get_offer(conn, site.id, offer_id)
            row = await service.save_offer(
                conn,
                site_id=site.id,
                offer_id=offer_id,
                offer=offer,
                now=svc.clock.now(),
                site=site,
            )
            if before is None or before["definition"] != row["definition"]:
                await audit.record(
                    conn,
                    at=svc.clock.now(),
                    actor=actor,
                    site_id=site.id,
                    action="offer.save",
                    target=f"offer:{offer_id}",
                    before=None if before is None else before["definition"],
                    after=row["definition"],
                )
    svc.catalog_changed()
    return row


@admin.get("/offers", summary="List offers", responses=error_responses(401, 404))
async def list_offers(
    site: AdminSite, svc: Svc, status: Annotated[OfferStatus | None, Query()] = None
) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_offers(conn, site.id, status)
    return JSONResponse({"offers": [service.offer_resource(r) for r in rows]})


@admin.get("/offers/{offer_id}", summary="One offer", responses=error_responses(401, 404))
async def get_offer(offer_id: str, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        row = await service.get_offer(conn, site.id, offer_id)
    if row is None:
        raise NotFound(f"Offer {offer_id!r} not found", param="offer_id")
    return JSONResponse(service.offer_resource(row))


@admin.get(
    "/offers/{offer_id}/versions",
    summary="Every version of an offer, newest first",
    responses=error_responses(401, 404),
)
async def offer_versions(offer_id: str, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.versions(conn, site.id, offer_id)
    if not rows:
        raise NotFound(f"Offer {offer_id!r} not found", param="offer_id")
    return JSONResponse(
        {
            "versions": [
                {
                    "version": r["version"],
                    "created_at": int(r["created_at"].timestamp()),
                    "definition": r["definition"],
                }
                for r in rows
            ]
        }
    )


@admin.put(
    "/experiments/{experiment_id}",
    summary="Create or replace an experiment (weighted arms, at most one holdout)",
    openapi_extra=body_docs(ExperimentIn),
    responses=error_responses(400, 401, 404, 409),
)
async def put_experiment(
    experiment_id: Annotated[str, StringConstraints(min_length=1, max_length=50)],
    site: AdminSite,
    request: Request,
    svc: Svc,
) -> Response:
    experiment, _ = await read_params(request, ExperimentIn)
    async with svc.db.connection() as conn, transaction(conn):
        before = await service.get_experiment(conn, site.id, experiment_id)
        row = await service.save_experiment(
            conn,
            site_id=site.id,
            experiment_id=experiment_id,
            experiment=experiment,
            now=svc.clock.now(),
        )
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=audit.ADMIN_API,
            site_id=site.id,
            action="experiment.save",
            target=f"experiment:{experiment_id}",
            before=None if before is None else service.experiment_resource(before),
            after=service.experiment_resource(row),
        )
    svc.catalog_changed()
    return JSONResponse(
        service.experiment_resource(row), status_code=201 if row["created"] else 200
    )


@admin.get("/experiments", summary="List experiments", responses=error_responses(401, 404))
async def list_experiments(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_experiments(conn, site.id)
    return JSONResponse({"experiments": [service.experiment_resource(r) for r in rows]})


@admin.get(
    "/experiments/{experiment_id}",
    summary="An experiment with, per arm, how many were served and what they did",
    responses=error_responses(401, 404),
)
async def get_experiment(experiment_id: str, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        body = await service.experiment_detail(conn, site.id, experiment_id)
    if body is None:
        raise NotFound(f"Experiment {experiment_id!r} not found")
    return JSONResponse(body)


class ExplainParams(PersonalizedOffersParams):
    business_entity_id: Opt50 = None
    origin_device: Opt255 = None


@admin.post(
    "/decisions/explain",
    summary="What personalized_offers would answer, and why, for every offer; records nothing",
    openapi_extra=body_docs(ExplainParams, json_keys=("custom",)),
    responses=error_responses(400, 401, 404),
)
async def explain(site: AdminSite, request: Request, svc: Svc) -> Response:
    params, _ = await read_params(request, ExplainParams)
    meta = RequestMeta(
        origin=Origin(device=params.origin_device),
        suppression=Suppression(),
        business_entity_id=params.business_entity_id,
        idempotency_key=None,
    )
    async with svc.db.connection() as conn:
        body = await service.explain(
            conn,
            site=site,
            ask=ask_from(params),
            meta=meta,
            now=svc.clock.now(),
            fetch=svc.billing,
        )
    return JSONResponse(body)
