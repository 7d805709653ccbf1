"""Admin API: the jobs that failed for good, and their retry. Jobs are the process's, not a
site's (one may carry a fulfillment or a delivery id of any site), so the list is not per site:
the admin token reaches every site anyway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from offerd.common.clock import unix
from offerd.edge.deps import Admin, Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.errors import InvalidState, NotFound
from offerd.edge.paging import numeric_cursor, page
from offerd.edge.wire import JSONResponse
from offerd.queue import jobs

router = APIRouter(prefix="/admin/v1/jobs", tags=["admin: jobs"], dependencies=[Admin])

JobId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def job_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "job",
        "kind": row["kind"],
        "status": row["status"],
        "payload": row["payload"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "run_at": unix(row["run_at"]),
        "failed_at": unix(row["failed_at"]),
        "created_at": unix(row["created_at"]),
    }


@router.get(
    "",
    summary="Jobs that failed for good, newest first; pass next_cursor as cursor for the next page",
    responses=error_responses(400, 401),
)
async def list_jobs(
    svc: Svc,
    status: Annotated[Literal["failed"], Query()] = "failed",  # noqa: ARG001 (the only one listed)
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await jobs.list_failed(conn, before=numeric_cursor(cursor), limit=limit + 1)
    body = page("jobs", rows, limit=limit, render=job_resource, cursor_of=lambda r: r["id"])
    return JSONResponse(body)


@router.get("/{job_id}", summary="A job still in the queue or kept as failed")
async def get_job(job_id: JobId, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        row = await jobs.get(conn, job_id)
    if row is None:
        raise NotFound(f"Job {job_id} not found (a job that succeeded leaves the queue)")
    return JSONResponse(job_resource(row))


@router.post(
    "/{job_id}/retry",
    summary="Queue a failed job again, its attempts reset",
    responses=error_responses(401, 404, 409),
)
async def retry_job(job_id: JobId, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        row = await jobs.retry(conn, job_id, now=svc.clock.now())
        if row is None:
            if await jobs.get(conn, job_id) is None:
                raise NotFound(f"Job {job_id} not found")
            raise InvalidState(f"Job {job_id} has not failed: it is still in the queue")
    return JSONResponse(job_resource(row))
