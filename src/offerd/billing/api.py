"""Admin API for the built-in billing ledger: plans, coupons, customers, subscriptions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from offerd.billing import service
from offerd.billing.models import CouponIn, CustomerIn, PlanIn, SubscriptionIn
from offerd.billing.views import (
    coupon_resource,
    customer_resource,
    plan_resource,
    subscription_resource,
)
from offerd.edge.deps import Admin, AdminSite, Svc
from offerd.edge.endpoint import body_docs, error_responses, read_params
from offerd.edge.errors import NotFound
from offerd.edge.wire import JSONResponse

router = APIRouter(
    prefix="/admin/v1/sites/{site}", tags=["admin: billing ledger"], dependencies=[Admin]
)

RecordId = Annotated[str, Path(min_length=1, max_length=50)]


def _saved(resource: dict[str, Any], row: dict[str, Any]) -> Response:
    return JSONResponse(resource, status_code=201 if row["created"] else 200)


@router.put(
    "/plans/{plan_id}", openapi_extra=body_docs(PlanIn), responses=error_responses(400, 401, 404)
)
async def put_plan(plan_id: RecordId, site: AdminSite, request: Request, svc: Svc) -> Response:
    plan, _ = await read_params(request, PlanIn)
    async with svc.db.connection() as conn:
        row = await service.save_plan(conn, site.id, plan_id, plan, svc.clock.now())
    return _saved(plan_resource(row), row)


@router.put(
    "/coupons/{coupon_id}",
    openapi_extra=body_docs(CouponIn),
    responses=error_responses(400, 401, 404),
)
async def put_coupon(coupon_id: RecordId, site: AdminSite, request: Request, svc: Svc) -> Response:
    coupon, _ = await read_params(request, CouponIn)
    async with svc.db.connection() as conn:
        row = await service.save_coupon(conn, site.id, coupon_id, coupon, svc.clock.now())
    return _saved(coupon_resource(row), row)


@router.put(
    "/customers/{customer_id}",
    openapi_extra=body_docs(CustomerIn),
    responses=error_responses(400, 401, 404),
)
async def put_customer(
    customer_id: RecordId, site: AdminSite, request: Request, svc: Svc
) -> Response:
    customer, _ = await read_params(request, CustomerIn)
    async with svc.db.connection() as conn:
        row = await service.save_customer(conn, site.id, customer_id, customer, svc.clock.now())
    return _saved(customer_resource(row), row)


@router.put(
    "/subscriptions/{subscription_id}",
    openapi_extra=body_docs(SubscriptionIn),
    responses=error_responses(400, 401, 404),
)
async def put_subscription(
    subscription_id: RecordId, site: AdminSite, request: Request, svc: Svc
) -> Response:
    sub, _ = await read_params(request, SubscriptionIn)
    async with svc.db.connection() as conn:
        row = await service.save_subscription(conn, site.id, subscription_id, sub, svc.clock.now())
    return _saved(subscription_resource(row), row)


def _getter(table: service.Table, render: Any, label: str) -> Any:
    async def get_record(record_id: RecordId, site: AdminSite, svc: Svc) -> Response:
        async with svc.db.connection() as conn:
            row = await service.get(conn, table, site.id, record_id)
        if row is None:
            raise NotFound(f"{label} {record_id!r} not found")
        return JSONResponse(render(row))

    return get_record


router.get("/plans/{record_id}", responses=error_responses(401, 404))(
    _getter("plans", plan_resource, "Plan")
)
router.get("/coupons/{record_id}", responses=error_responses(401, 404))(
    _getter("coupons", coupon_resource, "Coupon")
)
router.get("/customers/{record_id}", responses=error_responses(401, 404))(
    _getter("customers", customer_resource, "Customer")
)


@router.get("/plans", responses=error_responses(401, 404))
async def list_plans(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_all(conn, "plans", site.id)
    return JSONResponse({"plans": [plan_resource(r) for r in rows]})


@router.get("/coupons", responses=error_responses(401, 404))
async def list_coupons(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await service.list_all(conn, "coupons", site.id)
    return JSONResponse({"coupons": [coupon_resource(r) for r in rows]})


@router.get("/subscriptions/{record_id}", responses=error_responses(401, 404))
async def get_subscription(record_id: RecordId, site: AdminSite, svc: Svc) -> Response:
    """The subscription with its coupons and the log of every change offers made to it."""
    async with svc.db.connection() as conn:
        body = await service.subscription_detail(conn, site.id, record_id)
    if body is None:
        raise NotFound(f"Subscription {record_id!r} not found")
    return JSONResponse(body)
