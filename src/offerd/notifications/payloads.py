"""The Chargebee-style events offerd sends (spec §8, §11.18): ``object: "event"``, ``api_version:
"v2"``, ``event_type``, and the ``content`` the sender gives, already rendered."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def chargebee_event(
    *, event_id: str, event_type: str, occurred_at: datetime, content: dict[str, Any], source: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "occurred_at": int(occurred_at.timestamp()),
        "source": source,
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "content": content,
    }
