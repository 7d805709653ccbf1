"""How a fulfillment looks on the wire (spec §4.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resource(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"],
        "object": "offer_fulfillment",
        "personalized_offer_id": row["personalized_offer_id"],
        "option_id": row["option_id"],
        "processing_type": row["processing_type"],
        "status": row["status"],
    }
    if row["redirect_url"]:
        out["redirect_url"] = row["redirect_url"]
    out["created_at"] = int(row["created_at"].timestamp())
    if row["completed_at"] is not None:
        out["completed_at"] = int(row["completed_at"].timestamp())
    if row["failed_at"] is not None:
        out["failed_at"] = int(row["failed_at"].timestamp())
        out["error"] = {"code": row["error_code"], "message": row["error_message"] or ""}
    return out
