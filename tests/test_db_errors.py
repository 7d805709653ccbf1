"""A value PostgreSQL refuses on the admin API is a 400 naming the field (``edge.db_errors``),
whatever the models missed: real constraint violations on the real schema, raised by a route
added for the test, rendered by the app's own error handlers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request
from starlette.responses import Response

from offerd.edge.deps import Services
from offerd.edge.wire import JSONResponse
from tests.support.app import TestApp

COUPON = """
INSERT INTO coupons (site_id, id, name, discount_type, discount_percentage, discount_amount,
    currency, duration_type, duration_months, created_at, updated_at)
VALUES ('acme', %(id)s, 'x', %(type)s, %(pct)s, NULL, NULL, 'forever', NULL, now(), now())
"""
# each statement breaks one rule of the schema, the way a value a model let through would
STATEMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    # column check constraint coupons_discount_percentage_check
    "column_check": (COUPON, {"id": "c1", "type": "percentage", "pct": 0.001}),
    # table check constraint (discount_type = 'percentage') = (discount_percentage IS NOT NULL)
    "table_check": (COUPON, {"id": "c2", "type": "percentage", "pct": None}),
    # plans.name is NOT NULL
    "not_null": (
        "INSERT INTO plans (site_id, id, name, price, currency, period_unit, created_at,"
        " updated_at) VALUES ('acme', 'p', NULL, 1, 'USD', 'month', now(), now())",
        {},
    ),
    # FOREIGN KEY (site_id, plan_id) REFERENCES plans
    "foreign_key": (
        "INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status, coupon_ids,"
        " created_at, updated_at) VALUES ('acme', 's', 'cus_1', 'ghost', 'active', '{}',"
        " now(), now())",
        {},
    ),
    # numeric(5, 2) cannot hold 1000: a DataError with no column named
    "numeric_overflow": (COUPON, {"id": "c3", "type": "percentage", "pct": 1000}),
}


def install(app: TestApp) -> None:
    async def violate(what: str, request: Request) -> Response:
        services: Services = request.app.state.services
        sql, params = STATEMENTS[what]
        async with services.db.connection() as conn:
            await conn.execute(sql, params)  # type: ignore[arg-type]
        return JSONResponse({"stored": True})

    app.app.add_api_route("/admin/v1/test_violations/{what}", violate, methods=["POST"])
    app.app.add_api_route("/api/v2/test_violations/{what}", violate, methods=["POST"])


@pytest.mark.parametrize(
    ("what", "param", "words"),
    [
        ("column_check", "discount_percentage", "not an allowed value"),
        # a table constraint names the first of its columns
        ("table_check", "discount_type", "not an allowed value"),
        ("not_null", "name", "cannot be blank"),
        # site_id, in every key, is not a field
        ("foreign_key", "plan_id", "existing record"),
        # nothing names the column: still a 400, without a param
        ("numeric_overflow", None, "cannot be stored"),
    ],
)
async def test_a_constraint_violation_is_a_400_naming_the_field(
    app: TestApp, what: str, param: str | None, words: str
) -> None:
    await app.create_site()
    await app.put("acme", "customers/cus_1", {"email": "ada@example.com"})
    install(app)
    r = await app.client.post(f"/admin/v1/test_violations/{what}")
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "invalid_request"
    assert error.get("param") == param
    assert words in error["message"]
    if param is not None:
        assert error["api_error_code"] == "param_wrong_value"
        assert error["message"].startswith(f"{param} : ")


async def test_a_constraint_violation_on_the_public_api_stays_a_500(app: TestApp) -> None:
    """Public requests don't write columns from the client's values: a violation there is a
    bug in offerd, answered and logged as one."""
    await app.create_site()
    install(app)
    r = await app.client.post("/api/v2/test_violations/column_check")
    assert r.status_code == 500, r.text
    assert r.json()["api_error_code"] == "internal_error"
