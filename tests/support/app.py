"""The real app on a real database, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from offerd.app import create_app
from offerd.edge.deps import Services
from offerd.settings import Settings

ADMIN_TOKEN = "test-admin-token"
# a fixed Fernet key (32 bytes, url-safe Base64) for stored secrets; conftest exports it to the
# offerd processes tests start, which have an external database and so need one
SECRET_KEY = "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="


class MovableClock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta | float) -> None:
        self.offset += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def basic(key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "admin_token": ADMIN_TOKEN,
        "auth_cache_seconds": 0.0,
        "db_pool_min": 1,
        "db_pool_max": 30,
        "allow_private_destinations": True,
        "job_lease_seconds": 5.0,
        "log_level": "warning",
        "secret_key": SECRET_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class TestApp:
    __test__ = False

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, clock: MovableClock) -> None:
        self.app = app
        self.client = client
        self.clock = clock

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc

    async def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return await self.client.request(
            method,
            "/admin/v1" + path,
            json=json,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    async def create_site(
        self, site: str = "acme", *, brand: dict[str, str] | None = None, **settings: Any
    ) -> dict[str, str]:
        body: dict[str, Any] = {"name": site.title(), "settings": settings}
        if brand:
            body["brand"] = brand
        r = await self.admin("PUT", f"/sites/{site}", body)
        assert r.status_code in (200, 201), r.text
        keys = {}
        for kind in ("full_access", "publishable"):
            r = await self.admin("POST", f"/sites/{site}/api_keys", {"kind": kind, "name": kind})
            assert r.status_code == 201, r.text
            keys[kind] = r.json()["key"]
        return keys

    async def put(self, site: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.admin("PUT", f"/sites/{site}/{path}", body)
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result

    async def post(
        self,
        path: str,
        key: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            path, json=json, data=data, headers={**basic(key), **(headers or {})}
        )

    async def get(
        self, path: str, key: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.get(path, headers={**basic(key), **(headers or {})})

    async def fetch(self, query: str, *params: Any) -> list[dict[str, Any]]:
        async with self.services.db.connection() as conn:
            cur = await conn.execute(query, params or None)  # type: ignore[arg-type]
            return [dict(r) for r in await cur.fetchall()]


@asynccontextmanager
async def running_app(db_url: str, **overrides: Any) -> AsyncIterator[TestApp]:
    clock = MovableClock()
    app = create_app(test_settings(db_url, **overrides), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield TestApp(app, client, clock)
