"""``GET /admin/v1/sites/{site}/reports/{kind}``: a report as JSON, or CSV (``Accept: text/csv``
or a ``.csv`` suffix)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.edge.deps import Admin, AdminSite, Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.wire import JSONResponse
from offerd.reporting import query, service, views

admin = APIRouter(prefix="/admin/v1/sites/{site}", tags=["admin: reports"], dependencies=[Admin])


@admin.get(
    "/reports/{kind}",
    summary="A report (funnel) per period and dimension, from the rollups; "
    "?from=&to= (Unix seconds), granularity=day|week|month|all, "
    "group_by=offer,option,arm,processing_type,business_entity,brand; "
    "CSV with Accept: text/csv or a .csv suffix",
    responses=error_responses(400, 401, 404),
)
async def get_report(kind: str, request: Request, site: AdminSite, svc: Svc) -> Response:
    as_csv = kind.endswith(".csv") or "text/csv" in request.headers.get("accept", "")
    kind = kind.removesuffix(".csv")
    params = request.query_params
    q = query.parse(
        start=params.get("from"),
        end=params.get("to"),
        granularity=params.get("granularity"),
        group_by=params.get("group_by"),
    )
    async with svc.db.connection() as conn:
        rows = await service.report(conn, site, kind, q)
    if as_csv:
        return Response(
            views.report_csv(rows, views.columns(kind, q)),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{kind}.csv"'},
        )
    return JSONResponse(views.report_body(kind, q, rows))
