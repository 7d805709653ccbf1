"""Hosted checkout pages, in-process against a real PostgreSQL: the ``hosted_page`` in the 202,
``GET /hosted_pages/{id}`` (what the subscriber sees, and the headers that decide where it may be
framed), the Confirm / No thanks answers, and abandonment when the page expires."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from offerd.queue.runtime import build_worker
from tests.checkout.page import Page, read
from tests.support.app import TestApp
from tests.support.catalog import offer, personalized_offer, seed

ACCEPT = "/api/v2/offer_fulfillments"
TTL = timedelta(hours=3)
FRAMERS = ["https://app.merchant.example", "https://*.merchant.example"]

# the seeded sub_1 renews at NOW_TERM + 29 days = 2027-02-13 (UTC); a plan change keeps the term
NEXT_CHARGE_AT = "Feb 13, 2027"


# --- helpers -----------------------------------------------------------------------------------


def upgrade_option(**changes: Any) -> dict[str, Any]:
    (option,) = [o for o in offer()["options"] if o["id"] == "upgrade"]
    return {**option, **changes}


async def put_upgrade(app: TestApp, **changes: Any) -> None:
    """Re-save the seeded offer with its checkout option changed."""
    options = [upgrade_option(**changes) if o["id"] == "upgrade" else o for o in offer()["options"]]
    await app.put("acme", "offers/stay", offer(options=options))


async def accept(
    app: TestApp, keys: dict[str, str], po_id: str | None = None, option: str = "upgrade"
) -> dict[str, Any]:
    if po_id is None:
        po_id = (await personalized_offer(app, keys["publishable"]))["id"]
    r = await app.post(
        ACCEPT, keys["publishable"], json={"personalized_offer_id": po_id, "option_id": option}
    )
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


async def offer_without_subscription(app: TestApp, keys: dict[str, str]) -> str:
    """A personalized offer for cus_2, a customer with no subscription."""
    await app.put("acme", "customers/cus_2", {"email": "new@example.com"})
    r = await app.post(
        "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus_2"}
    )
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    po_id: str = po["id"]
    return po_id


def path_of(hosted_page: dict[str, Any]) -> str:
    path: str = urlsplit(hosted_page["url"]).path
    return path


async def open_page(app: TestApp, hosted_page: dict[str, Any]) -> tuple[httpx.Response, Page]:
    r = await app.client.get(path_of(hosted_page))
    return r, read(r.text)


async def answer(
    app: TestApp, hosted_page: dict[str, Any], decision: str, token: str
) -> httpx.Response:
    return await app.client.post(path_of(hosted_page), data={"decision": decision, "token": token})


async def page_row(app: TestApp, page_id: str) -> dict[str, Any]:
    (row,) = await app.fetch("SELECT * FROM hosted_pages WHERE id = %s", page_id)
    return row


async def fulfillment(app: TestApp, keys: dict[str, str], fid: str) -> dict[str, Any]:
    r = await app.get(f"{ACCEPT}/{fid}", keys["full_access"])
    assert r.status_code == 200, r.text
    f: dict[str, Any] = r.json()["offer_fulfillment"]
    return f


async def plan_of_sub_1(app: TestApp) -> str:
    r = await app.admin("GET", "/sites/acme/subscriptions/sub_1")
    assert r.status_code == 200, r.text
    plan: str = r.json()["plan_id"]
    return plan


async def count(app: TestApp, sql: str, *params: Any) -> int:
    (row,) = await app.fetch(f"SELECT count(*) AS n FROM {sql}", *params)
    n: int = row["n"]
    return n


async def events(app: TestApp, fid: str, kind: str) -> int:
    return await count(app, "offer_events WHERE fulfillment_id = %s AND type = %s", fid, kind)


def csp(response: httpx.Response) -> dict[str, str]:
    """The Content-Security-Policy header as {directive: sources}."""
    out = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value.strip()
    return out


# --- the 202 -----------------------------------------------------------------------------------


async def test_202_carries_a_complete_hosted_page(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    assert set(body) == {"offer_fulfillment", "hosted_page"}
    f, hp = body["offer_fulfillment"], body["hosted_page"]
    assert f["processing_type"] == "checkout" and f["status"] == "in_progress"

    assert hp["object"] == "hosted_page"
    # random, not time-ordered: 160 bits of base62 after the prefix, within the spec's 70 chars
    assert re.fullmatch(r"hp_[0-9A-Za-z]{22,}", hp["id"]), hp["id"]
    assert len(hp["id"]) <= 70
    assert hp["type"] == "checkout_existing"  # sub_1 is known
    assert hp["url"] == f"{app.services.settings.base_url}/hosted_pages/{hp['id']}"
    assert hp["state"] == "created"
    assert hp["layout"] == "in_app"  # the seeded option's processing_layout
    assert hp["embed"] is False
    assert isinstance(hp["created_at"], int) and isinstance(hp["expires_at"], int)
    assert hp["expires_at"] - hp["created_at"] == 10800  # checkout pages live 3 hours
    assert abs(hp["created_at"] - f["created_at"]) <= 1
    assert hp["content"] == {}

    row = await page_row(app, hp["id"])
    assert row["fulfillment_id"] == f["id"]
    assert row["state"] == "created"
    assert row["expires_at"] - row["created_at"] == TTL
    # the one-time form token is not the page id, and is not in the API response
    assert row["form_token"] not in (hp["id"], hp["url"]) and row["form_token"] not in str(body)


async def test_page_ids_are_unrelated_to_each_other(app: TestApp) -> None:
    keys = await seed(app)
    first = (await accept(app, keys))["hosted_page"]["id"]
    second = (await accept(app, keys))["hosted_page"]["id"]
    assert first != second
    # time-ordered ids share a prefix; random ones almost never share more than a char or two
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert common < len("hp_") + 4, (first, second)


@pytest.mark.parametrize("layout", ["in_app", "full_page"])
async def test_layout_follows_the_option(app: TestApp, layout: str) -> None:
    keys = await seed(app)
    await put_upgrade(app, processing_layout=layout)
    hp = (await accept(app, keys))["hosted_page"]
    assert hp["layout"] == layout
    assert (await page_row(app, hp["id"]))["layout"] == layout


async def test_checkout_new_when_no_subscription_is_known(app: TestApp) -> None:
    keys = await seed(app)
    hp = (await accept(app, keys, await offer_without_subscription(app, keys)))["hosted_page"]
    assert hp["type"] == "checkout_new"
    assert (await page_row(app, hp["id"]))["type"] == "checkout_new"


async def test_repeated_accept_returns_the_same_hosted_page(app: TestApp) -> None:
    keys = await seed(app)
    po = await personalized_offer(app, keys["publishable"])
    first = await accept(app, keys, po["id"])
    second = await accept(app, keys, po["id"])
    assert second == first
    await open_page(app, first["hosted_page"])
    third = (await accept(app, keys, po["id"]))["hosted_page"]
    assert third["id"] == first["hosted_page"]["id"]
    assert third["url"] == first["hosted_page"]["url"]
    assert third["expires_at"] == first["hosted_page"]["expires_at"]
    assert third["state"] == "requested"  # the page as it is now
    assert await count(app, "hosted_pages") == 1


# --- what the subscriber sees ------------------------------------------------------------------


async def test_opening_marks_requested_and_shows_what_changes(app: TestApp) -> None:
    keys = await seed(app)
    hp = (await accept(app, keys))["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert (await page_row(app, hp["id"]))["state"] == "requested"

    assert page.lang == "en"
    # the title names the page and the site (WCAG 2.4.2)
    assert page.title == "Before you go – Acme"
    assert page.h1 == ["Before you go"]
    assert "Here is something for you." in page.text
    assert page.caption == "What changes"
    assert page.rows == [
        ["Plan", "Basic", "Pro"],
        ["Price", "$15.00 / month", "$49.00 / month"],
        ["Coupons", "None", "None"],
        ["Next charge", f"$15.00 on {NEXT_CHARGE_AT}", f"$49.00 on {NEXT_CHARGE_AT}"],
    ]
    confirm, cancel = page.button("confirm"), page.button("cancel")
    assert confirm is not None and confirm.text == "Go Pro" and confirm.name == "decision"
    assert cancel is not None and cancel.text == "No thanks" and cancel.name == "decision"
    assert page.token
    assert page.alerts == []
    # looking is not answering
    f = await fulfillment(app, keys, (await page_row(app, hp["id"]))["fulfillment_id"])
    assert f["status"] == "in_progress"
    assert await plan_of_sub_1(app) == "basic"

    # a second look keeps it requested and shows the same page
    r2, again = await open_page(app, hp)
    assert r2.status_code == 200
    assert again.rows == page.rows and again.token == page.token
    assert (await page_row(app, hp["id"]))["state"] == "requested"


async def test_offer_html_is_shown_as_text(app: TestApp) -> None:
    keys = await seed(app)
    await app.put(
        "acme",
        "offers/stay",
        offer(
            content={
                "title": "<b>Upgrade</b> <script>alert(1)</script>today",
                "description": "Line one<br>line <i>two</i>",
            }
        ),
    )
    hp = (await accept(app, keys))["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "<b>Upgrade" not in r.text
    assert page.h1 and page.h1[0].startswith("Upgrade")
    assert "line two" in page.text


# --- Confirm -----------------------------------------------------------------------------------


async def test_confirm_applies_the_change_once(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)

    r = await answer(app, hp, "confirm", page.token)
    assert r.status_code == 303
    assert r.headers["location"] == path_of(hp)  # Post/Redirect/Get

    row = await page_row(app, hp["id"])
    assert row["state"] == "succeeded"
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "completed"
    assert isinstance(f["completed_at"], int)
    assert "error" not in f and "failed_at" not in f
    assert await plan_of_sub_1(app) == "pro"
    assert await count(app, "subscription_changes WHERE idempotency_key = %s", fid) == 1
    assert await events(app, fid, "fulfilled") == 1

    r, done = await open_page(app, hp)
    assert r.status_code == 200
    assert done.h1 == ["You're all set"]
    assert done.button("confirm") is None and done.button("cancel") is None
    # the API reflects the page's new state on a repeated accept
    po_id = body["offer_fulfillment"]["personalized_offer_id"]
    assert (await accept(app, keys, po_id))["hosted_page"]["state"] == "succeeded"

    # double submit (the same form again, or a No thanks racing it): nothing more happens
    for decision in ("confirm", "cancel"):
        again = await answer(app, hp, decision, page.token)
        assert again.status_code == 303
    assert await count(app, "subscription_changes") == 1
    assert await events(app, fid, "fulfilled") == 1
    assert await events(app, fid, "failed") == 0
    assert (await fulfillment(app, keys, fid))["status"] == "completed"
    assert (await page_row(app, hp["id"]))["state"] == "succeeded"


async def test_simultaneous_double_submit_applies_once(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    results = await asyncio.gather(*(answer(app, hp, "confirm", page.token) for _ in range(4)))
    assert [r.status_code for r in results] == [303] * 4
    assert await count(app, "subscription_changes") == 1
    assert await events(app, fid, "fulfilled") == 1
    assert (await fulfillment(app, keys, fid))["status"] == "completed"


async def test_confirm_without_opening_first(app: TestApp) -> None:
    """The token is only on the page, but a page still ``created`` must accept its answer."""
    keys = await seed(app)
    body = await accept(app, keys)
    hp = body["hosted_page"]
    (row,) = await app.fetch("SELECT form_token FROM hosted_pages WHERE id = %s", hp["id"])
    r = await answer(app, hp, "confirm", row["form_token"])
    assert r.status_code == 303
    assert (await page_row(app, hp["id"]))["state"] == "succeeded"
    assert (await fulfillment(app, keys, body["offer_fulfillment"]["id"]))["status"] == "completed"


@pytest.mark.parametrize(
    "form",
    [
        # a token from somewhere else: refused, the page stays answerable
        {"decision": "confirm", "token": "not-the-token"},
        {"decision": "cancel", "token": "not-the-token"},
        {"decision": "confirm", "token": ""},
    ],
)
async def test_a_wrong_token_is_refused_and_changes_nothing(
    app: TestApp, form: dict[str, str]
) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    r = await app.client.post(path_of(hp), data=form)
    assert r.status_code == 403
    assert (await page_row(app, hp["id"]))["state"] == "requested"
    assert (await fulfillment(app, keys, fid))["status"] == "in_progress"
    assert await plan_of_sub_1(app) == "basic"
    assert await count(app, "subscription_changes") == 0
    # the real token still works afterwards
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    assert (await fulfillment(app, keys, fid))["status"] == "completed"


@pytest.mark.parametrize(
    "form",
    [
        {"token": "x"},  # no decision
        {"decision": "maybe", "token": "x"},  # not one of the two buttons
        {"decision": "confirm"},  # no token
    ],
)
async def test_a_malformed_answer_is_a_400(app: TestApp, form: dict[str, str]) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    hp = body["hosted_page"]
    await open_page(app, hp)
    r = await app.client.post(path_of(hp), data=form)
    assert r.status_code == 400
    assert (await page_row(app, hp["id"]))["state"] == "requested"


# --- No thanks ---------------------------------------------------------------------------------


async def test_no_thanks_abandons_the_checkout(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)

    r = await answer(app, hp, "cancel", page.token)
    assert r.status_code == 303 and r.headers["location"] == path_of(hp)

    assert (await page_row(app, hp["id"]))["state"] == "cancelled"
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed"
    assert f["error"]["code"] == "checkout_abandoned"
    assert f["error"]["message"]
    assert isinstance(f["failed_at"], int)
    assert await plan_of_sub_1(app) == "basic"
    assert await count(app, "subscription_changes") == 0
    assert await events(app, fid, "failed") == 1

    r, declined = await open_page(app, hp)
    assert r.status_code == 200
    assert declined.h1 == ["No changes made"]
    assert declined.button("confirm") is None

    # Confirm after No thanks: too late, nothing is applied
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    assert await plan_of_sub_1(app) == "basic"
    assert (await fulfillment(app, keys, fid))["status"] == "failed"
    assert await events(app, fid, "failed") == 1
    assert await events(app, fid, "fulfilled") == 0


# --- expiry ------------------------------------------------------------------------------------


async def test_the_worker_abandons_an_expired_page(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    worker = build_worker(app.services)

    # not yet: a minute before expiry the job is not due and the checkout stays open
    app.clock.advance(TTL - timedelta(minutes=1))
    await worker.run_once()
    assert (await fulfillment(app, keys, fid))["status"] == "in_progress"
    assert (await page_row(app, hp["id"]))["state"] == "requested"

    app.clock.advance(timedelta(minutes=1, seconds=1))
    assert await worker.run_once() >= 1
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed"
    assert f["error"]["code"] == "checkout_abandoned"
    row = await page_row(app, hp["id"])
    assert row["state"] == "cancelled"
    assert row["content"] == {"reason": "expired"}
    assert await events(app, fid, "failed") == 1

    r, expired = await open_page(app, hp)
    assert r.status_code == 410
    assert expired.h1 == ["This page has expired"]
    assert expired.button("confirm") is None and expired.button("cancel") is None

    # the old form, submitted late, applies nothing
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    assert await plan_of_sub_1(app) == "basic"
    assert await count(app, "subscription_changes") == 0
    assert await events(app, fid, "failed") == 1


async def test_the_expiry_job_leaves_an_answered_page_alone(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    app.clock.advance(TTL + timedelta(seconds=1))
    await build_worker(app.services).run_once()
    assert (await fulfillment(app, keys, fid))["status"] == "completed"
    assert (await page_row(app, hp["id"]))["state"] == "succeeded"
    assert await events(app, fid, "failed") == 0
    r, done = await open_page(app, hp)
    assert r.status_code == 200 and done.h1 == ["You're all set"]


@pytest.mark.parametrize("opened_before", [False, True])
async def test_opening_an_expired_page_abandons_it(app: TestApp, opened_before: bool) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    if opened_before:
        await open_page(app, hp)
    app.clock.advance(TTL + timedelta(seconds=1))

    r, expired = await open_page(app, hp)  # no worker has run
    assert r.status_code == 410
    assert expired.h1 == ["This page has expired"]
    assert expired.button("confirm") is None
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed" and f["error"]["code"] == "checkout_abandoned"
    assert (await page_row(app, hp["id"]))["state"] == "cancelled"

    # the job that comes due afterwards finds it answered: still one failed event
    await build_worker(app.services).run_once()
    assert await events(app, fid, "failed") == 1
    assert (await open_page(app, hp))[0].status_code == 410


async def test_answering_an_expired_page_abandons_it(app: TestApp) -> None:
    keys = await seed(app)
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    app.clock.advance(TTL + timedelta(seconds=1))
    r = await answer(app, hp, "confirm", page.token)
    assert r.status_code == 303
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed" and f["error"]["code"] == "checkout_abandoned"
    assert await plan_of_sub_1(app) == "basic"
    assert (await open_page(app, hp))[0].status_code == 410


# --- unknown pages -----------------------------------------------------------------------------


async def test_unknown_page_is_a_404(app: TestApp) -> None:
    await seed(app)
    r = await app.client.get("/hosted_pages/hp_0000000000000000000000000000")
    assert r.status_code == 404
    page = read(r.text)
    assert page.h1 == ["Page not found"]
    assert page.buttons == []
    r = await app.client.post(
        "/hosted_pages/hp_0000000000000000000000000000",
        data={"decision": "confirm", "token": "x"},
    )
    assert r.status_code == 404


# --- where the page may be shown ---------------------------------------------------------------


async def test_in_app_page_may_be_framed_by_the_sites_origins(app: TestApp) -> None:
    keys = await seed(app, checkout_frame_ancestors=FRAMERS)
    hp = (await accept(app, keys))["hosted_page"]
    r, _ = await open_page(app, hp)
    assert r.status_code == 200
    policy = csp(r)
    assert policy["frame-ancestors"] == "'self' " + " ".join(FRAMERS)
    assert policy["form-action"] == "'self'"
    assert "x-frame-options" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_in_app_page_csp_names_origins_only(app: TestApp) -> None:
    """A value stored before origins were checked on save (a ``;`` starting another directive,
    CR/LF, a quote) never reaches the header: the page is served, framed by the origins only."""
    keys = await seed(app, checkout_frame_ancestors=FRAMERS)
    stored = [
        "*; script-src * 'unsafe-inline'",
        FRAMERS[0],
        "https://evil.example\r\nSet-Cookie: a=b",
        "'unsafe-inline'",
        "http://plain.example",  # plain http: the site is not in test mode
        FRAMERS[1],
    ]
    await app.fetch(
        "UPDATE sites SET settings = jsonb_set(settings, '{checkout_frame_ancestors}', %s::jsonb)"
        " WHERE id = 'acme' RETURNING id",
        json.dumps(stored),
    )
    hp = (await accept(app, keys))["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    assert page.buttons
    header = r.headers["content-security-policy"]
    assert csp(r) == {"frame-ancestors": "'self' " + " ".join(FRAMERS), "form-action": "'self'"}
    assert "script-src" not in header and "unsafe-inline" not in header
    assert "\r" not in header and "\n" not in header


async def test_in_app_page_without_a_setting_may_be_framed_by_itself_only(app: TestApp) -> None:
    keys = await seed(app)
    hp = (await accept(app, keys))["hosted_page"]
    r, _ = await open_page(app, hp)
    assert csp(r)["frame-ancestors"] == "'self'"
    assert "x-frame-options" not in r.headers


async def test_in_app_page_has_no_back_link(app: TestApp) -> None:
    """Inside the merchant's app the frame is closed by the app; a link would navigate the frame."""
    keys = await seed(app)
    hp = (await accept(app, keys))["hosted_page"]
    _, page = await open_page(app, hp)
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    _, done = await open_page(app, hp)
    assert done.links == []


async def test_full_page_is_never_framed_and_links_back_after_answering(app: TestApp) -> None:
    keys = await seed(app, checkout_frame_ancestors=FRAMERS)
    await put_upgrade(app, processing_layout="full_page")
    hp = (await accept(app, keys))["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    assert csp(r)["frame-ancestors"] == "'none'"  # the site's framers are for in_app only
    assert r.headers["x-frame-options"] == "DENY"
    assert page.links == []  # while the question is open, the buttons are the way out

    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    r, done = await open_page(app, hp)
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"
    assert done.h1 == ["You're all set"]
    assert [(link.text, link.href) for link in done.links] == [
        ("Back to Acme", "https://merchant.example/back")
    ]


@pytest.mark.parametrize("how", ["declined", "expired"])
async def test_full_page_links_back_after_no_thanks_or_expiry(app: TestApp, how: str) -> None:
    keys = await seed(app)
    await put_upgrade(app, processing_layout="full_page")
    hp = (await accept(app, keys))["hosted_page"]
    _, page = await open_page(app, hp)
    if how == "declined":
        await answer(app, hp, "cancel", page.token)
    else:
        app.clock.advance(TTL + timedelta(seconds=1))
    r, closed = await open_page(app, hp)
    assert r.status_code == (410 if how == "expired" else 200)
    assert r.headers["x-frame-options"] == "DENY"
    assert [link.href for link in closed.links] == ["https://merchant.example/back"]


async def test_back_link_fills_the_redirect_url_placeholders(app: TestApp) -> None:
    """The option's redirect_url is a template (as for url_redirect): the link must be filled."""
    keys = await seed(app)
    await put_upgrade(
        app,
        processing_layout="full_page",
        redirect_url="https://merchant.example/back?f={fulfillment_id}&c={customer_id}",
    )
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    await answer(app, hp, "confirm", page.token)
    _, done = await open_page(app, hp)
    (link,) = done.links
    assert "{" not in link.href, link.href
    assert parse_qs(urlsplit(link.href).query) == {"f": [fid], "c": ["cus_1"]}


# --- when billing says no ----------------------------------------------------------------------


async def test_a_billing_domain_error_is_shown_without_a_confirm_button(app: TestApp) -> None:
    keys = await seed(app)
    # sub_1 is active: resuming it is refused by the ledger
    await put_upgrade(app, billing_action={"type": "resume_subscription"})
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    assert page.h1 == ["Before you go"]
    (alert,) = page.alerts
    assert alert.startswith("This offer can't be applied to your subscription")
    assert page.rows == []  # no "What changes" table for a change that cannot happen
    assert page.button("confirm") is None
    assert page.button("cancel") is not None
    assert (await page_row(app, hp["id"]))["state"] == "requested"
    assert (await fulfillment(app, keys, fid))["status"] == "in_progress"


async def test_a_change_whose_date_overflows_cannot_be_applied(app: TestApp) -> None:
    """A trial ending Dec 20, 9999 extended by 30 days is past what a date holds: the page says
    the offer can't be applied (not a 500), and a forged confirm fails the fulfillment."""
    keys = await seed(app)
    last_december = int(datetime(9999, 12, 20, tzinfo=UTC).timestamp())
    trial = {"customer_id": "cus_1", "plan_id": "basic", "status": "in_trial"}
    await app.put("acme", "subscriptions/sub_1", {**trial, "trial_end": last_december})
    await put_upgrade(app, billing_action={"type": "extend_trial", "days": 30})
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    (alert,) = page.alerts
    assert alert.startswith("This offer can't be applied to your subscription")
    assert page.button("confirm") is None

    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed" and f["error"]["code"] == "billing_update_failed"
    assert await count(app, "subscription_changes") == 0
    r, failed = await open_page(app, hp)
    assert r.status_code == 200
    assert failed.h1 == ["We couldn't apply this offer"]


async def test_a_forged_confirm_on_a_refused_change_fails_the_fulfillment(app: TestApp) -> None:
    keys = await seed(app)
    await put_upgrade(app, billing_action={"type": "resume_subscription"})
    body = await accept(app, keys)
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    _, page = await open_page(app, hp)
    # the button is not there, but the token is: post the confirm anyway
    assert (await answer(app, hp, "confirm", page.token)).status_code == 303
    f = await fulfillment(app, keys, fid)
    assert f["status"] == "failed" and f["error"]["code"] == "billing_update_failed"
    assert await count(app, "subscription_changes") == 0
    r, failed = await open_page(app, hp)
    assert r.status_code == 200
    assert failed.h1 == ["We couldn't apply this offer"]
    assert failed.button("confirm") is None


async def test_subscriber_never_sees_developer_error_text(app: TestApp) -> None:
    """error.message is "for developers, not end customers" (spec §4.3): the page must not show
    the ledger's internal wording (action names, quoted ids) to the subscriber."""
    keys = await seed(app)
    await put_upgrade(app, billing_action={"type": "resume_subscription"})
    body = await accept(app, keys)
    hp = body["hosted_page"]
    _, page = await open_page(app, hp)
    assert "resume_subscription" not in page.text, page.alerts
    await answer(app, hp, "confirm", page.token)
    _, failed = await open_page(app, hp)
    f = await fulfillment(app, keys, body["offer_fulfillment"]["id"])
    assert f["error"]["message"] not in failed.text, failed.text


async def test_checkout_new_page_explains_itself_in_plain_words(app: TestApp) -> None:
    """Without a subscription the page can't apply a plan change; it must say so plainly rather
    than show an internal lookup error for an empty subscription id."""
    keys = await seed(app)
    hp = (await accept(app, keys, await offer_without_subscription(app, keys)))["hosted_page"]
    r, page = await open_page(app, hp)
    assert r.status_code == 200
    assert page.button("confirm") is None
    (alert,) = page.alerts
    assert "''" not in alert and "does not exist" not in alert, alert
