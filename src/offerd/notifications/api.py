"""Admin API: notification channels, and the delivery log with replay."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from psycopg.rows import DictRow
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.common import addresses
from offerd.common.secrets import box_for
from offerd.db import transaction
from offerd.edge.deps import Admin, AdminSite, Services, Svc
from offerd.edge.endpoint import error_responses
from offerd.edge.errors import NotFound, ParamWrongValue
from offerd.edge.paging import page
from offerd.edge.wire import JSONResponse, decode_body, validation_error
from offerd.notifications import service
from offerd.notifications.models import ChannelIn, destination

router = APIRouter(
    prefix="/admin/v1/sites/{site}", tags=["admin: notifications"], dependencies=[Admin]
)

ChannelId = Annotated[str, Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")]
_CHANNEL: TypeAdapter[ChannelIn] = TypeAdapter(ChannelIn)
DeliveryEventType = Literal[
    "offer_fulfillment_completed",
    "offer_fulfillment_failed",
    "offer_accepted",
    "offer_viewed",
    "offer_dismissed",
    "offer_fulfillment_requested",
]


@router.put(
    "/notification_channels/{channel_id}",
    summary="Create or replace a channel (re-enables it); a generated webhook secret is shown once",
    responses=error_responses(400, 401, 404),
)
async def put_channel(
    channel_id: ChannelId, site: AdminSite, request: Request, svc: Svc
) -> Response:
    data = decode_body(request.headers.get("content-type"), await request.body(), forms=False)
    try:
        channel = _CHANNEL.validate_python(data)
    except ValidationError as exc:
        raise validation_error(exc, data) from None
    target = destination(channel)
    if target is not None and not svc.settings.allow_private_destinations:
        reason = addresses.refused_literal(target[1])
        if reason is not None:
            raise ParamWrongValue(target[0], reason)
    box = box_for(svc.settings)
    async with svc.db.connection() as conn, transaction(conn):
        before = await service.get_channel(conn, site.id, channel_id)
        row, secret = await service.save_channel(
            conn,
            site_id=site.id,
            channel_id=channel_id,
            channel=channel,
            now=svc.clock.now(),
            box=box,
        )
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=audit.ADMIN_API,
            site_id=site.id,
            action="channel.save",
            target=f"channel:{channel_id}",
            before=None if before is None else service.channel_resource(before, box),
            after=service.channel_resource(row, box),
        )
    body = service.channel_resource(row, box)
    if secret is not None:
        body["secret"] = secret
    return JSONResponse(body, status_code=201 if row["created"] else 200)


@router.get("/notification_channels", responses=error_responses(401, 404))
async def list_channels(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_channels(conn, site.id)
    box = box_for(svc.settings)
    return JSONResponse({"notification_channels": [service.channel_resource(r, box) for r in rows]})


@router.get("/notification_channels/{channel_id}", responses=error_responses(401, 404))
async def get_channel(channel_id: ChannelId, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        row = await service.get_channel(conn, site.id, channel_id)
    if row is None:
        raise NotFound(f"Notification channel {channel_id!r} not found")
    return JSONResponse(service.channel_resource(row, box_for(svc.settings)))


@router.delete("/notification_channels/{channel_id}", responses=error_responses(401, 404))
async def delete_channel(channel_id: ChannelId, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn, transaction(conn):
        before = await service.get_channel(conn, site.id, channel_id)
        if before is None or not await service.delete_channel(conn, site.id, channel_id):
            raise NotFound(f"Notification channel {channel_id!r} not found")
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=audit.ADMIN_API,
            site_id=site.id,
            action="channel.delete",
            target=f"channel:{channel_id}",
            before=service.channel_resource(before, box_for(svc.settings)),
        )
    return JSONResponse({"id": channel_id, "object": "notification_channel", "deleted": True})


@router.get(
    "/deliveries",
    summary="The delivery log, newest first; pass next_cursor as cursor for the next page",
    responses=error_responses(400, 401, 404),
)
async def list_deliveries(
    site: AdminSite,
    svc: Svc,
    status: Annotated[Literal["pending", "succeeded", "failed", "skipped"] | None, Query()] = None,
    channel: Annotated[Literal["webhook", "slack", "email", "segment"] | None, Query()] = None,
    event_type: Annotated[DeliveryEventType | None, Query()] = None,
    fulfillment_id: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_deliveries(
            conn,
            site.id,
            status=status,
            channel=channel,
            event_type=event_type,
            fulfillment_id=fulfillment_id,
            before=cursor,
            limit=limit + 1,
        )
    body = page(
        "deliveries",
        rows,
        limit=limit,
        render=service.delivery_resource,
        cursor_of=lambda r: r["id"],
    )
    return JSONResponse(body)


@router.get("/deliveries/{delivery_id}", summary="A delivery with its payload and every attempt")
async def get_delivery(delivery_id: str, site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        return JSONResponse(await service.delivery_detail(conn, site.id, delivery_id))


@router.post(
    "/deliveries/{delivery_id}/retry",
    summary="Send a delivery again",
    responses=error_responses(401, 404, 409),
)
async def retry_delivery(delivery_id: str, site: AdminSite, svc: Svc) -> Response:
    row = await retry_as(svc, site.id, delivery_id, actor=audit.ADMIN_API)
    return JSONResponse(service.delivery_resource(row))


async def retry_as(svc: Services, site_id: str, delivery_id: str, *, actor: str) -> DictRow:
    """Send a delivery again (the admin API and the console's replay), audited with it."""
    async with svc.db.connection() as conn, transaction(conn):
        row = await service.retry(conn, site_id, delivery_id, now=svc.clock.now())
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=actor,
            site_id=site_id,
            action="delivery.retry",
            target=f"delivery:{delivery_id}",
            after=service.delivery_resource(row),
        )
    return row


@router.post(
    "/notification_channels/{channel_id}/test",
    status_code=201,
    summary="Send the channel a sample offer_accepted event now (a delivery of purpose test, "
    "in the delivery log like any other)",
    responses=error_responses(401, 404),
)
async def test_channel(channel_id: ChannelId, site: AdminSite, svc: Svc) -> Response:
    row = await test_send_as(svc, site.id, channel_id, actor=audit.ADMIN_API)
    return JSONResponse(service.delivery_resource(row), status_code=201)


async def test_send_as(svc: Services, site_id: str, channel_id: str, *, actor: str) -> DictRow:
    async with svc.db.connection() as conn, transaction(conn):
        row = await service.test_send(conn, site_id, channel_id, now=svc.clock.now())
        await audit.record(
            conn,
            at=svc.clock.now(),
            actor=actor,
            site_id=site_id,
            action="channel.test_send",
            target=f"channel:{channel_id}",
            after=service.delivery_resource(row),
        )
    return row
