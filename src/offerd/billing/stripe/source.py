"""Stripe as a ``MirrorSource``: pages of prices, coupons, customers and subscriptions, and
one object by id, through stripe-python's ``StripeClient`` (the ``_async`` list and retrieve
calls). Subscriptions are listed with ``status=all`` (cancelled ones included: decisioning and
saves need to know a subscription ended) and their discounts expanded (they name the coupon).

Pages are read with the SDK's ``raw_request_async`` (same client, authentication, API version
and error classes) and used as the JSON they are: building the SDK's typed objects for a page
of 100 subscriptions, only to turn them back into dictionaries, took three quarters of an
import's time (cProfile: 7.3 s of 9.8 s for 3,000 subscriptions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe

from offerd.billing.mirror.objects import Gone, Kind, Page, Row, Unmirrorable
from offerd.billing.stripe.mapping import row_of
from offerd.billing.stripe.provider import translate


class StripeSource:
    name = "stripe"

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    _PATHS: dict[str, str] = {
        "plan": "/v1/prices",
        "coupon": "/v1/coupons",
        "customer": "/v1/customers",
        "subscription": "/v1/subscriptions",
    }

    def _service(self, kind: Kind) -> Any:
        v1 = self.client.v1
        return {
            "plan": v1.prices,
            "coupon": v1.coupons,
            "customer": v1.customers,
            "subscription": v1.subscriptions,
        }[kind]

    async def page(self, kind: Kind, cursor: str | None, limit: int) -> Page:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["starting_after"] = cursor
        if kind == "subscription":
            params["status"] = "all"
            params["expand"] = ["data.discounts"]
        try:
            response = await self.client.raw_request_async("get", self._PATHS[kind], **params)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        listing = response.data
        objects: list[dict[str, Any]] = listing["data"]
        rows: list[Row] = []
        skipped: list[Unmirrorable] = []
        for obj in objects:
            row = row_of(kind, obj)
            if isinstance(row, Unmirrorable):
                skipped.append(row)
            elif not isinstance(row, Gone):
                rows.append(row)
        last = objects[-1]["id"] if objects else None
        return Page(rows, last if listing.get("has_more") else None, skipped)

    async def fetch(self, kind: Kind, oid: str) -> Row | Gone | Unmirrorable:
        options = {"expand": ["discounts"]} if kind == "subscription" else None
        try:
            obj = await self._service(kind).retrieve_async(oid, options)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return Gone(kind, oid)
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        raw: Mapping[str, Any] = obj.to_dict()
        return row_of(kind, raw)
