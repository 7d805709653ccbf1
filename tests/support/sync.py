"""Synchronous setup over the admin API, for tests that drive a live server from threads or
other processes (the SDKs are synchronous)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import ADMIN_TOKEN
from tests.support.catalog import NOW_TERM, offer


class Admin:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url + "/admin/v1",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.put(path, json=body)
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result

    def key(self, site: str, kind: str) -> str:
        r = self.http.post(f"/sites/{site}/api_keys", json={"kind": kind, "name": kind})
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


def seed(base_url: str, site: str = "acme", **site_settings: Any) -> dict[str, str]:
    """The same catalog as tests.support.catalog.seed, over HTTP."""
    admin = Admin(base_url)
    admin.put(f"/sites/{site}", {"name": site.title(), "settings": site_settings})
    admin.put(
        f"/sites/{site}/plans/basic",
        {"name": "Basic", "price": 1500, "currency": "USD", "period_unit": "month"},
    )
    admin.put(
        f"/sites/{site}/plans/pro",
        {"name": "Pro", "price": 4900, "currency": "USD", "period_unit": "month"},
    )
    admin.put(
        f"/sites/{site}/coupons/SAVE20",
        {
            "name": "20% off",
            "discount_type": "percentage",
            "discount_percentage": 20,
            "duration_type": "forever",
        },
    )
    admin.put(f"/sites/{site}/customers/cus_1", {"email": "ada@example.com", "first_name": "Ada"})
    admin.put(
        f"/sites/{site}/subscriptions/sub_1",
        {
            "customer_id": "cus_1",
            "plan_id": "basic",
            "status": "active",
            "current_term_start": NOW_TERM - 86400,
            "current_term_end": NOW_TERM + 29 * 86400,
        },
    )
    admin.put(f"/sites/{site}/offers/stay", offer())
    return {kind: admin.key(site, kind) for kind in ("full_access", "publishable")}
