"""``/api/v2/offer_fulfillments``: accept an option, poll it, report the merchant's outcome."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.responses import Response

from offerd.db import Conn
from offerd.edge.deps import FullAccessGet, FullAccessPost, PublicPost
from offerd.edge.endpoint import body_docs, error_responses, read_params, run_post
from offerd.edge.errors import ParamMissing, ParamWrongValue
from offerd.edge.params import Opt100, Params, Required50
from offerd.edge.wire import JSONResponse
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
