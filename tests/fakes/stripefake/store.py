"""The fake Stripe account's state and what each call does to it.

One lock guards everything: the HTTP handlers and the test's own calls (seeding, reading
``history``) run in different threads. A change to a subscription is built on a copy and
committed only once every parameter has been checked, so a refused call changes nothing; each
commit bumps the subscription's version, appends to its history and records a webhook event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes.stripefake import objects as o
from tests.fakes.stripefake.params import (
    StripeError,
    boolean,
    integer,
    invalid,
    missing,
    no_such,
    one_of,
)

API_VERSION = "2026-10-28.endive"  # what stripe-python 16 pins
KINDS = ("customer", "product", "price", "coupon", "subscription")
INTERVAL_SECONDS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}
ACTIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")


@dataclass(frozen=True)
class Change:
    """One committed change to a subscription, as the fake's test-facing history shows it."""

    version: int
    action: str  # update | cancel | pause | resume
    params: dict[str, Any]
    request_id: str | None
    idempotency_key: str | None
    at: int


@dataclass
class Ctx:
    """Who asked: carried into history and the event's ``request``."""

    request_id: str | None = None
    idempotency_key: str | None = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # discounts not yet committed


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return out


class Store:
    def __init__(self, now: Callable[[], int] | None = None) -> None:
        self.lock = threading.RLock()
        self.now: Callable[[], int] = now or (lambda: int(time.time()))
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self._order: dict[str, list[str]] = {k: [] for k in KINDS}  # insertion order
        self._position: dict[str, dict[str, int]] = {k: {} for k in KINDS}
        self.discounts: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.histories: dict[str, list[Change]] = {}
        self.events: list[dict[str, Any]] = []

    # --- objects ---------------------------------------------------------------------------

    def add(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if obj["id"] in self.objects[kind]:
                raise StripeError(
                    400,
                    f"A {kind} with id {obj['id']} already exists.",
                    code="resource_already_exists",
                    param="id",
                )
            self.objects[kind][obj["id"]] = obj
            self._position[kind][obj["id"]] = len(self._order[kind])
            self._order[kind].append(obj["id"])
            self.versions[obj["id"]] = 1
            return obj

    def get(
        self, kind: str, oid: str, *, param: str | None = "id", status: int = 404
    ) -> dict[str, Any]:
        obj = self.objects[kind].get(oid)
        if obj is None:
            raise no_such(kind, oid, param, status=status)
        return obj

    def page(
        self,
        kind: str,
        limit: int,
        starting_after: str | None,
        keep: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, ``limit`` objects after ``starting_after``; and whether there are more."""
        order, objs = self._order[kind], self.objects[kind]
        start = len(order) - 1
        if starting_after is not None:
            if starting_after not in self._position[kind]:
                raise no_such(kind, starting_after, "starting_after", status=400)
            start = self._position[kind][starting_after] - 1
        found: list[dict[str, Any]] = []
        for i in range(start, -1, -1):
            obj = objs[order[i]]
            if keep(obj):
                if len(found) == limit:
                    return found, True
                found.append(obj)
        return found, False

    def render_subscription(self, sub: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        if "discounts" not in expand:
            return sub
        out = dict(sub)
        out["discounts"] = [self.discounts[d] for d in sub["discounts"]]
        return out

    # --- commits and events ----------------------------------------------------------------

    def _commit(
        self,
        old: dict[str, Any],
        new: dict[str, Any],
        action: str,
        params: dict[str, Any],
        ctx: Ctx,
        event_type: str,
    ) -> dict[str, Any]:
        sid = new["id"]
        for effect in ctx.after_commit:
            effect()
        self.objects["subscription"][sid] = new
        self.versions[sid] += 1
        self.histories.setdefault(sid, []).append(
            Change(
                self.versions[sid], action, params, ctx.request_id, ctx.idempotency_key, self.now()
            )
        )
        previous = {k: old[k] for k in new if old.get(k) != new[k]}
        self.emit(event_type, new, previous=previous, ctx=ctx)
        return new

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        ctx: Ctx | None = None,
    ) -> None:
        ctx = ctx or Ctx()
        self.events.append(
            o.event(
                event_type,
                _copy(obj),
                created=self.now(),
                previous=previous,
                request_id=ctx.request_id,
                idempotency_key=ctx.idempotency_key,
                api_version=API_VERSION,
            )
        )

    def delete_customer(self, cid: str, ctx: Ctx) -> dict[str, Any]:
        """Stripe's ``DELETE /v1/customers/{id}``: its live subscriptions are cancelled at once
        and the customer reads as ``{"id", "object", "deleted": true}`` from then on."""
        with self.lock:
            old = self.get("customer", cid)
            if old.get("deleted"):
                raise no_such("customer", cid, "id")
            for sub in list(self.objects["subscription"].values()):
                if sub["customer"] == cid and sub["status"] != "canceled":
                    new, now = _copy(sub), self.now()
                    new.update(status="canceled", canceled_at=now, ended_at=now, cancel_at=None)
                    self._commit(sub, new, "cancel", {}, ctx, "customer.subscription.deleted")
            gone = {"id": cid, "object": "customer", "deleted": True}
            self.objects["customer"][cid] = gone
            self.emit("customer.deleted", old, ctx=ctx)
            return gone

    # --- subscriptions ---------------------------------------------------------------------

    def update_subscription(self, sid: str, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        old = self.get("subscription", sid)
        if old["status"] == "canceled" and set(p) - {"metadata", "cancellation_details", "expand"}:
            raise StripeError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        new, now = _copy(old), self.now()
        one_of(p, "proration_behavior", ("always_invoice", "create_prorations", "none"))
        integer(p, "proration_date")
        if "discounts" in p:
            new["discounts"] = self.discounts_for(new, p["discounts"], now, ctx, "discounts")
        if "items" in p:
            self.apply_items(new, p["items"], now, "items")
        if "pause_collection" in p:
            new["pause_collection"] = self._pause_collection(p["pause_collection"])
        if "trial_end" in p:
            self._trial_end(new, p["trial_end"], now)
        flag = boolean(p, "cancel_at_period_end")
        if flag is not None:
            new["cancel_at_period_end"] = flag
            new["cancel_at"] = (
                max(i["current_period_end"] for i in new["items"]["data"]) if flag else None
            )
        if "metadata" in p:
            new["metadata"] = _merge_metadata(new["metadata"], p["metadata"])
        if "cancellation_details" in p:
            details = p["cancellation_details"] or {}
            new["cancellation_details"] = {**new["cancellation_details"], **details}
        return self._commit(old, new, "update", p, ctx, "customer.subscription.updated")

    def discounts_for(
        self, sub: dict[str, Any], wanted: Any, now: int, ctx: Ctx, name: str
    ) -> list[str]:
        if wanted == "":
            return []
        ids: list[str] = []
        for i, entry in enumerate(wanted):
            if set(entry) - {"coupon", "discount"} or len(entry) != 1:
                raise invalid(
                    f"{name}[{i}]", f"Provide exactly one of coupon or discount in {name}[{i}]."
                )
            if "discount" in entry:
                if entry["discount"] not in sub["discounts"]:
                    raise no_such(
                        "discount", entry["discount"], f"{name}[{i}][discount]", status=400
                    )
                ids.append(entry["discount"])
                continue
            coupon = self.get("coupon", entry["coupon"], param=f"{name}[{i}][coupon]", status=400)
            if not coupon["valid"]:
                raise StripeError(
                    400,
                    f"Coupon expired: {coupon['id']}",
                    code="coupon_expired",
                    param=f"{name}[{i}][coupon]",
                )
            kept = [
                d for d in sub["discounts"] if self.discounts[d]["source"]["coupon"] == coupon["id"]
            ]
            if kept:
                ids.append(kept[0])
                continue
            disc = o.discount(coupon, sub=sub, now=now)
            ids.append(disc["id"])
            ctx.pending[disc["id"]] = disc
            ctx.after_commit.append(self._redeemer(disc, coupon))
        if len(set(ids)) != len(ids):
            raise invalid(name, "The same discount or coupon can't be applied more than once.")
        return ids

    def _redeemer(self, disc: dict[str, Any], coupon: dict[str, Any]) -> Callable[[], None]:
        def redeem() -> None:
            self.discounts[disc["id"]] = disc
            coupon["times_redeemed"] += 1

        return redeem

    def apply_items(self, sub: dict[str, Any], wanted: Any, now: int, name: str) -> None:
        """``items[i][id|price|quantity|deleted]`` onto ``sub`` (a copy); also used by the preview."""
        if wanted == "":
            raise invalid(name, f"Invalid array: {name}")
        items: list[dict[str, Any]] = sub["items"]["data"]
        for i, entry in enumerate(wanted):
            label = f"{name}[{i}]"
            qty = integer(entry, "quantity", label=f"{label}[quantity]")
            price = (
                self.get("price", entry["price"], param=f"{label}[price]", status=400)
                if entry.get("price")
                else None
            )
            if "id" in entry:
                matches = [it for it in items if it["id"] == entry["id"]]
                if not matches:
                    raise no_such("subscription_item", entry["id"], f"{label}[id]", status=400)
                item = matches[0]
                if boolean(entry, "deleted", label=f"{label}[deleted]"):
                    items.remove(item)
                    continue
            else:
                if price is None:
                    raise missing(f"{label}[price]")
                first = items[0] if items else None
                period = (
                    (first["current_period_start"], first["current_period_end"])
                    if first
                    else (now, now + INTERVAL_SECONDS[price["recurring"]["interval"]])
                )
                item = o.subscription_item(sub["id"], price, quantity=1, created=now, period=period)
                items.append(item)
            if price is not None:
                if price["currency"] != sub["currency"]:
                    raise invalid(
                        f"{label}[price]",
                        "All prices on a subscription must have the same currency.",
                    )
                item["price"], item["plan"] = dict(price), o.plan_of(price)
            if qty is not None:
                if qty < 0:
                    raise invalid(f"{label}[quantity]", "Invalid positive integer")
                item["quantity"] = qty
        if not items:
            raise StripeError(400, "A subscription must have at least one active plan.", param=name)
        prices = [it["price"]["id"] for it in items]
        if len(set(prices)) != len(prices):
            raise invalid(name, "Cannot add multiple subscription items with the same price.")

    def _pause_collection(self, value: Any) -> dict[str, Any] | None:
        if value == "":
            return None
        behavior = value.get("behavior")
        if behavior is None:
            raise missing("pause_collection[behavior]")
        one_of(
            value,
            "behavior",
            ("keep_as_draft", "mark_uncollectible", "void"),
            label="pause_collection[behavior]",
        )
        resumes_at = integer(value, "resumes_at", label="pause_collection[resumes_at]")
        return {"behavior": behavior, "resumes_at": resumes_at}

    def _trial_end(self, sub: dict[str, Any], value: Any, now: int) -> None:
        if value == "now":
            if sub["status"] == "trialing":
                sub["status"] = "active"
                for item in sub["items"]["data"]:
                    step = INTERVAL_SECONDS[item["price"]["recurring"]["interval"]]
                    item["current_period_start"], item["current_period_end"] = now, now + step
            sub["trial_end"] = now
            return
        end = integer({"trial_end": value}, "trial_end")
        assert end is not None
        if end <= now:
            raise invalid(
                "trial_end", "Invalid timestamp: must be an integer Unix timestamp in the future."
            )
        if sub["status"] not in ("active", "trialing"):
            raise StripeError(
                400,
                f"A subscription with status {sub['status']} can't be given a trial.",
                param="trial_end",
            )
        sub["status"], sub["trial_end"] = "trialing", end
        sub["trial_start"] = sub["trial_start"] or now
        for item in sub["items"]["data"]:
            item["current_period_end"] = end

    def cancel_subscription(self, sid: str, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        old = self.get("subscription", sid)
        if old["status"] == "canceled":  # Stripe answers as if it were gone
            raise no_such("subscription", sid, "id")
        boolean(p, "invoice_now")
        boolean(p, "prorate")
        new, now = _copy(old), self.now()
        new.update(status="canceled", canceled_at=now, ended_at=now, cancel_at=None)
        new["cancellation_details"] = {
            **new["cancellation_details"],
            **(p.get("cancellation_details") or {}),
            "reason": "cancellation_requested",
        }
        return self._commit(old, new, "cancel", p, ctx, "customer.subscription.deleted")

    def pause_subscription(self, sid: str, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        old = self.get("subscription", sid)
        if old["status"] not in ("active", "trialing"):
            raise StripeError(400, f"A subscription with status {old['status']} can't be paused.")
        one_of(p, "invoicing_behavior", ("invoice", "pending_invoice_item"))
        new = _copy(old)
        new.update(status="paused", pause_collection=None)
        return self._commit(old, new, "pause", p, ctx, "customer.subscription.paused")

    def resume_subscription(self, sid: str, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        old = self.get("subscription", sid)
        if old["status"] != "paused":
            raise StripeError(
                400, f"Only a paused subscription can be resumed; this one is {old['status']}."
            )
        anchor = (p.get("billing_cycle_anchor") or {}).get("type", "now")
        if anchor not in ("now", "unchanged"):
            raise invalid(
                "billing_cycle_anchor[type]",
                "Invalid billing_cycle_anchor[type]: must be now or unchanged",
            )
        new, now = _copy(old), self.now()
        new["status"] = "active"
        if anchor == "now":
            new["billing_cycle_anchor"] = now
            for item in new["items"]["data"]:
                step = INTERVAL_SECONDS[item["price"]["recurring"]["interval"]]
                item["current_period_start"], item["current_period_end"] = now, now + step
        return self._commit(old, new, "resume", p, ctx, "customer.subscription.resumed")


def _merge_metadata(current: dict[str, str], given: Any) -> dict[str, str]:
    if given == "":
        return {}
    merged = dict(current)
    for key, value in given.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
