"""Admin API: offers, validated on save."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.app import TestApp
from tests.support.catalog import offer


async def test_put_get_list_and_versions(app: TestApp) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer())
    assert r.status_code == 201
    assert r.json()["version"] == 1
    assert r.json()["object"] == "offer"
    # the same definition again is not a new version
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer())
    assert (r.status_code, r.json()["version"]) == (200, 1)
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer(priority=3))
    assert r.json()["version"] == 2
    got = (await app.admin("GET", "/sites/acme/offers/stay")).json()
    assert got["priority"] == 3
    assert got["options"][0]["billing_action"] == {"type": "apply_coupon", "coupon_id": "SAVE20"}
    await app.admin("PUT", "/sites/acme/offers/draft", offer(status="draft"))
    listed = (await app.admin("GET", "/sites/acme/offers?status=active")).json()["offers"]
    assert [o["id"] for o in listed] == ["stay"]
    assert (await app.admin("GET", "/sites/acme/offers/nope")).status_code == 404


async def test_bad_eligibility_is_rejected_with_its_position(app: TestApp) -> None:
    await app.create_site()
    r = await app.admin(
        "PUT", "/sites/acme/offers/stay", offer(eligibility="subscription.status == 'active' &&")
    )
    assert r.status_code == 400
    body = r.json()
    assert body["param"] == "eligibility"
    # columns are 1-based: the end of input is the 35th position of this 34-character text
    assert "line 1, column 35" in body["message"]
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer(eligibility="a +\n * b"))
    assert "line 2, column 2" in r.json()["message"]


def with_option(index: int, **changes: Any) -> dict[str, Any]:
    definition = offer()
    definition["options"][index] = {**definition["options"][index], **changes}
    return definition


@pytest.mark.parametrize(
    ("definition", "param"),
    [
        (with_option(0, billing_action=None), "options[0]"),
        (with_option(0, billing_action={"type": "teleport"}), "options[0][billing_action][type]"),
        (
            with_option(0, billing_action={"type": "extend_trial", "days": 0}),
            "options[0][billing_action][days]",
        ),
        (with_option(2, redirect_url="https://x.example/{nope}"), "options[2][redirect_url]"),
        (with_option(2, redirect_url="ftp://x.example/"), "options[2][redirect_url]"),
        (with_option(3, webhook_url="not a url"), "options[3][webhook_url]"),
        (with_option(4, email_to=["nobody"]), "options[4][email_to]"),
        (with_option(4, email_to=[]), "options[4][email_to]"),
        (with_option(3, billing_action={"type": "resume_subscription"}), "options[3]"),
        (with_option(1, id="discount"), "body"),
        (with_option(0, label="x" * 51), "options[0][label]"),
        (with_option(0, processing_layout="sideways"), "options[0][processing_layout]"),
        (offer(options=[]), "options"),
        (offer(status="live"), "status"),
        (offer(starts_at=200, ends_at=100), "body"),
        # year 10000 on: a datetime cannot hold it (it was a 500)
        (offer(starts_at=253_402_300_800), "starts_at"),
        (offer(ends_at=253_402_300_800), "ends_at"),
        (offer(ends_at=10**20), "ends_at"),
        (offer(starts_at=-1), "starts_at"),
        ({**offer(), "surprise": 1}, "surprise"),
    ],
)
async def test_offer_validation(app: TestApp, definition: dict[str, Any], param: str) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/offers/stay", definition)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param
    assert r.json()["api_error_code"] == "param_wrong_value"


async def test_the_last_second_of_9999_is_a_valid_window_end(app: TestApp) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer(ends_at=253_402_300_799))
    assert r.status_code == 201, r.text
    assert r.json()["ends_at"] == 253_402_300_799
