"""The fake site's objects and the subscription state machine, shaped like Chargebee's.

Everything here runs under the caller's lock (``FakeChargebee._lock``). Objects are plain dicts
in Chargebee's documented shape with null attributes left out, as the API does. Every change to
a subscription bumps ``resource_version``/``updated_at``, is appended to its history (so a test
can assert a change was applied exactly once) and queues the events Chargebee would send.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fakes.chargebee import forms
from tests.fakes.chargebee.errors import bad_state, missing, not_found, wrong

Obj = dict[str, Any]
STATUSES = ("future", "in_trial", "active", "non_renewing", "paused", "cancelled")
_UNIT_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}
_MONTHS = {"day": 1 / 30, "week": 7 / 30, "month": 1.0, "year": 12.0}


def period_seconds(period: int, unit: str) -> int:
    """A billing period's length (months as 30 days: the fake needs consistency, not calendars)."""
    return period * _UNIT_SECONDS[unit]


def prune(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if v is not None}


class FakeClock:
    """The fake's own time, in Unix seconds; tests move it (e.g. to expire idempotency keys)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def advance(self, seconds: int) -> int:
        self.now += seconds
        return self.now

    def set(self, now: int) -> None:
        self.now = now


class Store:
    def __init__(self, site: str, clock: FakeClock) -> None:
        self.site = site
        self.clock = clock
        self.customers: dict[str, Obj] = {}
        self.item_prices: dict[str, Obj] = {}
        self.coupons: dict[str, Obj] = {}
        self.subscriptions: dict[str, Obj] = {}
        self.histories: dict[str, list[Obj]] = {}
        self.scheduled: dict[str, Obj] = {}  # end_of_term changes waiting for the term end
        self.events: list[Obj] = []
        self.generation = 0  # bumped on every write: list pages cache their sort by it
        self._ids = itertools.count(1)
        self._versions = itertools.count(1)

    # --- helpers -----------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def version(self) -> int:
        """Chargebee's resource_version is a millisecond-ish long that only grows."""
        return self.clock.now * 1000 + next(self._versions) % 1000

    def customer(self, ident: str, param: str | None = None) -> Obj:
        if ident not in self.customers:
            raise not_found("Customer", ident, param)
        return self.customers[ident]

    def subscription(self, ident: str, param: str | None = None) -> Obj:
        if ident not in self.subscriptions:
            raise not_found("Subscription", ident, param)
        return self.subscriptions[ident]

    def item_price(self, ident: str, param: str | None = None) -> Obj:
        if ident not in self.item_prices:
            raise not_found("Item price", ident, param)
        return self.item_prices[ident]

    def coupon(self, ident: str, param: str | None = None) -> Obj:
        if ident not in self.coupons:
            raise not_found("Coupon", ident, param)
        return self.coupons[ident]

    # --- seeding -------------------------------------------------------------------------------

    def seed_customer(self, ident: str | None = None, **fields: Any) -> Obj:
        now = self.clock.now
        ident = ident or self.new_id("cus")
        obj = {
            "id": ident,
            "first_name": "Test",
            "last_name": ident,
            "email": f"{ident}@example.com",
            "auto_collection": "on",
            "net_term_days": 0,
            "allow_direct_debit": False,
            "created_at": now,
            "taxability": "taxable",
            "updated_at": now,
            "pii_cleared": "active",
            "channel": "web",
            "resource_version": self.version(),
            "deleted": False,
            "object": "customer",
            "card_status": "no_card",
            "promotional_credits": 0,
            "refundable_credits": 0,
            "excess_payments": 0,
            "unbilled_charges": 0,
            "preferred_currency_code": "USD",
            "mrr": 0,
        }
        obj.update(fields)
        self.customers[ident] = prune(obj)
        self.generation += 1
        return self.customers[ident]

    def seed_item_price(
        self,
        ident: str,
        price: int,
        *,
        currency_code: str = "USD",
        period: int = 1,
        period_unit: str = "month",
        item_type: str = "plan",
        item_id: str | None = None,
        status: str = "active",
        **fields: Any,
    ) -> Obj:
        now = self.clock.now
        obj = {
            "id": ident,
            "name": ident,
            "item_family_id": "fam",
            "item_id": item_id or ident,
            "status": status,
            "external_name": ident,
            "pricing_model": "per_unit" if item_type == "addon" else "flat_fee",
            "price": price,
            "period": period,
            "period_unit": period_unit,
            "currency_code": currency_code,
            "free_quantity": 0,
            "is_taxable": True,
            "created_at": now,
            "updated_at": now,
            "resource_version": self.version(),
            "item_type": item_type,
            "object": "item_price",
            "deleted": False,
        }
        obj.update(fields)
        self.item_prices[ident] = prune(obj)
        self.generation += 1
        return self.item_prices[ident]

    def seed_coupon(
        self,
        ident: str,
        *,
        discount_type: str = "percentage",
        discount_percentage: float | None = None,
        discount_amount: int | None = None,
        currency_code: str | None = None,
        duration_type: str = "forever",
        duration_month: int | None = None,
        status: str = "active",
        **fields: Any,
    ) -> Obj:
        if discount_type == "percentage" and discount_percentage is None:
            discount_percentage = 10.0
        if discount_type == "fixed_amount":
            discount_amount = discount_amount if discount_amount is not None else 100
            currency_code = currency_code or "USD"
        now = self.clock.now
        obj = {
            "id": ident,
            "name": ident,
            "discount_type": discount_type,
            "discount_percentage": discount_percentage if discount_type == "percentage" else None,
            "discount_amount": discount_amount if discount_type == "fixed_amount" else None,
            "currency_code": currency_code,
            "duration_type": duration_type,
            "duration_month": duration_month,
            "period": duration_month if duration_type == "limited_period" else None,
            "period_unit": "month" if duration_type == "limited_period" else None,
            "status": status,
            "apply_discount_on": "not_applicable",
            "apply_on": "invoice_amount",
            "created_at": now,
            "updated_at": now,
            "resource_version": self.version(),
            "redemptions": 0,
            "object": "coupon",
            "deleted": False,
        }
        obj.update(fields)
        self.coupons[ident] = prune(obj)
        self.generation += 1
        return self.coupons[ident]

    def seed_subscription(
        self,
        ident: str | None = None,
        *,
        customer_id: str | None = None,
        items: Iterable[tuple[str, int]] | str = "",
        status: str = "active",
        trial_end: int | None = None,
        coupon_ids: Iterable[str] = (),
        current_term_start: int | None = None,
        pause_date: int | None = None,
        resume_date: int | None = None,
        created_at: int | None = None,
        **fields: Any,
    ) -> Obj:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = self.clock.now
        ident = ident or self.new_id("sub")
        coupon_ids = list(coupon_ids)
        for c in coupon_ids:
            self.coupon(c)
        if customer_id is None:
            customer_id = self.seed_customer()["id"]
        self.customer(customer_id)
        pairs = [(items, 1)] if isinstance(items, str) else list(items)
        if not pairs or pairs == [("", 1)]:
            raise ValueError("a subscription needs at least one item price")
        sub_items = [self._sub_item(self.item_price(ip), qty) for ip, qty in pairs]
        plan = self.item_prices[pairs[0][0]]
        length = period_seconds(plan["period"], plan["period_unit"])
        start = current_term_start if current_term_start is not None else now
        sub: Obj = {
            "id": ident,
            "billing_period": plan["period"],
            "billing_period_unit": plan["period_unit"],
            "customer_id": customer_id,
            "status": status,
            "current_term_start": start,
            "current_term_end": start + length,
            "next_billing_at": start + length,
            "created_at": created_at or now,
            "started_at": created_at or now,
            "activated_at": start,
            "updated_at": now,
            "has_scheduled_changes": False,
            "channel": "web",
            "resource_version": self.version(),
            "deleted": False,
            "object": "subscription",
            "currency_code": plan["currency_code"],
            "subscription_items": sub_items,
            "coupons": [
                {"coupon_id": c, "applied_count": 0, "object": "coupon"} for c in coupon_ids
            ],
            "due_invoices_count": 0,
            "auto_collection": "on",
            "exchange_rate": 1.0,
            "base_currency_code": plan["currency_code"],
        }
        if status == "in_trial":
            trial_end = trial_end or now + 14 * 86_400
            sub.update(
                trial_start=start,
                trial_end=trial_end,
                current_term_end=trial_end,
                next_billing_at=trial_end,
                activated_at=None,
            )
        elif status == "future":
            sub.update(
                start_date=start,
                activated_at=None,
                current_term_start=None,
                current_term_end=None,
                next_billing_at=start,
            )
        elif status == "non_renewing":
            sub.update(cancelled_at=sub["current_term_end"], next_billing_at=None)
        elif status == "cancelled":
            sub.update(
                cancelled_at=now,
                current_term_start=None,
                current_term_end=None,
                next_billing_at=None,
            )
        elif status == "paused":
            sub.update(pause_date=pause_date or now, resume_date=resume_date, next_billing_at=None)
        if pause_date is not None and status != "paused":
            sub["pause_date"] = pause_date
        sub.update(fields)
        self._finish(sub)
        self.subscriptions[ident] = sub
        self.generation += 1
        self.histories.setdefault(ident, [])
        return sub

    def _sub_item(self, price: Obj, quantity: int, unit_price: int | None = None) -> Obj:
        unit = price["price"] if unit_price is None else unit_price
        return {
            "item_price_id": price["id"],
            "item_type": price["item_type"],
            "quantity": quantity,
            "unit_price": unit,
            "amount": unit * quantity,
            "free_quantity": 0,
            "object": "subscription_item",
        }

    # --- amounts ------------------------------------------------------------------------------

    def discount(self, sub: Obj, subtotal: int) -> list[tuple[Obj, int]]:
        """The coupons that apply to the next invoice and what each takes off (in order)."""
        taken: list[tuple[Obj, int]] = []
        left = subtotal
        for applied in sub.get("coupons", []):
            coupon = self.coupons[applied["coupon_id"]]
            if coupon["duration_type"] == "one_time" and applied["applied_count"] > 0:
                continue
            if coupon["discount_type"] == "percentage":
                off = round(left * coupon["discount_percentage"] / 100)
            else:
                off = min(left, coupon["discount_amount"])
            taken.append((coupon, off))
            left -= off
        return taken

    def _finish(self, sub: Obj) -> None:
        """Derived fields: the items' amounts and the monthly recurring revenue after discounts."""
        for item in sub["subscription_items"]:
            item["amount"] = item["unit_price"] * item["quantity"]
        total = sum(i["amount"] for i in sub["subscription_items"])
        total -= sum(off for _, off in self.discount(sub, total))
        months = _MONTHS[sub["billing_period_unit"]] * sub["billing_period"]
        active = sub["status"] in ("active", "non_renewing")
        sub["mrr"] = round(total / months) if active else 0
        for key in [k for k, v in sub.items() if v is None]:
            del sub[key]

    def _changed(
        self, sub: Obj, op: str, params: Mapping[str, str], key: str | None, events: Iterable[str]
    ) -> None:
        self._finish(sub)
        sub["updated_at"] = self.clock.now
        self.generation += 1
        sub["resource_version"] = max(self.version(), sub["resource_version"] + 1)
        self.histories[sub["id"]].append(
            {
                "op": op,
                "at": self.clock.now,
                "resource_version": sub["resource_version"],
                "params": dict(params),
                "idempotency_key": key,
                "subscription": copy.deepcopy(sub),
            }
        )
        for event_type in events:
            self.events.append(self.event(event_type, sub))

    def event(self, event_type: str, sub: Obj) -> Obj:
        """An event as Chargebee posts it to a webhook, carrying the objects as they are now."""
        return self.make_event(
            event_type, {"subscription": sub, "customer": self.customers[sub["customer_id"]]}
        )

    def make_event(self, event_type: str, content: Mapping[str, Obj]) -> Obj:
        return {
            "id": self.new_id("ev"),
            "occurred_at": self.clock.now,
            "source": "api",
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "webhook_status": "scheduled",
            "content": copy.deepcopy(dict(content)),
        }

    def update(self, kind: str, ident: str, fields: Mapping[str, Any]) -> Obj:
        """An out-of-band change (Chargebee's UI, another integration) and its event."""
        if kind == "subscription":
            sub = self.subscription(ident)
            sub.update(fields)
            self._changed(sub, "external_update", {}, None, ["subscription_changed"])
            return sub
        objects, event_type = {
            "customer": (self.customers, "customer_changed"),
            "coupon": (self.coupons, "coupon_updated"),
            "item_price": (self.item_prices, "item_price_updated"),
        }[kind]
        if ident not in objects:
            raise KeyError(f"no {kind} {ident}")
        obj = objects[ident]
        obj.update(fields)
        obj["updated_at"] = self.clock.now
        obj["resource_version"] = max(self.version(), obj["resource_version"] + 1)
        self.generation += 1
        self.events.append(self.make_event(event_type, {kind: obj}))
        return obj

    def wrapped(self, sub: Obj) -> Obj:
        return {"subscription": sub, "customer": self.customers[sub["customer_id"]]}

    # --- the operations (subscription ops per DESIGN §7) -------------------------------------

    def update_for_items(self, sub_id: str, params: forms.Params, key: str | None) -> Obj:
        sub = self.subscription(sub_id)
        new, scheduled = self.updated(sub, params)
        if scheduled:
            self.scheduled[sub_id] = new
            sub["has_scheduled_changes"] = True
            self._changed(sub, "update_for_items", params, key, ["subscription_changes_scheduled"])
            return self.wrapped(sub)
        was_trial = sub["status"] == "in_trial"
        sub.clear()
        sub.update(new)
        events = ["subscription_changed"]
        if was_trial and sub["status"] == "active":
            events.append("subscription_activated")
        self._changed(sub, "update_for_items", params, key, events)
        return self.wrapped(sub)

    def updated(self, sub: Obj, params: forms.Params) -> tuple[Obj, bool]:
        """The subscription as ``update_for_items`` would leave it, and whether it waits for the
        term end. Shared with the estimate, which must describe exactly the same change."""
        if sub["status"] == "cancelled":
            raise bad_state(f"Subscription {sub['id']} is cancelled and cannot be updated")
        new = copy.deepcopy(sub)
        option = forms.choice(
            params, "change_option", ("immediately", "end_of_term", "specific_date"), None
        )
        if forms.boolean(params, "end_of_term"):
            option = "end_of_term"
        if option == "specific_date":
            at = forms.integer(params, "changes_scheduled_at", required=True)
            assert at is not None
            if at <= self.clock.now:
                raise wrong("changes_scheduled_at", "should be a future date")
        self._update_items(new, params)
        self._update_coupons(new, params)
        trial_end = forms.integer(params, "trial_end")
        if trial_end is not None:
            if new["status"] not in ("in_trial", "future"):
                raise bad_state(
                    "trial_end can be changed only for in_trial or future subscriptions"
                )
            if trial_end <= self.clock.now:  # backdated (or 0): the trial ends now
                length = period_seconds(new["billing_period"], new["billing_period_unit"])
                new.update(
                    status="active",
                    trial_end=self.clock.now,
                    activated_at=self.clock.now,
                    current_term_start=self.clock.now,
                    current_term_end=self.clock.now + length,
                    next_billing_at=self.clock.now + length,
                )
            else:
                new.update(
                    trial_end=trial_end, current_term_end=trial_end, next_billing_at=trial_end
                )
        return new, option in ("end_of_term", "specific_date")

    def _update_items(self, sub: Obj, params: forms.Params) -> None:
        ids = forms.indexed(params, "subscription_items[item_price_id]")
        if not ids:
            if forms.indexed(params, "subscription_items[quantity]"):
                raise missing("subscription_items[item_price_id][0]")
            return
        quantities = forms.indexed(params, "subscription_items[quantity]")
        prices = forms.indexed(params, "subscription_items[unit_price]")
        replace = forms.boolean(params, "replace_items_list")
        items = [] if replace else list(sub["subscription_items"])
        for index in sorted(ids):
            param = f"subscription_items[item_price_id][{index}]"
            price = self.item_price(ids[index], param)
            if price["status"] != "active":
                raise wrong(param, f"item price {price['id']} is {price['status']}")
            if price["currency_code"] != sub["currency_code"]:
                raise wrong(param, f"item price {price['id']} is not in {sub['currency_code']}")
            qty = (
                forms.integer(
                    {f"subscription_items[quantity][{index}]": quantities.get(index, "1")},
                    f"subscription_items[quantity][{index}]",
                )
                or 0
            )
            if qty < 1:
                raise wrong(f"subscription_items[quantity][{index}]", "should be at least 1")
            unit = int(prices[index]) if index in prices else None
            new_item = self._sub_item(price, qty, unit)
            same = [i for i, it in enumerate(items) if it["item_price_id"] == price["id"]]
            plans = [i for i, it in enumerate(items) if it["item_type"] == "plan"]
            if same:
                items[same[0]] = new_item
            elif price["item_type"] == "plan" and plans:
                items[plans[0]] = new_item  # one plan per subscription: the new one replaces it
            else:
                items.append(new_item)
        if not any(it["item_type"] == "plan" for it in items):
            raise wrong("subscription_items[item_price_id][0]", "a plan item price is required")
        sub["subscription_items"] = items
        plan = self.item_prices[
            next(it for it in items if it["item_type"] == "plan")["item_price_id"]
        ]
        sub["billing_period"], sub["billing_period_unit"] = plan["period"], plan["period_unit"]

    def _update_coupons(self, sub: Obj, params: forms.Params) -> None:
        ids = forms.indexed(params, "coupon_ids")
        replace = forms.boolean(params, "replace_coupon_list")
        if not ids and not replace:
            return
        coupons = [] if replace else list(sub.get("coupons", []))
        for index in sorted(ids):
            param = f"coupon_ids[{index}]"
            coupon = self.coupon(ids[index], param)
            if coupon["status"] != "active":
                raise wrong(param, f"coupon {coupon['id']} is {coupon['status']}")
            if coupon.get("currency_code") not in (None, sub["currency_code"]):
                raise wrong(param, f"coupon {coupon['id']} is not in {sub['currency_code']}")
            if all(c["coupon_id"] != coupon["id"] for c in coupons):
                coupons.append({"coupon_id": coupon["id"], "applied_count": 0, "object": "coupon"})
        sub["coupons"] = coupons

    def pause(self, sub_id: str, params: forms.Params, key: str | None) -> Obj:
        sub = self.subscription(sub_id)
        option = forms.choice(
            params, "pause_option", ("immediately", "end_of_term", "specific_date"), "immediately"
        )
        if sub["status"] not in ("active", "non_renewing"):
            raise bad_state(f"Subscription in {sub['status']} state cannot be paused")
        if sub.get("pause_date") is not None:
            raise bad_state("Subscription is already scheduled to pause")
        now = self.clock.now
        if option == "immediately":
            at = now
        elif option == "end_of_term":
            at = sub["current_term_end"]
        else:
            at = forms.integer(params, "pause_date", required=True) or 0
            if at <= now:
                raise wrong("pause_date", "should be a future date")
        resume = forms.integer(params, "resume_date")
        if resume is not None and resume <= at:
            raise wrong("resume_date", "should be after the pause date")
        sub.update(pause_date=at, resume_date=resume)
        if option == "immediately":
            sub.update(status="paused", next_billing_at=None)
            self._changed(sub, "pause", params, key, ["subscription_paused"])
        else:
            self._changed(sub, "pause", params, key, ["subscription_pause_scheduled"])
        return self.wrapped(sub)

    def resume(self, sub_id: str, params: forms.Params, key: str | None) -> Obj:
        sub = self.subscription(sub_id)
        option = forms.choice(
            params, "resume_option", ("immediately", "specific_date"), "immediately"
        )
        if sub["status"] != "paused":
            raise bad_state(f"Subscription in {sub['status']} state cannot be resumed")
        now = self.clock.now
        if option == "specific_date":
            at = forms.integer(params, "resume_date", required=True) or 0
            if at <= now:
                raise wrong("resume_date", "should be a future date")
            sub["resume_date"] = at
            self._changed(sub, "resume", params, key, ["subscription_resumption_scheduled"])
            return self.wrapped(sub)
        length = period_seconds(sub["billing_period"], sub["billing_period_unit"])
        sub.update(
            status="active",
            pause_date=None,
            resume_date=None,
            current_term_start=now,
            current_term_end=now + length,
            next_billing_at=now + length,
        )
        self._changed(sub, "resume", params, key, ["subscription_resumed"])
        return self.wrapped(sub)

    def change_term_end(self, sub_id: str, params: forms.Params, key: str | None) -> Obj:
        sub = self.subscription(sub_id)
        at = forms.integer(params, "term_ends_at", required=True)
        assert at is not None
        if sub["status"] not in ("in_trial", "active", "non_renewing"):
            raise bad_state(f"Subscription in {sub['status']} state: term end cannot be changed")
        if at <= self.clock.now:
            raise wrong("term_ends_at", "should be a future date")
        sub["current_term_end"] = at
        if sub["status"] == "in_trial":
            sub.update(trial_end=at, next_billing_at=at)
        elif sub["status"] == "active":
            sub["next_billing_at"] = at
        else:
            sub["cancelled_at"] = at
        if sub.get("pause_date") is not None and sub["status"] != "paused":
            sub["pause_date"] = at
        self._changed(sub, "change_term_end", params, key, ["subscription_changed"])
        return self.wrapped(sub)

    def cancel_for_items(self, sub_id: str, params: forms.Params, key: str | None) -> Obj:
        sub = self.subscription(sub_id)
        option = forms.choice(
            params, "cancel_option", ("immediately", "end_of_term", "specific_date"), None
        )
        if option is None:
            option = "end_of_term" if forms.boolean(params, "end_of_term") else "immediately"
        status = sub["status"]
        if status == "cancelled":
            raise bad_state(f"Subscription {sub_id} is already cancelled")
        now = self.clock.now
        if option == "immediately":
            sub.update(
                status="cancelled",
                cancelled_at=now,
                current_term_end=now,
                next_billing_at=None,
                pause_date=None,
                resume_date=None,
            )
            self._changed(sub, "cancel_for_items", params, key, ["subscription_cancelled"])
            return self.wrapped(sub)
        if status not in ("active", "in_trial"):
            raise bad_state(f"Subscription in {status} state cannot be scheduled to cancel")
        at = sub["current_term_end"]
        if option == "specific_date":
            at = forms.integer(params, "cancel_at", required=True) or 0
            if at <= now:
                raise wrong("cancel_at", "should be a future date")
        sub.update(status="non_renewing", cancelled_at=at, next_billing_at=None)
        self._changed(sub, "cancel_for_items", params, key, ["subscription_cancellation_scheduled"])
        return self.wrapped(sub)

    def remove_scheduled_cancellation(
        self, sub_id: str, params: forms.Params, key: str | None
    ) -> Obj:
        sub = self.subscription(sub_id)
        if sub["status"] != "non_renewing":
            raise bad_state(f"Subscription in {sub['status']} state has no scheduled cancellation")
        trial = sub.get("trial_end") is not None and sub["trial_end"] > self.clock.now
        sub.update(
            status="in_trial" if trial else "active",
            cancelled_at=None,
            next_billing_at=sub["current_term_end"],
        )
        self._changed(
            sub,
            "remove_scheduled_cancellation",
            params,
            key,
            ["subscription_scheduled_cancellation_removed"],
        )
        return self.wrapped(sub)
