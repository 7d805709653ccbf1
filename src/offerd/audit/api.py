"""``GET /admin/v1/sites/{site}/audit_log``: who changed what on a site, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from offerd.audit import service
from offerd.edge.deps import Admin, AdminSite, Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.paging import numeric_cursor, page
from offerd.edge.wire import JSONResponse

admin = APIRouter(prefix="/admin/v1/sites/{site}", tags=["admin: audit log"], dependencies=[Admin])


@admin.get(
    "/audit_log",
    summary="Every change a person made to the site (console users and the admin token), "
    "newest first, with the state before and after; pass next_cursor as cursor for more",
    responses=error_responses(400, 401, 404),
)
async def audit_log(
    site: AdminSite,
    svc: Svc,
    target: Annotated[str | None, Query(max_length=120, description="e.g. offer:winback")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.entries(
            conn, site.id, target=target, before_id=numeric_cursor(cursor), limit=limit + 1
        )
    return JSONResponse(
        page(
            "audit_log",
            rows,
            limit=limit,
            render=service.entry_resource,
            cursor_of=lambda r: r["id"],
        )
    )
