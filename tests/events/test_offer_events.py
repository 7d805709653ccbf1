"""POST /api/v2/offer_events and the admin event log."""

from __future__ import annotations

import pytest

from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed

PATH = "/api/v2/offer_events"


@pytest.mark.parametrize("event_type", ["viewed", "dismissed"])
async def test_event_is_recorded_with_origin(app: TestApp, event_type: str) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "type": event_type},
        headers={
            "chargebee-request-origin-ip": "2001:db8::1",
            "chargebee-request-origin-user": "ada@example.com",
        },
    )
    # 200 with {} by default: the official Python SDK (through 3.29) cannot parse 204
    assert r.status_code == 200
    assert r.json() == {}
    (event,) = await app.fetch("SELECT * FROM offer_events")
    assert event["type"] == event_type
    assert event["offer_id"] == "stay"
    assert event["customer_id"] == "cus_1"
    assert event["subscription_id"] == "sub_1"
    assert event["origin"] == {"ip": "2001:db8::1", "user": "ada@example.com", "device": None}


async def test_204_is_a_site_setting(app: TestApp) -> None:
    keys = await seed(app, offer_events_no_content=True)
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "type": "viewed"}
    )
    assert r.status_code == 204
    assert r.content == b""


async def test_duplicates_are_all_recorded(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    for _ in range(3):
        await app.post(
            PATH, keys["publishable"], data={"personalized_offer_id": po["id"], "type": "viewed"}
        )
    assert len(await app.fetch("SELECT 1 FROM offer_events WHERE type = 'viewed'")) == 3


async def test_unknown_personalized_offer(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(
        PATH, keys["publishable"], json={"personalized_offer_id": "po_nope", "type": "viewed"}
    )
    assert r.status_code == 404
    assert r.json()["param"] == "personalized_offer_id"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "viewed"}, "personalized_offer_id"),
        ({"personalized_offer_id": "po_x"}, "type"),
        # only the client-posted types
        ({"personalized_offer_id": "po_x", "type": "accepted"}, "type"),
        ({"personalized_offer_id": "x" * 51, "type": "viewed"}, "personalized_offer_id"),
    ],
)
async def test_param_errors(app: TestApp, body: dict[str, str], param: str) -> None:
    keys = await seed(app)
    r = await app.post(PATH, keys["publishable"], json=body)
    assert r.status_code == 400
    assert r.json()["param"] == param


async def test_admin_event_log_is_newest_first_and_paged(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    for event_type in ("viewed", "dismissed", "viewed"):
        await app.post(
            PATH, keys["publishable"], json={"personalized_offer_id": po["id"], "type": event_type}
        )
    r = await app.admin("GET", f"/sites/acme/offer_events?limit=2&personalized_offer_id={po['id']}")
    page = r.json()
    assert [e["type"] for e in page["offer_events"]] == ["viewed", "dismissed"]
    r = await app.admin("GET", f"/sites/acme/offer_events?limit=2&cursor={page['next_cursor']}")
    rest = r.json()
    assert [e["type"] for e in rest["offer_events"]] == ["viewed"]
    assert "next_cursor" not in rest
    r = await app.admin("GET", "/sites/acme/offer_events?type=dismissed")
    assert [e["type"] for e in r.json()["offer_events"]] == ["dismissed"]
    r = await app.admin("GET", "/sites/acme/offer_events?cursor=abc")
    assert r.status_code == 400
    assert r.json()["param"] == "cursor"
