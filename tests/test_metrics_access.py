"""/metrics behind OFFERD_METRICS_TOKEN (open when unset), and the database pool gauge."""

from __future__ import annotations

import re

from tests.support.app import running_app

TOKEN = "scrape-secret"


async def test_metrics_need_the_token_when_one_is_set(db_url: str) -> None:
    async with running_app(db_url, metrics_token=TOKEN) as app:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            r = await app.client.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            body = r.json()
            assert body["api_error_code"] == "api_authentication_failed"
            assert "offerd_http_request" not in r.text
        r = await app.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        assert "offerd_http_request_duration_seconds" in r.text


async def test_metrics_are_open_without_a_token(db_url: str) -> None:
    async with running_app(db_url) as app:
        assert (await app.client.get("/metrics")).status_code == 200


def gauge(text: str, state: str) -> float:
    match = re.search(rf'^offerd_db_pool_connections\{{state="{state}"\}} (\S+)$', text, re.M)
    assert match, text
    return float(match.group(1))


async def test_the_pool_gauge_shows_connections_in_use_at_scrape_time(db_url: str) -> None:
    async with running_app(db_url, db_pool_max=7) as app:
        async with app.services.db.connection(), app.services.db.connection():
            text = (await app.client.get("/metrics")).text
            assert gauge(text, "in_use") >= 2
            assert gauge(text, "max") == 7
        text = (await app.client.get("/metrics")).text
        assert gauge(text, "in_use") == 0
        assert gauge(text, "idle") >= 2
        assert gauge(text, "waiting") == 0
