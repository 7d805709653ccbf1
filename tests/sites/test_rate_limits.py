"""Per-site ``rate_limit_per_minute``: past it 429 ``api_request_limit_exceeded`` with
Retry-After, counted across processes (two apps on one database here), other sites unaffected,
and no limit at all when unset."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.support.app import TestApp, running_app

FULFILLMENT = "/api/v2/offer_fulfillments/of_missing"


async def clear_of_the_minute_boundary(app: TestApp) -> None:
    """Windows are whole minutes of the database's clock: start early enough in one that the
    requests below all land in it."""
    rows = await app.fetch("SELECT extract(second FROM now())::float8 AS s")
    if rows[0]["s"] > 50:
        await asyncio.sleep(61 - rows[0]["s"])


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["type"] == "operation_failed"
    assert body["api_error_code"] == "api_request_limit_exceeded"
    assert body["http_status_code"] == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_past_the_limit_requests_get_429_across_processes(db_url: str) -> None:
    async with running_app(db_url) as one, running_app(db_url) as other:
        limited = await one.create_site("acme", rate_limit_per_minute=3)
        free = await one.create_site("beta")
        await clear_of_the_minute_boundary(one)

        # Three requests of the site, over two processes: all within the limit.
        for app in (one, other, one):
            r = await app.get(FULFILLMENT, limited["full_access"])
            assert r.status_code == 404, r.text
        # The fourth, in either process, is over it; and so is every one after it this minute.
        assert_limited(await other.get(FULFILLMENT, limited["full_access"]))
        assert_limited(await one.get(FULFILLMENT, limited["full_access"]))
        r = await one.post(
            "/api/v2/personalized_offers", limited["publishable"], json={"customer_id": "c"}
        )
        assert_limited(r)

        # Another site is not affected, and a site without a limit is never limited.
        for _ in range(10):
            r = await other.get(FULFILLMENT, free["full_access"])
            assert r.status_code == 404, r.text

        metrics = (await one.client.get("/metrics")).text
        match = re.search(r'^offerd_rate_limited_total\{site="acme"\} (\S+)$', metrics, re.M)
        assert match and float(match.group(1)) >= 2
        assert 'offerd_rate_limited_total{site="beta"}' not in metrics


async def test_the_setting_is_validated(db_url: str) -> None:
    async with running_app(db_url) as app:
        for bad in (0, -5, "many", 1.5):
            r = await app.admin(
                "PUT", "/sites/acme", {"name": "Acme", "settings": {"rate_limit_per_minute": bad}}
            )
            assert r.status_code == 400, (bad, r.text)
            assert "rate_limit_per_minute" in r.text
