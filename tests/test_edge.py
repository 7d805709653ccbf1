"""Every error in Chargebee's shape: unknown paths, wrong methods, content types, body limits,
unexpected exceptions and a database that went away."""

from __future__ import annotations

import logging

import psycopg
import pytest

from tests.support.app import TestApp, basic
from tests.support.asgi import http_scope
from tests.support.catalog import seed
from tests.support.pg import Cluster

ERROR_KEYS = {"message", "type", "api_error_code", "error_code", "http_status_code"}


def assert_error(body: dict[str, object], status: int, code: str) -> None:
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"param"}
    assert body["http_status_code"] == status
    assert body["api_error_code"] == code


async def test_unknown_path_and_trailing_slash(app: TestApp) -> None:
    for path in ("/api/v2/nope", "/api/v2/personalized_offers/", "/"):
        r = await app.client.post(path)
        assert r.status_code == 404, path
        assert_error(r.json(), 404, "resource_not_found")


async def test_wrong_method(app: TestApp) -> None:
    for method, path in (
        ("GET", "/api/v2/offer_fulfillments"),
        ("GET", "/api/v2/personalized_offers"),
        ("DELETE", "/api/v2/offer_fulfillments/of_1"),
        ("PUT", "/api/v2/offer_events"),
    ):
        r = await app.client.request(method, path)
        assert r.status_code == 405, (method, path)
        assert_error(r.json(), 405, "http_method_not_supported")
        assert r.json()["type"] == "invalid_request"


async def test_content_types(app: TestApp) -> None:
    keys = await seed(app)
    headers = basic(keys["publishable"])
    path = "/api/v2/personalized_offers"
    ok = await app.client.post(
        path,
        content=b'{"customer_id":"cus_1"}',
        headers={**headers, "content-type": "application/json;charset=UTF-8"},
    )
    assert ok.status_code == 200
    for content_type, content in (
        ("text/plain", b"customer_id=cus_1"),
        ("application/xml", b"<x/>"),
        ("application/json", b"[]"),
        ("application/json", b'{"customer_id": '),
    ):
        r = await app.client.post(
            path, content=content, headers={**headers, "content-type": content_type}
        )
        assert r.status_code == 400, content_type
        assert_error(r.json(), 400, r.json()["api_error_code"])
        assert r.json()["type"] == "invalid_request"


async def test_node_sdk_style_get_with_form_content_type_and_empty_query(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.client.get(
        "/api/v2/offer_fulfillments/of_nope?",
        headers={
            **basic(keys["full_access"]),
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        },
    )
    assert r.status_code == 404
    assert_error(r.json(), 404, "resource_not_found")


async def test_body_over_one_mib(app: TestApp) -> None:
    keys = await seed(app)
    big = b'{"customer_id": "cus_1", "custom": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    r = await app.client.post(
        "/api/v2/personalized_offers",
        content=big,
        headers={**basic(keys["publishable"]), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert_error(r.json(), 413, "request_too_large")


async def test_body_over_the_limit_without_content_length(app: TestApp) -> None:
    keys = await seed(app)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"a" * 65536

    r = await app.client.post(
        "/api/v2/personalized_offers",
        content=chunks(),
        headers={**basic(keys["publishable"]), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert_error(r.json(), 413, "request_too_large")


async def test_unhandled_exception_is_a_500_without_a_stack_trace(app: TestApp) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.app.add_api_route("/boom", boom)
    r = await app.client.get("/boom")
    assert r.status_code == 500
    body = r.json()
    assert_error(body, 500, "internal_error")
    assert body["type"] == "operation_failed"
    assert "secret" not in r.text and "Traceback" not in r.text


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(
    app: TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    """The body never arrives (the client disconnected): no 500 is written to nobody, no error
    is logged, and the metrics count it as 499."""
    keys = await seed(app)
    auth = basic(keys["publishable"])["authorization"]
    scope = http_scope(
        "POST",
        "/api/v2/personalized_offers",
        [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"authorization", auth.encode()),
        ],
    )
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO):
        await app.app(scope, receive, send)
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = (await app.client.get("/metrics")).text
    assert 'route="/api/v2/personalized_offers",status="499"' in text


async def test_request_id_is_echoed_or_made(app: TestApp) -> None:
    r = await app.client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await app.client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32


async def test_database_connections_killed_is_503_then_recovers(
    app: TestApp, cluster: Cluster, db_url: str
) -> None:
    keys = await seed(app)
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(cluster.admin_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
    statuses = []
    for _ in range(40):
        r = await app.post(
            "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus_1"}
        )
        statuses.append(r.status_code)
        if r.status_code == 503:
            assert_error(r.json(), 503, "db_connection_failure")
            assert r.headers["retry-after"] == "1"
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    assert statuses[-1] == 200
