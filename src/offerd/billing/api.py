"""Admin API for the built-in billing ledger: plans, coupons, customers, subscriptions."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from offerd.billing import ledger, store
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
        row = await store.upsert(
            conn,
            store.UPSERT_PLAN,
            {"site": site.id, "id": plan_id, "now": svc.clock.now(), **plan.model_dump()},
        )
    return _saved(plan_resource(row), row)


@router.put(
    "/coupons/{coupon_id}",
    openapi_extra=body_docs(CouponIn),
    responses=error_responses(400, 401, 404),
)
async def put_coupon(coupon_id: RecordId, site: AdminSite, request: Request, svc: Svc) -> Response:
    coupon, _ = await read_params(request, CouponIn)
    async with svc.db.connection() as conn:
        row = await store.upsert(
            conn,
            store.UPSERT_COUPON,
            {"site": site.id, "id": coupon_id, "now": svc.clock.now(), **coupon.model_dump()},
        )
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
        row = await store.upsert(
            conn,
            store.UPSERT_CUSTOMER,
            {"site": site.id, "id": customer_id, "now": svc.clock.now(), **customer.model_dump()},
        )
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
        missing = await store.missing_coupons(conn, site.id, sub.coupon_ids)
        if missing:
            index = sub.coupon_ids.index(missing[0])
            raise NotFound(f"Coupon {missing[0]!r} not found", param=f"coupon_ids[{index}]")
        values = sub.model_dump()
        for key in (
            "trial_end",
            "current_term_start",
            "current_term_end",
            "pause_until",
            "cancel_at",
        ):
            values[key] = store.at(values[key])
        try:
            row = await store.upsert(
                conn,
                store.UPSERT_SUBSCRIPTION,
                {"site": site.id, "id": subscription_id, "now": svc.clock.now(), **values},
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            param = "customer_id" if "customer" in str(exc.diag.constraint_name) else "plan_id"
            raise NotFound(
                f"{param[:-3].capitalize()} {values[param]!r} not found", param=param
            ) from None
    return _saved(subscription_resource(row), row)


def _getter(table: str, render: Any, label: str) -> Any:
    async def get_record(record_id: RecordId, site: AdminSite, svc: Svc) -> Response:
        async with svc.db.connection() as conn:
            row = await store.get(conn, table, site.id, record_id)
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
        rows = await store.list_all(conn, "plans", site.id)
    return JSONResponse({"plans": [plan_resource(r) for r in rows]})


@router.get("/coupons", responses=error_responses(401, 404))
async def list_coupons(site: AdminSite, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        rows = await store.list_all(conn, "coupons", site.id)
    return JSONResponse({"coupons": [coupon_resource(r) for r in rows]})


@router.get("/subscriptions/{record_id}", responses=error_responses(401, 404))
async def get_subscription(record_id: RecordId, site: AdminSite, svc: Svc) -> Response:
    """The subscription with its coupons and the log of every change offers made to it."""
    async with svc.db.connection() as conn:
        row = await store.get(conn, "subscriptions", site.id, record_id)
        if row is None:
            raise NotFound(f"Subscription {record_id!r} not found")
        coupons = await store.coupons(conn, site.id, list(row["coupon_ids"]))
        changes = await ledger.history(conn, site.id, record_id)
    body = subscription_resource(row)
    body["coupons"] = [coupon_resource(c) for c in coupons]
    body["changes"] = changes
    return JSONResponse(body)
