"""How ledger records look in admin responses: timestamps as Unix seconds, ``object`` set."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from offerd.common.clock import unix


def _times(row: Mapping[str, Any], *keys: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for key in keys:
        value = row.get(key)
        out[key] = unix(value) if isinstance(value, datetime) else None
    return out


def plan_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "plan",
        "name": row["name"],
        "price": row["price"],
        "currency": row["currency"],
        "period_unit": row["period_unit"],
        **_times(row, "created_at", "updated_at"),
    }


def coupon_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    pct = row["discount_percentage"]
    return {
        "id": row["id"],
        "object": "coupon",
        "name": row["name"],
        "discount_type": row["discount_type"],
        "discount_percentage": float(pct) if pct is not None else None,
        "discount_amount": row["discount_amount"],
        "currency": row["currency"],
        "duration_type": row["duration_type"],
        "duration_months": row["duration_months"],
        **_times(row, "created_at", "updated_at"),
    }


def customer_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "customer",
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "business_entity_id": row["business_entity_id"],
        **_times(row, "created_at", "updated_at"),
    }


def subscription_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "subscription",
        "customer_id": row["customer_id"],
        "plan_id": row["plan_id"],
        "quantity": row["quantity"],
        "status": row["status"],
        "coupon_ids": list(row["coupon_ids"]),
        "business_entity_id": row["business_entity_id"],
        "brand_id": row.get("brand_id"),
        "version": row["version"],
        **_times(
            row,
            "trial_end",
            "current_term_start",
            "current_term_end",
            "pause_until",
            "cancel_at",
            "cancelled_at",
            "created_at",
            "updated_at",
        ),
    }
