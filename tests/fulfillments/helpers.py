"""What the fulfillment tests share: accepting an option, reading a fulfillment back through the
public API, its events, its processing delivery, and running the worker once."""

from __future__ import annotations

from typing import Any

from offerd.queue.runtime import build_worker
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer

PATH = "/api/v2/offer_fulfillments"


async def accept_option(
    app: TestApp,
    keys: dict[str, str],
    option: str,
    *,
    headers: dict[str, str] | None = None,
    po: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accept ``option`` of ``po`` (a fresh personalized offer by default): (the personalized
    offer, the fulfillment of the 202)."""
    po = po or await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": option},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    fulfillment: dict[str, Any] = r.json()["offer_fulfillment"]
    return po, fulfillment


async def retrieve(app: TestApp, keys: dict[str, str], fulfillment_id: str) -> dict[str, Any]:
    r = await app.get(f"{PATH}/{fulfillment_id}", keys["full_access"])
    assert r.status_code == 200, r.text
    f: dict[str, Any] = r.json()["offer_fulfillment"]
    return f


async def fulfillment_status(app: TestApp, keys: dict[str, str], fulfillment_id: str) -> str:
    status: str = (await retrieve(app, keys, fulfillment_id))["status"]
    return status


async def event_types(app: TestApp, fulfillment_id: str) -> list[str]:
    rows = await app.fetch(
        "SELECT type FROM offer_events WHERE fulfillment_id = %s ORDER BY seq", fulfillment_id
    )
    return [r["type"] for r in rows]


async def delivery_of(app: TestApp, fulfillment_id: str) -> dict[str, Any]:
    """The one processing delivery of a webhook or email fulfillment."""
    (row,) = await app.fetch("SELECT * FROM deliveries WHERE fulfillment_id = %s", fulfillment_id)
    return row


async def work(app: TestApp) -> int:
    """Run every job due at the app clock's now; returns how many ran."""
    return await build_worker(app.services).run_once()
