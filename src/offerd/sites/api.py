"""Admin API for sites and their API keys (DESIGN.md §6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.common.ids import new_id
from offerd.common.secrets import box_for
from offerd.db import transaction
from offerd.edge.auth import hash_key, new_key
from offerd.edge.deps import Admin, AdminSite, Services, Svc
from offerd.edge.endpoint import body_docs, error_responses, read_params
from offerd.edge.errors import NotFound
from offerd.edge.paging import page
from offerd.edge.wire import JSONResponse
from offerd.sites import service
from offerd.sites.models import SITE_ID_PATTERN, SiteIn

router = APIRouter(prefix="/admin/v1/sites", tags=["admin: sites"], dependencies=[Admin])

SitePath = Annotated[str, Path(pattern=SITE_ID_PATTERN, description="lower-case DNS label")]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["full_access", "publishable"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]


def key_resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "api_key",
        "kind": row["kind"],
        "name": row["name"],
        "hint": "..." + row["key_hint"],
        "created_at": int(row["created_at"].timestamp()),
        "revoked_at": int(row["revoked_at"].timestamp()) if row["revoked_at"] else None,
    }


@router.put(
    "/{site}",
    summary="Create or update a site",
    openapi_extra=body_docs(SiteIn),
    responses=error_responses(400, 401),
)
async def put_site(site: SitePath, request: Request, svc: Svc) -> Response:
    body, _ = await read_params(request, SiteIn)
    resource, created = await store_site(svc, site, body, actor=audit.ADMIN_API)
    return JSONResponse(resource, status_code=201 if created else 200)


async def store_site(
    svc: Services, site_id: str, body: SiteIn, *, actor: str
) -> tuple[dict[str, Any], bool]:
    """Create or update a site, as the admin API and the console do, with its audit entry. A
    new site's processing-webhook secret is in the resource this once."""
    async with svc.db.connection() as conn, transaction(conn):
        before = await service.get(conn, site_id)
        saved, created = await service.save(conn, site_id, body, svc.clock.now())
        resource = saved.as_dict()
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=actor,
            site_id=site_id,
            action="site.save",
            target=f"site:{site_id}",
            before=None if before is None else before.as_dict(),
            after=resource,
        )
        if created:
            # The secret processing webhooks are signed with, shown this once.
            resource["webhook_secret"] = await service.ensure_webhook_secret(
                conn, site_id, box_for(svc.settings)
            )
    svc.catalog_changed()
    return resource, created


@router.post(
    "/{site}/webhook_secret",
    summary="Make a new signing secret for processing webhooks (shown in this response only)",
    responses=error_responses(401, 404),
)
async def rotate_webhook_secret(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        secret = await service.rotate_webhook_secret(conn, site.id, box_for(svc.settings))
    return JSONResponse({"webhook_secret": secret})


@router.get(
    "",
    summary="List sites, in id order; pass next_cursor as cursor for the next page",
    responses=error_responses(400, 401),
)
async def list_sites(
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=63)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_sites(conn, after=cursor, limit=limit + 1)
    return JSONResponse(
        page("sites", rows, limit=limit, render=lambda s: s.as_dict(), cursor_of=lambda s: s.id)
    )


@router.get("/{site}", summary="A site", responses=error_responses(401, 404))
async def get_site(site: AdminSite) -> Response:
    return JSONResponse(site.as_dict())


@router.post(
    "/{site}/api_keys",
    status_code=201,
    summary="Create an API key; the secret is in this response only",
    openapi_extra=body_docs(KeyIn),
    responses=error_responses(400, 401, 404),
)
async def create_key(site: AdminSite, request: Request, svc: Svc) -> Response:
    body, _ = await read_params(request, KeyIn)
    row, secret = await add_key(svc, site.id, body, actor=audit.ADMIN_API)
    return JSONResponse({**key_resource(row), "key": secret}, status_code=201)


async def add_key(
    svc: Services, site_id: str, body: KeyIn, *, actor: str
) -> tuple[dict[str, Any], str]:
    """A new API key's row and its secret (the only time it is seen), audited (not the
    secret: the audit log has the key as it is listed)."""
    secret = new_key(body.kind)
    async with svc.db.connection() as conn, transaction(conn):
        row = await service.add_key(
            conn,
            key_id=new_id("key"),
            site_id=site_id,
            kind=body.kind,
            name=body.name,
            key_hash=hash_key(secret),
            hint=secret[-4:],
            now=svc.clock.now(),
        )
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=actor,
            site_id=site_id,
            action="api_key.create",
            target=f"api_key:{row['id']}",
            after=key_resource(row),
        )
    return row, secret


@router.get("/{site}/api_keys", summary="List API keys (never their secrets)")
async def list_keys(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_keys(conn, site.id)
    return JSONResponse({"api_keys": [key_resource(r) for r in rows]})


@router.delete(
    "/{site}/api_keys/{key_id}",
    summary="Revoke an API key (every process stops accepting it within OFFERD_AUTH_CACHE_SECONDS)",
    responses=error_responses(401, 404),
)
async def revoke_key(site: AdminSite, key_id: str, svc: Svc) -> Response:
    row = await remove_key(svc, site.id, key_id, actor=audit.ADMIN_API)
    return JSONResponse(key_resource(row))


async def remove_key(svc: Services, site_id: str, key_id: str, *, actor: str) -> dict[str, Any]:
    """Revoke an API key (idempotent), audited when this call revoked it."""
    now = svc.clock.now()
    async with svc.db.connection() as conn, transaction(conn):
        row = await service.revoke_key(conn, site_id, key_id, now)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found", param="key_id")
        if row["revoked_at"] == now:
            await audit.record(
                conn,
                at=now,
                actor=actor,
                site_id=site_id,
                action="api_key.revoke",
                target=f"api_key:{key_id}",
                before={**key_resource(row), "revoked_at": None},
                after=key_resource(row),
            )
    svc.catalog_changed()
    return row
