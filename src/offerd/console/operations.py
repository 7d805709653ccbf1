"""The console's fulfilments (search, detail with its event timeline, expire) and deliveries
(filter, detail with every attempt, replay): the admin API's views, as pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.console.web import page, posted, redirect, render
from offerd.edge.errors import APIError
from offerd.fulfillments import admin as fulfillments
from offerd.fulfillments.api import expire_as
from offerd.notifications import service as notifications
from offerd.notifications.api import retry_as

router = APIRouter(prefix="/console/sites/{site_id}", include_in_schema=False)

PAGE = 25
STATUSES = ("in_progress", "completed", "failed")
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "skipped")
CHANNELS = ("webhook", "slack", "email", "segment")


def _param(request: Request, name: str, limit: int = 100) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value[:limit] or None


def _date(request: Request, name: str, errors: dict[str, str], *, end: bool = False) -> int | None:
    raw = _param(request, name, 10)
    if raw is None:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors[name] = "is not a date (YYYY-MM-DD)"
        return None
    return int(day.timestamp()) + (86400 if end else 0)


def _paged(
    rows: Sequence[Any], filters: dict[str, str | None], render_row: Callable[[Any], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """A page of ``PAGE`` rows (the store read one more), and the query of the next page (the
    same filters, from after the last row) when there is one."""
    shown = [render_row(r) for r in rows[:PAGE]]
    if len(rows) <= PAGE:
        return shown, None
    following = {k: v for k, v in filters.items() if v}
    return shown, {**following, "cursor": shown[-1]["id"]}


@router.get("/fulfillments")
async def fulfillment_list(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    errors: dict[str, str] = {}
    status = _param(request, "status")
    filters = {
        "status": status if status in STATUSES else None,
        "customer_id": _param(request, "customer_id"),
        "subscription_id": _param(request, "subscription_id"),
        "offer_id": _param(request, "offer_id", 50),
        "from": _param(request, "from", 10),
        "to": _param(request, "to", 10),
    }
    cursor = _param(request, "cursor", 50)
    async with p.svc.db.connection() as conn:
        rows = await fulfillments.search(
            conn,
            site.id,
            status=filters["status"],
            customer_id=filters["customer_id"],
            subscription_id=filters["subscription_id"],
            offer_id=filters["offer_id"],
            created_after=_date(request, "from", errors),
            created_before=_date(request, "to", errors, end=True),
            before=cursor,
            limit=PAGE + 1,
        )
    shown, next_query = _paged(rows, filters, fulfillments.admin_resource)
    return render(
        p,
        request,
        "fulfillments.html",
        nav="fulfillments",
        rows=shown,
        filters=filters,
        statuses=STATUSES,
        errors=errors,
        next_query=next_query,
    )


@router.get("/fulfillments/{fulfillment_id}")
async def fulfillment_page(site_id: str, fulfillment_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    async with p.svc.db.connection() as conn:
        detail = await fulfillments.detail(conn, site.id, fulfillment_id)
    return render(
        p,
        request,
        "fulfillment.html",
        nav="fulfillments",
        f=detail,
        timeline=_timeline(detail),
        flash=_flash(request),
    )


def _timeline(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The fulfillment's story in time order: its creation, events, end, and deliveries."""
    items: list[dict[str, Any]] = [
        {"at": detail["created_at"], "what": "created", "detail": detail["processing_type"]}
    ]
    for e in detail["events"]:
        items.append({"at": e["occurred_at"], "what": f"event: {e['type']}", "detail": e["id"]})
    for d in detail["deliveries"]:
        items.append(
            {
                "at": d["created_at"],
                "what": f"{d['purpose']} {d['channel']} delivery: {d['status']}",
                "detail": d["id"],
                "delivery": d["id"],
            }
        )
    if detail.get("completed_at"):
        items.append({"at": detail["completed_at"], "what": "completed", "detail": ""})
    if detail.get("failed_at"):
        error = detail.get("error") or {}
        items.append(
            {
                "at": detail["failed_at"],
                "what": "failed",
                "detail": f"{error.get('code')}: {error.get('message')}",
            }
        )
    items.sort(key=lambda i: (i["at"], i["what"] != "created"))
    return items


def _flash(request: Request) -> str | None:
    messages = {
        "expired": "The fulfilment was expired.",
        "replayed": "The delivery was queued to be sent again.",
    }
    return messages.get(request.query_params.get("done", ""))


@router.post("/fulfillments/{fulfillment_id}/expire")
async def expire(site_id: str, fulfillment_id: str, request: Request) -> Response:
    p, _ = await posted(request, site_id)
    p.require_editor()
    site = p.site
    await expire_as(p.svc, site.id, fulfillment_id, actor=p.actor)
    return redirect(f"/console/sites/{site.id}/fulfillments/{fulfillment_id}?done=expired", request)


@router.get("/deliveries")
async def delivery_list(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    status = _param(request, "status")
    channel = _param(request, "channel")
    filters = {
        "status": status if status in DELIVERY_STATUSES else None,
        "channel": channel if channel in CHANNELS else None,
        "fulfillment_id": _param(request, "fulfillment_id", 50),
    }
    cursor = _param(request, "cursor", 50)
    async with p.svc.db.connection() as conn:
        rows = await notifications.list_deliveries(
            conn,
            site.id,
            status=filters["status"],
            channel=filters["channel"],
            event_type=None,
            fulfillment_id=filters["fulfillment_id"],
            before=cursor,
            limit=PAGE + 1,
        )
    shown, next_query = _paged(rows, filters, notifications.delivery_resource)
    return render(
        p,
        request,
        "deliveries.html",
        nav="deliveries",
        rows=shown,
        filters=filters,
        statuses=DELIVERY_STATUSES,
        channels=CHANNELS,
        next_query=next_query,
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(site_id: str, delivery_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    async with p.svc.db.connection() as conn:
        detail = await notifications.delivery_detail(conn, site.id, delivery_id)
    return render(
        p,
        request,
        "delivery.html",
        nav="deliveries",
        d=detail,
        flash=_flash(request),
    )


@router.post("/deliveries/{delivery_id}/replay")
async def replay(site_id: str, delivery_id: str, request: Request) -> Response:
    p, _ = await posted(request, site_id)
    p.require_editor()
    site = p.site
    try:
        await retry_as(p.svc, site.id, delivery_id, actor=p.actor)
    except APIError as exc:
        async with p.svc.db.connection() as conn:
            detail = await notifications.delivery_detail(conn, site.id, delivery_id)
        return render(
            p,
            request,
            "delivery.html",
            status=exc.status,
            nav="deliveries",
            d=detail,
            flash=exc.message,
            flash_kind="bad",
        )
    return redirect(f"/console/sites/{site.id}/deliveries/{delivery_id}?done=replayed", request)
