"""Admin API: a site's billing provider (``ledger``, ``stripe`` or ``chargebee``). Credentials go
in and never come out: the resource shows a hint of the key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.billing import providers
from offerd.billing.mirror import sync
from offerd.billing.provider_models import ProviderIn
from offerd.common.secrets import box_for
from offerd.db import transaction
from offerd.edge.deps import Admin, AdminSite, Services, Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.errors import InvalidRequest
from offerd.edge.wire import JSONResponse, decode_body, validation_error

router = APIRouter(
    prefix="/admin/v1/sites/{site}", tags=["admin: billing provider"], dependencies=[Admin]
)

_PROVIDER: TypeAdapter[ProviderIn] = TypeAdapter(ProviderIn)


@router.put(
    "/billing_provider",
    summary="Point the site at its billing provider (the built-in ledger, Stripe or Chargebee)",
    responses=error_responses(400, 401, 404),
)
async def put_billing_provider(site: AdminSite, request: Request, svc: Svc) -> Response:
    data = decode_body(request.headers.get("content-type"), await request.body())
    try:
        provider = _PROVIDER.validate_python(data)
    except ValidationError as exc:
        raise validation_error(exc, data) from None
    providers.check_destination(provider, allow_private=svc.settings.allow_private_destinations)
    box = box_for(svc.settings)
    async with svc.db.connection() as conn:
        async with transaction(conn):
            before = providers.resource(await providers.get(conn, site.id), box)
            row = await providers.save(conn, site.id, provider, now=svc.clock.now(), box=box)
            resource = providers.resource(row, box)
            await audit.record(
                conn,
                at=svc.clock.now(),
                actor=audit.ADMIN_API,
                site_id=site.id,
                action="billing_provider.save",
                target="billing_provider",
                before=before,
                after=resource,
            )
        resource["sync"] = await sync.state(conn, site.id)
    svc.billing.forget(site.id)  # this process uses it at once; the others within their ttl
    return JSONResponse(resource, status_code=201 if row["created"] else 200)


@router.get(
    "/billing_provider",
    summary="The site's billing provider: type, health, a hint of its key, and the mirror's sync",
    responses=error_responses(401, 404),
)
async def get_billing_provider(site: AdminSite, svc: Svc) -> Response:
    return JSONResponse(await provider_status(svc, site.id))


async def provider_status(svc: Services, site_id: str) -> dict[str, Any]:
    """The provider as the admin API and the console show it: type, health, key hint, sync."""
    async with svc.db.connection() as conn:
        row = await providers.get(conn, site_id)
        resource = providers.resource(row, box_for(svc.settings))
        resource["sync"] = await sync.state(conn, site_id)
    return resource


@router.post(
    "/billing_provider/sync",
    summary="Import the provider's customers, subscriptions, prices and coupons into the mirror",
    responses=error_responses(400, 401, 404),
    status_code=202,
)
async def sync_billing_provider(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        row = await providers.get(conn, site.id)
        if row is None or row["type"] == "ledger":
            raise InvalidRequest(
                "the site's billing provider is the built-in ledger: it is its own mirror, "
                "there is nothing to import"
            )
        async with transaction(conn):
            await sync.request(conn, site.id, now=svc.clock.now())
        resource = providers.resource(row, box_for(svc.settings))
        resource["sync"] = await sync.state(conn, site.id)
    return JSONResponse(resource, status_code=202)
