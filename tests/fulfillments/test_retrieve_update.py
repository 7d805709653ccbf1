"""GET and POST /api/v2/offer_fulfillments/{id}."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fulfillments.helpers import accept_option
from tests.support.app import TestApp
from tests.support.catalog import seed

PATH = "/api/v2/offer_fulfillments"


async def accepted(
    app: TestApp, keys: dict[str, str], option: str = "talk", **headers: str
) -> dict[str, Any]:
    _, f = await accept_option(app, keys, option, headers=headers)
    return f


async def test_retrieve(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    r = await app.get(f"{PATH}/{f['id']}", keys["full_access"])
    assert r.status_code == 200
    assert r.json() == {"offer_fulfillment": f}


async def test_retrieve_needs_full_access(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    r = await app.get(f"{PATH}/{f['id']}", keys["publishable"])
    assert r.status_code == 403
    assert r.json()["api_error_code"] == "api_authorization_failed"
    assert r.json()["type"] == "untyped"


async def test_retrieve_unknown_and_other_entity(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    assert (await app.get(f"{PATH}/of_nope", keys["full_access"])).status_code == 404
    r = await app.get(
        f"{PATH}/{f['id']}", keys["full_access"], headers={"chargebee-business-entity-id": "be_x"}
    )
    assert r.status_code == 404


@pytest.mark.parametrize("option", ["talk", "gift", "call"])
async def test_merchant_completes(app: TestApp, option: str) -> None:
    keys = await seed(app)
    f = await accepted(app, keys, option)
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 200, r.text
    done = r.json()["offer_fulfillment"]
    assert done["status"] == "completed"
    assert isinstance(done["completed_at"], int)
    assert "error" not in done
    events = await app.fetch(
        "SELECT type FROM offer_events WHERE fulfillment_id = %s ORDER BY seq", f["id"]
    )
    assert [e["type"] for e in events] == ["accepted", "fulfilled"]
    r = await app.get(f"{PATH}/{f['id']}", keys["full_access"])
    assert r.json()["offer_fulfillment"] == done


async def test_merchant_fails_with_reason(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    r = await app.post(
        f"{PATH}/{f['id']}",
        keys["full_access"],
        data={"id": f["id"], "status": "failed", "failure_reason": "card declined"},
    )
    assert r.status_code == 200
    done = r.json()["offer_fulfillment"]
    assert done["status"] == "failed"
    assert done["error"] == {"code": "external_fulfillment_failed", "message": "card declined"}
    assert isinstance(done["failed_at"], int)
    assert "completed_at" not in done
    events = await app.fetch(
        "SELECT type FROM offer_events WHERE fulfillment_id = %s ORDER BY seq", f["id"]
    )
    assert [e["type"] for e in events] == ["accepted", "failed"]


@pytest.mark.parametrize(
    ("body", "param", "error_code"),
    [
        # the body id must be the path id
        ({"id": "of_other", "status": "completed"}, "id", "param_wrong_value"),
        ({"status": "completed"}, "id", "param_not_present"),
        ({"id": "{id}"}, "status", "param_not_present"),
        ({"id": "{id}", "status": "in_progress"}, "status", "param_wrong_value"),
        # failure_reason is required with failed, and bounded
        ({"id": "{id}", "status": "failed"}, "failure_reason", "param_not_present"),
        (
            {"id": "{id}", "status": "failed", "failure_reason": "x" * 101},
            "failure_reason",
            "param_wrong_value",
        ),
    ],
)
async def test_update_param_errors(
    app: TestApp, body: dict[str, str], param: str, error_code: str
) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    body = {k: v.replace("{id}", f["id"]) for k, v in body.items()}
    r = await app.post(f"{PATH}/{f['id']}", keys["full_access"], json=body)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param
    assert r.json()["error_code"] == error_code


async def test_update_not_allowed_for_system_driven_types(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys, "discount")
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 409
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    assert "param" not in r.json()


async def test_update_of_a_final_fulfillment_is_a_conflict(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    path = f"{PATH}/{f['id']}"
    assert (
        await app.post(path, keys["full_access"], json={"id": f["id"], "status": "completed"})
    ).status_code == 200
    r = await app.post(
        path, keys["full_access"], json={"id": f["id"], "status": "failed", "failure_reason": "x"}
    )
    assert r.status_code == 409
    assert (
        len(await app.fetch("SELECT 1 FROM offer_events WHERE type IN ('fulfilled', 'failed')"))
        == 1
    )


async def test_update_needs_full_access_and_matching_entity(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys)
    path = f"{PATH}/{f['id']}"
    body = {"id": f["id"], "status": "completed"}
    assert (await app.post(path, keys["publishable"], json=body)).status_code == 403
    r = await app.post(
        path, keys["full_access"], json=body, headers={"chargebee-business-entity-id": "be_x"}
    )
    assert r.status_code == 404
    assert (
        await app.post(f"{PATH}/of_nope", keys["full_access"], json={**body, "id": "of_nope"})
    ).status_code == 404


async def test_update_records_the_update_requests_origin(app: TestApp) -> None:
    keys = await seed(app)
    f = await accepted(app, keys, **{"chargebee-request-origin-ip": "198.51.100.1"})
    r = await app.post(
        f"{PATH}/{f['id']}",
        keys["full_access"],
        json={"id": f["id"], "status": "completed"},
        headers={"chargebee-request-origin-device": "iPhone"},
    )
    assert r.status_code == 200
    (event,) = await app.fetch("SELECT origin FROM offer_events WHERE type = 'fulfilled'")
    assert event["origin"] == {"ip": None, "user": None, "device": "iPhone"}
