"""Posting events to a webhook endpoint the way Chargebee does: JSON, HTTP Basic credentials the
merchant configured, one request per event. Late, duplicated and reordered delivery is what
Chargebee documents, so a test can ask for it."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any, Literal

import httpx

Order = Literal["as_is", "reverse", "shuffle"]


def deliveries(
    events: Sequence[dict[str, Any]], *, duplicates: int = 0, order: Order = "as_is", seed: int = 0
) -> list[dict[str, Any]]:
    """The events in delivery order: each sent ``1 + duplicates`` times, reversed or shuffled."""
    sent = [event for event in events for _ in range(1 + duplicates)]
    if order == "reverse":
        sent.reverse()
    elif order == "shuffle":
        random.Random(seed).shuffle(sent)
    return sent


def post_events(
    url: str,
    events: Sequence[dict[str, Any]],
    username: str,
    password: str,
    *,
    duplicates: int = 0,
    order: Order = "as_is",
    seed: int = 0,
    timeout: float = 30.0,
) -> list[tuple[str, int]]:
    """POST each event to ``url``; returns ``(event id, HTTP status)`` per delivery, in order."""
    results: list[tuple[str, int]] = []
    with httpx.Client(auth=(username, password), timeout=timeout) as client:
        for event in deliveries(events, duplicates=duplicates, order=order, seed=seed):
            response = client.post(
                url,
                content=json.dumps(event),
                headers={"content-type": "application/json", "user-agent": "ChargeBee"},
            )
            results.append((event["id"], response.status_code))
    return results
