"""The console in a real browser (Debian's Chromium through Playwright) against offerd on a real
socket with its worker: an editor signs in with the keyboard, creates an offer whose rule is
wrong (the error shows at the rule), fixes it, tries it on a customer, sees it served through
the public API, the subscriber accepts, the funnel and the fulfilment's timeline update, and a
delivery is replayed to a real HTTP receiver. A post without the CSRF token is refused; a viewer
cannot edit. Every page is screenshotted (desktop and phone) into tests/artifacts/console/ for a
person to look at, and checked for unlabelled controls, page errors and off-site requests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect

from tests.e2e.test_checkout_browser import Watch
from tests.support.cli import run_offerd
from tests.support.receiver import Receiver
from tests.support.server import LiveServer, live_server
from tests.support.sync import Admin, seed

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
EDITOR = "ed@example.com"
VIEWER = "vi@example.com"

BAD_RULE = 'subscription.status == "active" &&'
GOOD_RULE = 'subscription.status == "active"'

# Every visible form control must have an accessible name (a label, aria-label or aria-labelledby)
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))"""


def _users(db_url: str, home: Path) -> None:
    """The users, made as an operator makes them: ``offerd users add`` (a real subprocess)."""
    for email, role in ((EDITOR, "editor"), (VIEWER, "viewer")):
        done = run_offerd(
            db_url, home, "users", "add", email, "--role", role, "--password-stdin", stdin=PASSWORD
        )
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"console user {email} ({role}) created" in done.stdout + done.stderr


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str], Receiver]]:
    with Receiver() as receiver, live_server(db_url, run_worker=True) as live:
        keys = seed(live.base_url, url_redirect_auto_complete=True)
        Admin(live.base_url).put(
            "/sites/acme/notification_channels/ops-hook",
            {
                "type": "webhook",
                "url": receiver.url_for("/hook"),
                "event_types": ["offer_fulfillment_completed"],
            },
        )
        _users(db_url, tmp_path)
        yield live, keys, receiver


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def checked(page: Page, name: str) -> None:
    """Screenshot the page, and hold it to the house rules: every control labelled."""
    expect(page.locator("main")).to_be_visible()
    assert page.evaluate(UNLABELLED) == [], name
    shot(page, name)


def expected_refusal(watch: Watch, status: int, path: str) -> None:
    """A refusal the test asked for (Chromium logs a 4xx page load as a console error)."""
    line = f"the server responded with a status of {status}"
    found = [e for e in watch.errors if line in e and e.endswith(f"{path})")]
    assert found, (status, path, watch.errors)
    watch.errors = [e for e in watch.errors if e not in found]


def sign_in_with_keyboard(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("Email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme")


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_an_editor_runs_retention_from_the_console(
    browser: BrowserContext, world: tuple[LiveServer, dict[str, str], Receiver]
) -> None:
    live, keys, receiver = world
    base = live.base_url
    page = browser.new_page()
    watch = Watch(page)
    shot_login = page.goto(f"{base}/console/login")
    assert shot_login is not None and shot_login.status == 200
    checked(page, "01-sign-in")
    sign_in_with_keyboard(page, base, EDITOR)
    checked(page, "02-overview-empty")

    # a new offer with a rule that does not compile: the error appears at the rule as it's typed
    page.get_by_role("link", name="Offers", exact=True).click()
    page.get_by_role("link", name="New offer").click()
    page.get_by_label("Offer id").fill("winback")
    page.get_by_label("Name", exact=True).fill("Win back")
    page.get_by_label("Status").select_option("active")
    page.get_by_label("Priority").fill("50")
    page.get_by_label("Title").fill("Stay with 20% off")
    page.get_by_label("Eligibility rule (CEL)").fill(BAD_RULE)
    live_error = page.locator("#rule-check")
    expect(live_error).to_contain_text("line 1, column")
    expect(live_error.locator(".caret")).to_be_visible()
    first = page.locator("#option-0")
    first.get_by_label("Option id").fill("coupon")
    first.get_by_label("Button label").fill("Take 20% off")
    first.get_by_label("Processing type").select_option("billing_update")
    first.get_by_label("Billing action").select_option("apply_coupon")
    first.get_by_label(re.compile(r"^Coupon id")).fill("SAVE20")
    checked(page, "03-editor-live-rule-error")
    page.get_by_role("button", name="Save offer").click()
    # saved with the bad rule: refused, the error is by the field, what was typed is kept
    expect(page.locator("#form-errors")).to_be_visible()
    rule = page.get_by_label("Eligibility rule (CEL)")
    expect(rule).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-eligibility")).to_contain_text("column")
    expect(page.locator("#option-0").get_by_label("Button label")).to_have_value("Take 20% off")
    checked(page, "04-editor-refused")
    assert Admin(base).http.get("/sites/acme/offers/winback").status_code == 404

    # fixed: the live check says so, and it saves
    rule.fill(GOOD_RULE)
    expect(page.locator("#rule-check")).to_contain_text("compiles")
    page.get_by_role("button", name="Save offer").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Win back")
    checked(page, "05-offer-page")

    # try it on the demo customer: this offer would be shown
    page.get_by_label("Customer id").fill("cus_1")
    page.get_by_label(re.compile(r"^Subscription id")).fill("sub_1")
    page.get_by_role("button", name="Try it").click()
    expect(page.locator("#try-result")).to_contain_text("offerd would show winback")
    expect(page.locator("#try-verdict")).to_contain_text("eligible")
    shot(page, "06-try-it")

    # served through the public API, and accepted by the subscriber
    http = httpx.Client(base_url=base, auth=(keys["publishable"], ""), timeout=30)
    r = http.post(
        "/api/v2/personalized_offers", json={"customer_id": "cus_1", "subscription_id": "sub_1"}
    )
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    assert po["offer_id"] == "winback"
    assert (
        http.post(
            "/api/v2/offer_events", json={"personalized_offer_id": po["id"], "type": "viewed"}
        ).status_code
        == 200
    )
    r = http.post(
        "/api/v2/offer_fulfillments",
        json={"personalized_offer_id": po["id"], "option_id": "coupon"},
    )
    assert r.status_code == 202, r.text
    fid = r.json()["offer_fulfillment"]["id"]
    wait_for(
        lambda: (
            http.get(f"/api/v2/offer_fulfillments/{fid}", auth=(keys["full_access"], "")).json()[
                "offer_fulfillment"
            ]["status"]
            == "completed"
        ),
        "the fulfilment to complete",
    )

    # the funnel shows it
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#kpi-fulfilled")).to_have_text("1")
    expect(page.locator("#offer-table")).to_contain_text("Win back")
    page.wait_for_function("document.querySelector('#funnel-chart').dataset.drawn === '1'")
    checked(page, "07-overview")

    # the fulfilment's timeline
    page.get_by_role("link", name="Fulfilments").click()
    page.get_by_label("Offer id").fill("winback")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=fid).click()
    expect(page.locator("#fulfillment-status")).to_have_text("completed")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("event: accepted")
    expect(timeline).to_contain_text("event: fulfilled")
    expect(timeline).to_contain_text("completed")
    checked(page, "08-fulfilment")

    # the completion notification reached the receiver; replay it from its page
    wait_for(lambda: receiver.received("POST", "/hook"), "the completion webhook")
    expect(timeline).to_contain_text("notification webhook delivery")
    timeline.get_by_role("link").first.click()
    expect(page.locator("#delivery-status")).to_have_text("succeeded")
    checked(page, "09-delivery")
    page.get_by_role("button", name="Replay this delivery").click()
    expect(page.locator(".flash")).to_contain_text("queued")
    wait_for(lambda: len(receiver.received("POST", "/hook")) == 2, "the replayed webhook")
    first_body, second_body = (r.json() for r in receiver.received("POST", "/hook"))
    assert first_body["id"] == second_body["id"]  # the same event, for receivers to de-duplicate
    page.get_by_role("link", name="Deliveries").click()
    checked(page, "10-deliveries")

    page.get_by_role("link", name="Settings").click()
    checked(page, "11-settings")
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-table")).to_contain_text("offer:winback")
    expect(page.locator("#audit-table")).to_contain_text("delivery.retry")
    checked(page, "12-audit-log")

    # a post without the CSRF token (the session cookie alone) is refused
    r2 = page.request.post(
        f"{base}/console/sites/acme/api_keys", form={"name": "forged", "kind": "full_access"}
    )
    assert r2.status == 403
    keys_now = Admin(base).http.get("/sites/acme/api_keys").json()["api_keys"]
    assert "forged" not in [k["name"] for k in keys_now]

    expected_refusal(watch, 400, "/console/sites/acme/offers")  # the bad rule's save
    watch.assert_clean(base)


def test_a_viewer_cannot_edit_and_the_console_fits_a_phone(
    browser: BrowserContext, world: tuple[LiveServer, dict[str, str], Receiver]
) -> None:
    live, _, _ = world
    base = live.base_url
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    watch = Watch(page)
    sign_in_with_keyboard(page, base, VIEWER)
    # nothing on the page invites a change
    page.get_by_role("link", name="Offers", exact=True).click()
    expect(page.get_by_role("link", name="New offer")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile(r"^Edit"))).to_have_count(0)
    response = page.goto(f"{base}/console/sites/acme/offers/stay/edit")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("viewer")
    page.goto(f"{base}/console/sites/acme/settings")
    expect(page.get_by_role("button", name="Create API key")).to_have_count(0)
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    for path, name in (
        ("", "phone-overview"),
        ("/offers/stay", "phone-offer"),
        ("/fulfillments", "phone-fulfilments"),
    ):
        page.goto(f"{base}/console/sites/acme{path}")
        # no sideways scrolling of the page at phone width (tables scroll in their own box)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)
        checked(page, name)
    expected_refusal(watch, 403, "/console/sites/acme/offers/stay/edit")
    watch.assert_clean(base)
