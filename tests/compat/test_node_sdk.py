"""The offers flow through the official ``chargebee`` npm package (pinned in node/package.json),
unmodified, run by node/flow.mjs against a live offerd."""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.helpers import NodeSdk, Site, offer_events_log
from tests.support.catalog import offer
from tests.support.server import LiveServer
from tests.support.sync import Admin

pytestmark = pytest.mark.compat


def succeeded(result: dict[str, Any], step: str) -> dict[str, Any]:
    """The step's result when the SDK resolved, else a failure showing what it rejected with."""
    assert step in result, f"flow.mjs did not reach {step!r}: {result}"
    outcome: dict[str, Any] = result[step]
    assert outcome["ok"], f"the Node SDK rejected {step!r}: {outcome['error']}"
    return outcome


def rejected(result: dict[str, Any], step: str) -> dict[str, Any]:
    assert step in result, f"flow.mjs did not reach {step!r}: {result}"
    outcome: dict[str, Any] = result[step]
    assert not outcome["ok"], f"the Node SDK resolved {step!r}: {outcome}"
    error: dict[str, Any] = outcome["error"]
    return error


def env(server: LiveServer, site: str, full_access: str, publishable: str = "") -> dict[str, str]:
    return {
        "OFFERD_COMPAT_PORT": str(server.port),
        "OFFERD_COMPAT_SITE": site,
        "OFFERD_COMPAT_FULL_ACCESS_KEY": full_access,
        "OFFERD_COMPAT_PUBLISHABLE_KEY": publishable,
    }


def test_offer_flow(node_sdk: NodeSdk, grow_server: LiveServer, acme: Site, admin: Admin) -> None:
    r = node_sdk.run("flow", env(grow_server, "acme", acme.full_access, acme.publishable))

    offers = succeeded(r, "offers")
    assert offers["status"] == 200
    assert offers["replayed"] is False
    assert isinstance(offers["body"]["expires_at"], int)
    (po,) = offers["body"]["personalized_offers"]
    assert po["offer_id"] == "stay"
    assert po["content"] == {"title": "Before you go", "description": "Here is something for you."}
    assert [(o["id"], o["processing_type"]) for o in po["options"]] == [
        ("discount", "billing_update"),
        ("upgrade", "checkout"),
        ("talk", "url_redirect"),
        ("gift", "webhook"),
        ("call", "email"),
    ]

    viewed = succeeded(r, "viewed")
    assert viewed["status"] == 200
    assert viewed["body"] == {}

    accepted = succeeded(r, "accepted")
    assert accepted["status"] == 202
    assert accepted["replayed"] is False
    assert "chargebee-idempotency-replayed" not in accepted["headers"]
    assert set(accepted["body"]) == {"offer_fulfillment"}
    f = accepted["body"]["offer_fulfillment"]
    assert (f["personalized_offer_id"], f["option_id"]) == (po["id"], "talk")
    assert f["processing_type"] == "url_redirect"
    assert f["status"] == "in_progress"
    assert isinstance(f["created_at"], int)
    assert not {"completed_at", "failed_at", "error"} & set(f)
    assert f["redirect_url"] == (
        f"https://merchant.example/save?c=cus_1&s=sub_1&po={po['id']}&f={f['id']}&o=talk"
    )

    # same chargebee-idempotency-key, same body: the recorded response, flagged as a replay
    replayed = succeeded(r, "replayed")
    assert replayed["status"] == 202
    assert replayed["headers"]["chargebee-idempotency-replayed"] == "true"
    assert replayed["replayed"] == "true"  # the SDK passes the header's value through
    assert replayed["body"] == accepted["body"]

    # same key, another body
    reused = rejected(r, "key_reused")
    assert reused["http_status_code"] == 422
    assert reused["api_error_code"] == "unable_to_process_request"
    assert reused["type"] == "invalid_request"

    retrieved = succeeded(r, "retrieved")
    assert retrieved["status"] == 200
    assert retrieved["body"]["offer_fulfillment"] == f

    updated = succeeded(r, "updated")
    assert updated["status"] == 200
    done = updated["body"]["offer_fulfillment"]
    assert (done["id"], done["status"]) == (f["id"], "completed")
    assert isinstance(done.get("completed_at"), int), done
    assert done["completed_at"] >= f["created_at"]

    after = succeeded(r, "retrieved_after")
    assert after["body"]["offer_fulfillment"]["status"] == "completed"
    assert after["body"]["offer_fulfillment"]["completed_at"] == done["completed_at"]

    forbidden = rejected(r, "forbidden")
    assert forbidden["http_status_code"] == 403
    assert forbidden["api_error_code"] == "api_authorization_failed"

    unknown = rejected(r, "unknown")
    assert unknown["http_status_code"] == 404
    assert unknown["api_error_code"] == "resource_not_found"
    assert unknown["type"] == "invalid_request"
    assert unknown["param"] == "personalized_offer_id"

    (second,) = succeeded(r, "second_offers")["body"]["personalized_offers"]
    assert second["id"] != po["id"]
    discount = succeeded(r, "discount")
    assert discount["status"] == 202
    assert set(discount["body"]) == {"offer_fulfillment"}
    d = discount["body"]["offer_fulfillment"]
    assert (d["personalized_offer_id"], d["option_id"]) == (second["id"], "discount")
    assert d["processing_type"] == "billing_update"
    assert d["status"] == "in_progress"  # no worker runs in these tests

    assert offer_events_log(admin, "acme", po["id"]) == ["viewed", "accepted", "fulfilled"]
    assert offer_events_log(admin, "acme", second["id"]) == ["accepted"]


def test_offer_events_no_content(node_sdk: NodeSdk, grow_server: LiveServer, admin: Admin) -> None:
    admin.put("/sites/other", {"name": "Other", "settings": {"offer_events_no_content": True}})
    admin.put("/sites/other/offers/stay", offer())
    key = admin.key("other", "full_access")

    r = node_sdk.run("no_content", env(grow_server, "other", key))

    (po,) = succeeded(r, "offers")["body"]["personalized_offers"]
    viewed = succeeded(r, "viewed")
    assert viewed["status"] == 204
    assert viewed["body"] == {}
    assert offer_events_log(admin, "other", po["id"]) == ["viewed"]
