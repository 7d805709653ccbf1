"""The admin API's view of sites and fulfillments: list sites; search fulfillments (filters,
cursor paging newest first); one fulfillment with its events, jobs and deliveries; expire a
stuck one through the state machine (its failed event and notifications as the deadline sweep
does), idempotent, refused for one that ended otherwise."""

from __future__ import annotations

from typing import Any

from offerd.queue.runtime import build_worker
from tests.fulfillments.helpers import accept_option
from tests.support.app import TestApp
from tests.support.catalog import seed

BASE = "/sites/acme/fulfillments"


async def work(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


async def test_sites_are_listed_in_pages(app: TestApp) -> None:
    for name in ("c-site", "a-site", "b-site"):
        await app.create_site(name)
    first = (await app.admin("GET", "/sites?limit=2")).json()
    assert [s["id"] for s in first["sites"]] == ["a-site", "b-site"]
    rest = (await app.admin("GET", f"/sites?limit=2&cursor={first['next_cursor']}")).json()
    assert [s["id"] for s in rest["sites"]] == ["c-site"] and "next_cursor" not in rest
    no_token = await app.client.get("/admin/v1/sites")
    assert no_token.status_code == 401


async def accepted(app: TestApp, keys: dict[str, str], option: str) -> dict[str, Any]:
    _, f = await accept_option(app, keys, option)
    return f


async def test_search_filters_and_pages_newest_first(app: TestApp) -> None:
    keys = await seed(app)
    talk = [await accepted(app, keys, "talk") for _ in range(3)]  # url_redirect: in progress
    discount = await accepted(app, keys, "discount")  # billing_update
    await work(app)  # the discount completes

    everything = (await app.admin("GET", BASE)).json()["fulfillments"]
    assert [f["id"] for f in everything] == [discount["id"], *[t["id"] for t in reversed(talk)]]
    assert everything[0]["status"] == "completed" and everything[0]["customer_id"] == "cus_1"
    in_progress = (await app.admin("GET", f"{BASE}?status=in_progress")).json()["fulfillments"]
    assert {f["id"] for f in in_progress} == {t["id"] for t in talk}
    by_offer = (await app.admin("GET", f"{BASE}?offer_id=stay&subscription_id=sub_1")).json()
    assert len(by_offer["fulfillments"]) == 4
    assert (await app.admin("GET", f"{BASE}?customer_id=nobody")).json()["fulfillments"] == []
    created = everything[0]["created_at"]
    assert (
        len((await app.admin("GET", f"{BASE}?created_after={created + 1}")).json()["fulfillments"])
        == 0
    )

    seen, cursor = [], None
    while True:
        query = f"{BASE}?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = (await app.admin("GET", query)).json()
        seen += [f["id"] for f in body["fulfillments"]]
        if "next_cursor" not in body:
            break
        cursor = body["next_cursor"]
        await accepted(app, keys, "talk")  # a new one while paging does not disturb the pages
    assert seen == [f["id"] for f in everything]
    bad = await app.admin("GET", f"{BASE}?status=lost")
    assert bad.status_code == 400


async def test_one_fulfillment_with_its_events_jobs_and_deliveries(app: TestApp) -> None:
    keys = await seed(app)
    gift = await accepted(app, keys, "gift")  # webhook processing: a job asks the merchant
    body = (await app.admin("GET", f"{BASE}/{gift['id']}")).json()
    assert body["id"] == gift["id"] and body["status"] == "in_progress"
    assert [e["type"] for e in body["events"]] == ["accepted"]
    assert [j["kind"] for j in body["jobs"]] == ["fulfillment.webhook"]
    assert body["jobs"][0]["status"] == "queued"
    await work(app)  # the merchant is asked (the delivery fails: nobody listens there)
    after = (await app.admin("GET", f"{BASE}/{gift['id']}")).json()
    assert after["deliveries"], after
    assert after["deliveries"][0]["attempt_log"]
    missing = await app.admin("GET", f"{BASE}/of_nope")
    assert missing.status_code == 404


async def test_expire_a_stuck_fulfillment(app: TestApp) -> None:
    keys = await seed(app)
    talk = await accepted(app, keys, "talk")
    r = await app.admin("POST", f"{BASE}/{talk['id']}/expire")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["error"]["code"] == "fulfillment_expired"
    again = await app.admin("POST", f"{BASE}/{talk['id']}/expire")
    assert again.status_code == 200 and again.json() == r.json()
    events = (await app.admin("GET", f"{BASE}/{talk['id']}")).json()["events"]
    assert [e["type"] for e in events] == ["accepted", "failed"]

    discount = await accepted(app, keys, "discount")
    await work(app)
    done = await app.admin("POST", f"{BASE}/{discount['id']}/expire")
    assert done.status_code == 409
    assert done.json()["api_error_code"] == "invalid_state_for_request"
