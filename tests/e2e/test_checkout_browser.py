"""The hosted checkout page in a real browser (Debian's Chromium through Playwright) against offerd
on a real socket: a subscriber confirms, another says No thanks, the page works at phone width,
and an ``in_app`` page loads inside an iframe only on the origins the site allows."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    expect,
)

from tests.support.catalog import offer
from tests.support.server import LiveServer
from tests.support.sync import Admin, seed

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 375, "height": 700}
MIN_TARGET = 44  # px: WCAG 2.5.5 / Apple HIG touch-target size


# --- the API side, over HTTP -------------------------------------------------------------------


class Api:
    def __init__(self, live: LiveServer, keys: dict[str, str]) -> None:
        self.live = live
        self.keys = keys
        self.http = httpx.Client(base_url=live.base_url, timeout=30)

    def _auth(self, kind: str) -> tuple[str, str]:
        return (self.keys[kind], "")

    def checkout(self, option: str = "upgrade") -> dict[str, Any]:
        """Ask for an offer for cus_1/sub_1 and accept its checkout option: the 202 body."""
        r = self.http.post(
            "/api/v2/personalized_offers",
            json={"customer_id": "cus_1", "subscription_id": "sub_1"},
            auth=self._auth("publishable"),
        )
        assert r.status_code == 200, r.text
        (po,) = r.json()["personalized_offers"]
        assert option in [o["id"] for o in po["options"]]
        r = self.http.post(
            "/api/v2/offer_fulfillments",
            json={"personalized_offer_id": po["id"], "option_id": option},
            auth=self._auth("publishable"),
        )
        assert r.status_code == 202, r.text
        body: dict[str, Any] = r.json()
        hp = body["hosted_page"]
        # the URL is built from the server's own base URL, so a browser can open it as is
        assert hp["url"] == f"{self.live.base_url}/hosted_pages/{hp['id']}"
        return body

    def fulfillment(self, fid: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v2/offer_fulfillments/{fid}", auth=self._auth("full_access"))
        assert r.status_code == 200, r.text
        f: dict[str, Any] = r.json()["offer_fulfillment"]
        return f

    def plan_of_sub_1(self) -> str:
        r = Admin(self.live.base_url).http.get("/sites/acme/subscriptions/sub_1")
        assert r.status_code == 200, r.text
        plan: str = r.json()["plan_id"]
        return plan


def set_upgrade_option(live: LiveServer, **changes: Any) -> None:
    options = [{**o, **changes} if o["id"] == "upgrade" else o for o in offer()["options"]]
    Admin(live.base_url).put("/sites/acme/offers/stay", offer(options=options))


@pytest.fixture
def api(live: LiveServer) -> Api:
    return Api(live, seed(live.base_url))


# --- the browser side --------------------------------------------------------------------------


class Watch:
    """What a page did besides rendering: console errors, uncaught errors, requests it made."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", self._request)

    def _console(self, msg: ConsoleMessage) -> None:
        # Chromium asks for /favicon.ico on its own; offerd has none, and that is no page error
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{msg.text} ({msg.location.get('url')})")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def assert_clean(self, origin: str) -> None:
        assert self.errors == []
        # self-contained: no CDN fonts, scripts or trackers
        assert self.requests and all(url.startswith(origin + "/") for url in self.requests), (
            self.requests
        )


def confirm_button(page: Page, label: str = "Go Pro") -> Any:
    return page.get_by_role("button", name=label, exact=True)


def no_thanks_button(page: Page) -> Any:
    return page.get_by_role("button", name="No thanks", exact=True)


def shows_checkout(page: Page, title: str = "Before you go") -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    table = page.get_by_role("table", name="What changes")
    expect(table).to_be_visible()
    expect(table.get_by_role("row", name=re.compile(r"^Plan\b"))).to_contain_text("Basic")
    expect(table.get_by_role("row", name=re.compile(r"^Plan\b"))).to_contain_text("Pro")
    expect(table.get_by_role("row", name=re.compile(r"^Price\b"))).to_contain_text("$49.00")
    expect(table.get_by_role("row", name=re.compile(r"^Next charge\b"))).to_contain_text("$49.00")


# --- flows -------------------------------------------------------------------------------------


def test_confirm_completes_the_fulfillment(
    api: Api, browser: BrowserContext, screenshot_dir: Path
) -> None:
    body = api.checkout()
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    page = browser.new_page()
    watch = Watch(page)

    response = page.goto(hp["url"])
    assert response is not None and response.status == 200
    expect(page).to_have_title("Before you go – Acme")
    shows_checkout(page)
    expect(page.get_by_text("Here is something for you.")).to_be_visible()
    page.screenshot(path=screenshot_dir / "offerd-checkout-desktop.png", full_page=True)
    assert api.fulfillment(fid)["status"] == "in_progress"

    confirm_button(page).click()
    expect(page.get_by_role("heading", name="You're all set")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your subscription has been updated")
    assert page.url == hp["url"]  # Post/Redirect/Get: a reload does not submit again
    expect(confirm_button(page)).to_have_count(0)

    f = api.fulfillment(fid)
    assert f["status"] == "completed", f
    assert "error" not in f
    assert api.plan_of_sub_1() == "pro"

    # reloading the result page (what a subscriber does when unsure) changes nothing
    page.reload()
    expect(page.get_by_role("heading", name="You're all set")).to_be_visible()
    assert api.fulfillment(fid)["status"] == "completed"
    watch.assert_clean(api.live.base_url)


def test_no_thanks_abandons_the_checkout(
    live: LiveServer, api: Api, browser: BrowserContext
) -> None:
    set_upgrade_option(live, processing_layout="full_page")
    body = api.checkout()
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    assert hp["layout"] == "full_page"
    page = browser.new_page()
    watch = Watch(page)

    page.goto(hp["url"])
    shows_checkout(page)
    # while the question is open, the two buttons are the only ways on
    expect(page.get_by_role("link")).to_have_count(0)
    no_thanks_button(page).click()
    expect(page.get_by_role("heading", name="No changes made")).to_be_visible()
    expect(page.get_by_role("button")).to_have_count(0)
    # full_page: a way back to the merchant once answered
    back = page.get_by_role("link", name="Back to Acme")
    expect(back).to_have_attribute("href", "https://merchant.example/back")

    f = api.fulfillment(fid)
    assert f["status"] == "failed", f
    assert f["error"]["code"] == "checkout_abandoned"
    assert api.plan_of_sub_1() == "basic"
    watch.assert_clean(api.live.base_url)


def test_phone_width_is_usable_and_accessible(
    api: Api, browser: BrowserContext, screenshot_dir: Path
) -> None:
    body = api.checkout()
    fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    page.goto(hp["url"])
    shows_checkout(page)

    lang = page.locator("html").get_attribute("lang")
    assert lang and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", lang), lang
    expect(page.get_by_role("heading", level=1)).to_have_count(1)

    buttons = page.get_by_role("button")
    expect(buttons).to_have_count(2)
    for button in buttons.all():
        expect(button).to_be_visible()
        expect(button).to_have_accessible_name(re.compile(r"\w"))
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        assert box is not None
        assert box["height"] >= MIN_TARGET, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    # nothing wider than the phone: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=screenshot_dir / "offerd-checkout-375.png", full_page=True)

    # the keyboard alone can answer: Tab reaches Confirm first, Enter submits it
    page.keyboard.press("Tab")
    expect(confirm_button(page)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="You're all set")).to_be_visible()
    assert api.fulfillment(fid)["status"] == "completed"


# --- in_app: inside an iframe ------------------------------------------------------------------


@contextmanager
def merchant_site(holder: dict[str, str]) -> Iterator[str]:
    """A merchant's page on its own origin (a real HTTP server on 127.0.0.1, another port) that
    embeds ``holder["src"]`` in an iframe."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            html = (
                '<!doctype html><html lang="en"><head><title>Merchant app</title></head><body>'
                "<h1>Merchant app</h1>"
                f'<iframe title="Checkout" src="{holder["src"]}" width="480" height="640">'
                "</iframe></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def refused_in_frame(browser: BrowserContext, parent: str, live: LiveServer) -> None:
    """Open the merchant page at ``parent`` and check Chromium refused to render the checkout in
    its iframe (CSP frame-ancestors), leaving its own error page in the frame."""
    page = browser.new_page()
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refusal:
        page.goto(parent, wait_until="load")
    assert "has been blocked" in refusal.value.text, refusal.value.text
    expect(page.get_by_role("heading", name="Merchant app")).to_be_visible()
    (frame,) = [f for f in page.frames if f != page.main_frame]
    assert not frame.url.startswith(live.base_url), frame.url
    expect(page.frame_locator('iframe[title="Checkout"]').get_by_role("button")).to_have_count(0)
    page.close()


def test_in_app_page_works_inside_an_allowed_iframe_only(
    live: LiveServer, browser: BrowserContext
) -> None:
    # the site setting needs the merchant origins before the hosted page (its URL) exists
    holder: dict[str, str] = {}
    with merchant_site(holder) as allowed, merchant_site(holder) as other:
        api = Api(live, seed(live.base_url, checkout_frame_ancestors=[allowed], test_mode=True))
        body = api.checkout()
        fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
        assert hp["layout"] == "in_app"
        holder["src"] = hp["url"]

        # an origin the site did not list
        refused_in_frame(browser, other, live)
        assert api.fulfillment(fid)["status"] == "in_progress"

        # the listed origin: the page renders in the frame and can be answered there
        page = browser.new_page()
        watch = Watch(page)
        page.goto(allowed, wait_until="load")
        frame = page.frame_locator('iframe[title="Checkout"]')
        expect(frame.get_by_role("heading", level=1)).to_have_text("Before you go")
        expect(frame.get_by_role("table", name="What changes")).to_be_visible()
        frame.get_by_role("button", name="Go Pro", exact=True).click()
        expect(frame.get_by_role("heading", name="You're all set")).to_be_visible()
        # in_app: no link that would navigate the merchant's frame away
        expect(frame.get_by_role("link")).to_have_count(0)
        assert api.fulfillment(fid)["status"] == "completed"
        assert api.plan_of_sub_1() == "pro"
        assert watch.errors == []


def test_full_page_is_never_framed(live: LiveServer, browser: BrowserContext) -> None:
    holder: dict[str, str] = {}
    with merchant_site(holder) as allowed:
        # the site's framers are for in_app pages; a full_page checkout is never embedded
        api = Api(live, seed(live.base_url, checkout_frame_ancestors=[allowed], test_mode=True))
        set_upgrade_option(live, processing_layout="full_page")
        body = api.checkout()
        fid, hp = body["offer_fulfillment"]["id"], body["hosted_page"]
        assert hp["layout"] == "full_page"
        holder["src"] = hp["url"]
        refused_in_frame(browser, allowed, live)

    # on its own, full page, it works
    page = browser.new_page()
    page.goto(hp["url"])
    shows_checkout(page)
    confirm_button(page).click()
    expect(page.get_by_role("heading", name="You're all set")).to_be_visible()
    expect(page.get_by_role("link", name="Back to Acme")).to_have_attribute(
        "href", "https://merchant.example/back"
    )
    assert api.fulfillment(fid)["status"] == "completed"
