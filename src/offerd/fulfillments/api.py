"""``/api/v2/offer_fulfillments``: accept an option, poll it, report the merchant's outcome."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from psycopg.rows import DictRow
from pydantic import BaseModel
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.db import Conn, transaction
from offerd.edge.deps import (
    Admin,
    AdminSite,
    FullAccessGet,
    FullAccessPost,
    PublicPost,
    Services,
    Svc,
)
from offerd.edge.endpoint import body_docs, error_responses, read_params, run_post
from offerd.edge.errors import ParamMissing, ParamWrongValue
from offerd.edge.paging import page
from offerd.edge.params import Opt100, Params, Required50
from offerd.edge.wire import JSONResponse
from offerd.fulfillments import admin as admin_views
from offerd.fulfillments import service


class OfferFulfillmentsParams(Params):
    personalized_offer_id: Required50
    option_id: Required50


class OfferFulfillmentUpdateParams(Params):
    id: Required50
    status: Literal["completed", "failed"]
    failure_reason: Opt100 = None


class ErrorOut(BaseModel):
    code: str
    message: str


class OfferFulfillmentOut(BaseModel):
    id: str
    object: str = "offer_fulfillment"
    personalized_offer_id: str
    option_id: str
    processing_type: str
    status: str
    redirect_url: str | None = None
    created_at: int
    completed_at: int | None = None
    failed_at: int | None = None
    error: ErrorOut | None = None


class HostedPageOut(BaseModel):
    id: str
    object: str = "hosted_page"
    type: str
    url: str
    state: str
    layout: str
    embed: bool
    created_at: int
    expires_at: int
    content: dict[str, Any]


class AcceptedOut(BaseModel):
    offer_fulfillment: OfferFulfillmentOut
    hosted_page: HostedPageOut | None = None


class FulfillmentOut(BaseModel):
    offer_fulfillment: OfferFulfillmentOut


FulfillmentId = Annotated[str, Path(min_length=1, max_length=50)]

public = APIRouter(tags=["offer_fulfillments"])


def render_accepted(accepted: service.Accepted) -> Response:
    body = {"offer_fulfillment": service.resource(accepted.fulfillment), **accepted.extra}
    return JSONResponse(body, status_code=202)


@public.post(
    "/api/v2/offer_fulfillments",
    status_code=202,
    summary="Accept an offer option: records `accepted` and starts fulfilling it",
    response_model=AcceptedOut,
    responses=error_responses(400, 401, 404, 405, 409, 413, 422, 429, 500, 503),
    openapi_extra=body_docs(OfferFulfillmentsParams),
)
async def create_fulfillment(request: Request, call: PublicPost) -> Response:
    svc, caller, meta = call.svc, call.caller, call.meta
    params, data = await read_params(request, OfferFulfillmentsParams)

    async def work(conn: Conn) -> Response:
        accepted = await service.accept(
            conn,
            site=caller.site,
            personalized_offer_id=params.personalized_offer_id,
            option_id=params.option_id,
            meta=meta,
            now=svc.clock.now(),
            base_url=svc.settings.base_url,
        )
        return render_accepted(accepted)

    return await run_post(svc, request, caller, meta, data, work)


@public.get(
    "/api/v2/offer_fulfillments/{fulfillment_id}",
    summary="Poll a fulfillment's status",
    response_model=FulfillmentOut,
    responses=error_responses(401, 403, 404, 405, 429, 500, 503),
)
async def retrieve_fulfillment(fulfillment_id: FulfillmentId, call: FullAccessGet) -> Response:
    svc, caller, meta = call.svc, call.caller, call.meta
    async with svc.db.connection() as conn:
        row = await service.get(conn, site=caller.site, fulfillment_id=fulfillment_id, meta=meta)
    return JSONResponse({"offer_fulfillment": service.resource(row)})


@public.post(
    "/api/v2/offer_fulfillments/{fulfillment_id}",
    summary="Report the outcome of a url_redirect, webhook or email fulfillment",
    response_model=FulfillmentOut,
    responses=error_responses(400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503),
    openapi_extra=body_docs(OfferFulfillmentUpdateParams),
)
async def update_fulfillment(
    fulfillment_id: FulfillmentId,
    request: Request,
    call: FullAccessPost,
) -> Response:
    svc, caller, meta = call.svc, call.caller, call.meta
    params, data = await read_params(request, OfferFulfillmentUpdateParams)
    if params.id != fulfillment_id:
        raise ParamWrongValue("id", "must be the id in the path")
    if params.status == "failed" and not params.failure_reason:
        raise ParamMissing("failure_reason")

    async def work(conn: Conn) -> Response:
        row = await service.update_by_merchant(
            conn,
            site=caller.site,
            fulfillment_id=fulfillment_id,
            status=params.status,
            failure_reason=params.failure_reason,
            meta=meta,
            now=svc.clock.now(),
        )
        return JSONResponse({"offer_fulfillment": service.resource(row)})

    return await run_post(svc, request, caller, meta, data, work)


# --- the admin API: search, detail, expire -------------------------------------------------------

admin = APIRouter(
    prefix="/admin/v1/sites/{site}", tags=["admin: fulfillments"], dependencies=[Admin]
)


@admin.get(
    "/fulfillments",
    summary="Search fulfillments, newest first; pass next_cursor as cursor for the next page",
    responses=error_responses(400, 401, 404),
)
async def list_fulfillments(
    site: AdminSite,
    svc: Svc,
    status: Annotated[Literal["in_progress", "completed", "failed"] | None, Query()] = None,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
    subscription_id: Annotated[str | None, Query(max_length=100)] = None,
    offer_id: Annotated[str | None, Query(max_length=50)] = None,
    created_after: Annotated[int | None, Query(ge=0, le=253402300799)] = None,
    created_before: Annotated[int | None, Query(ge=0, le=253402300799)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await admin_views.search(
            conn,
            site.id,
            status=status,
            customer_id=customer_id,
            subscription_id=subscription_id,
            offer_id=offer_id,
            created_after=created_after,
            created_before=created_before,
            before=cursor,
            limit=limit + 1,
        )
    body = page(
        "fulfillments",
        rows,
        limit=limit,
        render=admin_views.admin_resource,
        cursor_of=lambda r: r["id"],
    )
    return JSONResponse(body)


@admin.get(
    "/fulfillments/{fulfillment_id}",
    summary="A fulfillment with its events, its jobs and its deliveries",
    responses=error_responses(401, 404),
)
async def get_fulfillment(fulfillment_id: str, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        return JSONResponse(await admin_views.detail(conn, site.id, fulfillment_id))


@admin.post(
    "/fulfillments/{fulfillment_id}/expire",
    summary="End a stuck fulfillment as fulfillment_expired (events and notifications as usual)",
    responses=error_responses(401, 404, 409),
)
async def expire_fulfillment(fulfillment_id: str, site: AdminSite, svc: Svc) -> Response:
    row = await expire_as(svc, site.id, fulfillment_id, actor=audit.ADMIN_API)
    return JSONResponse(admin_views.admin_resource(row))


async def expire_as(svc: Services, site_id: str, fulfillment_id: str, *, actor: str) -> DictRow:
    """Expire a stuck fulfillment (the admin API and the console), audited with it."""
    async with svc.db.connection() as conn, transaction(conn):
        before = await admin_views.detail_row(conn, site_id, fulfillment_id)
        row = await admin_views.expire(conn, site_id, fulfillment_id, now=svc.clock.now())
        if before is not None and before["status"] != row["status"]:
            await audit.record(
                conn,
                at=svc.clock.now(),
                actor=actor,
                site_id=site_id,
                action="fulfillment.expire",
                target=f"fulfillment:{fulfillment_id}",
                before=admin_views.admin_resource(before),
                after=admin_views.admin_resource(row),
            )
    return row
