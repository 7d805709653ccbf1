"""Chargebee Billing as a ``MirrorSource``: pages of item prices (plans only), coupons,
customers and subscriptions (every status), and one object by id, through the ``chargebee``
SDK; ``offset`` is the cursor (Chargebee's ``next_offset``)."""

from __future__ import annotations

from typing import Any

from chargebee import Chargebee

from offerd.billing.chargebee.client import NotFoundAtChargebee, call
from offerd.billing.chargebee.mapping import row_of
from offerd.billing.mirror.objects import Gone, Kind, Page, Row, Unmirrorable

_ATTRS: dict[str, str] = {
    "plan": "item_price",
    "coupon": "coupon",
    "customer": "customer",
    "subscription": "subscription",
}


class ChargebeeSource:
    name = "chargebee"

    def __init__(self, client: Chargebee) -> None:
        self.client = client

    def _resource(self, kind: Kind) -> Any:
        return {
            "plan": self.client.ItemPrice,
            "coupon": self.client.Coupon,
            "customer": self.client.Customer,
            "subscription": self.client.Subscription,
        }[kind]

    async def page(self, kind: Kind, cursor: str | None, limit: int) -> Page:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["offset"] = cursor
        if kind == "plan":
            params["item_type"] = {"is": "plan"}
        got = await call(self._resource(kind).list(params))
        rows: list[Row] = []
        skipped: list[Unmirrorable] = []
        for entry in got.list:
            row = row_of(kind, getattr(entry, _ATTRS[kind]).raw_data)
            if isinstance(row, Unmirrorable):
                skipped.append(row)
            elif not isinstance(row, Gone):
                rows.append(row)
        return Page(rows, got.next_offset or None, skipped)

    async def fetch(self, kind: Kind, oid: str) -> Row | Gone | Unmirrorable:
        try:
            got = await call(self._resource(kind).retrieve(oid))
        except NotFoundAtChargebee:
            return Gone(kind, oid)
        return row_of(kind, getattr(got, _ATTRS[kind]).raw_data)
