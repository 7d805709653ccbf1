"""The billing providers' webhooks: ``POST /webhooks/stripe/{site}`` and
``POST /webhooks/chargebee/{site}`` (register these URLs with the provider). No API key: each is
authenticated as its provider signs it (``billing.mirror.ingest``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.billing.mirror import ingest
from offerd.edge.deps import Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.wire import JSONResponse

router = APIRouter(prefix="/webhooks", tags=["billing provider webhooks"])


@router.post(
    "/stripe/{site}",
    summary="Stripe's events for a site: the mirror re-reads what they name",
    responses=error_responses(400, 404),
)
async def stripe_webhook(site: str, request: Request, svc: Svc) -> Response:
    queued = await ingest.stripe_event(
        svc, site, await request.body(), request.headers.get("stripe-signature")
    )
    return JSONResponse({"received": True, "queued": queued})


@router.post(
    "/chargebee/{site}",
    summary="Chargebee Billing's events for a site: the mirror re-reads what they name",
    responses=error_responses(400, 401, 404),
)
async def chargebee_webhook(site: str, request: Request, svc: Svc) -> Response:
    queued = await ingest.chargebee_event(
        svc, site, await request.body(), request.headers.get("authorization")
    )
    return JSONResponse({"received": True, "queued": queued})
