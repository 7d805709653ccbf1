"""``POST /api/v2/offer_events`` and the admin event log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from offerd.db import Conn, transaction
from offerd.edge.deps import Admin, AdminSite, PublicPost, Svc
from offerd.edge.endpoint import body_docs, error_responses, read_params, run_post
from offerd.edge.paging import numeric_cursor, page
from offerd.edge.params import Params, Required50
from offerd.edge.wire import JSONResponse
from offerd.events import reports, service


class OfferEventsParams(Params):
    personalized_offer_id: Required50
    type: Literal["viewed", "dismissed"]


public = APIRouter(tags=["offer_events"])


@public.post(
    "/api/v2/offer_events",
    summary="Report that an offer was viewed or dismissed",
    responses={
        200: {
            "description": "Recorded (the body is {}); 204 with no body when the site's "
            "offer_events_no_content setting is on"
        },
        204: {"description": "Recorded (offer_events_no_content)"},
        **error_responses(400, 401, 404, 405, 413, 422, 429, 500, 503),
    },
    openapi_extra=body_docs(OfferEventsParams),
)
async def offer_events(request: Request, call: PublicPost) -> Response:
    svc, caller, meta = call.svc, call.caller, call.meta
    params, data = await read_params(request, OfferEventsParams)
    site = caller.site

    async def work(conn: Conn) -> Response:
        async with transaction(conn):
            await reports.report(
                conn,
                site_id=site.id,
                personalized_offer_id=params.personalized_offer_id,
                type=params.type,
                meta=meta,
                now=svc.clock.now(),
            )
        if site.settings.offer_events_no_content:
            return Response(status_code=204)
        return JSONResponse({})

    return await run_post(svc, request, caller, meta, data, work)


admin = APIRouter(prefix="/admin/v1/sites/{site}", tags=["admin: events"], dependencies=[Admin])


@admin.get(
    "/offer_events",
    summary="The offer event log, newest first; pass next_cursor as cursor for the next page",
    responses=error_responses(400, 401, 404),
)
async def list_offer_events(
    site: AdminSite,
    svc: Svc,
    personalized_offer_id: Annotated[str | None, Query(max_length=50)] = None,
    type: Annotated[
        Literal["viewed", "dismissed", "accepted", "fulfilled", "failed"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_events(
            conn,
            site.id,
            personalized_offer_id=personalized_offer_id,
            type=type,
            before=numeric_cursor(cursor),
            limit=limit + 1,
        )
    body = page(
        "offer_events",
        rows,
        limit=limit,
        render=service.event_resource,
        cursor_of=lambda r: r["seq"],
    )
    return JSONResponse(body)
