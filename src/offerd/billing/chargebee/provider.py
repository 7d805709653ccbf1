"""Chargebee Billing as a ``BillingProvider``: the actions through the ``chargebee`` SDK.

Exactly once comes from ``offerd.billing.remote`` (each generation recorded before its call,
sent under the ``chargebee-idempotency-key`` header; a retry re-reads the subscription first,
which matters all the more as Chargebee keeps keys only 30 minutes). The calls (DESIGN.md §7):

| action                         | Chargebee                                                      |
|--------------------------------|----------------------------------------------------------------|
| apply_coupon                   | ``Subscription.update_for_items(coupon_ids=[c])`` (kept with the existing ones) |
| change_plan                    | ``update_for_items(subscription_items=[{item_price_id, quantity}], change_option=immediately)`` (prorated) |
| pause_subscription             | ``pause(pause_option=immediately, resume_date=T)``             |
| resume_subscription            | ``resume(resume_option=immediately)``                          |
| extend_trial                   | ``change_term_end(term_ends_at=T)``, T from the current trial end |
| convert_trial                  | refused: Chargebee documents no call that ends a trial now that offerd could confirm (``update_for_items`` with a past ``trial_end`` is not in the reference we could check) |
| cancel_subscription            | ``cancel_for_items(end_of_term=true|false)``                   |
| remove_scheduled_cancellation  | ``remove_scheduled_cancellation``                              |

``preview`` summarizes before and after; a change of plan or coupons takes the next charge
from Chargebee's estimate for the same change (``Estimate.update_subscription_for_items``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from chargebee import Chargebee

from offerd.billing.actions import (
    ApplyCoupon,
    BillingAction,
    CancelSubscription,
    ChangePlan,
    ConvertTrial,
    Coupon,
    ExtendTrial,
    PauseSubscription,
    Plan,
    RemoveScheduledCancellation,
    ResumeSubscription,
    SubscriptionState,
)
from offerd.billing.chargebee.client import NotFoundAtChargebee, call
from offerd.billing.chargebee.mapping import NotMappable, coupon_row, plan_row, subscription_state
from offerd.billing.mirror.objects import MirroredCoupon, MirroredPlan
from offerd.billing.provider import (
    PermanentProviderError,
    Preview,
)
from offerd.billing.remote import RemoteProvider, Sent, Snapshot
from offerd.db import Conn, Database

CONVERT_TRIAL_REFUSED = (
    "Chargebee Billing: ending a trial now (convert_trial) is not supported: Chargebee documents "
    "no call for it that offerd could confirm; use extend_trial, or change the plan at the "
    "trial's end"
)
UNSUPPORTED: dict[str, str] = {"convert_trial": CONVERT_TRIAL_REFUSED}


def _state(raw: Mapping[str, Any]) -> SubscriptionState:
    try:
        return subscription_state(raw)
    except NotMappable as exc:
        raise PermanentProviderError(str(exc)) from None


def _ts(at: datetime | None) -> int:
    assert at is not None
    return int(at.timestamp())


class ChargebeeBackend:
    """The SDK calls for one Chargebee site (``remote.RemoteBackend``)."""

    name = "chargebee"

    def __init__(self, client: Chargebee) -> None:
        self.client = client

    async def read(self, subscription_id: str) -> Snapshot:
        got = await call(self.client.Subscription.retrieve(subscription_id))
        raw = got.subscription.raw_data
        return Snapshot(_state(raw), raw)

    async def catalog(
        self, state: SubscriptionState, action: BillingAction
    ) -> tuple[Mapping[str, Plan], Mapping[str, Coupon]]:
        plans: dict[str, Plan] = {}
        coupons: dict[str, Coupon] = {}
        for price_id in {state.plan_id, getattr(action, "plan_id", None) or state.plan_id}:
            raw = await self._get(self.client.ItemPrice, price_id, "item_price")
            row = plan_row(raw) if raw is not None else None
            if isinstance(row, MirroredPlan):
                plans[price_id] = Plan(
                    row.id,
                    row.name,
                    row.price,
                    row.currency,
                    row.period_unit,
                    row.period,
                )
        wanted = {*state.coupon_ids, getattr(action, "coupon_id", None)} - {None}
        for coupon_id in sorted(c for c in wanted if c is not None):
            raw = await self._get(self.client.Coupon, coupon_id, "coupon")
            if raw is None or raw.get("status", "active") != "active":
                continue
            c = coupon_row(raw)
            if isinstance(c, MirroredCoupon):
                coupons[coupon_id] = Coupon(
                    c.id,
                    c.name,
                    c.discount_type,
                    c.discount_percentage,
                    c.discount_amount,
                )
        return plans, coupons

    async def _get(self, resource: Any, oid: str, attr: str) -> dict[str, Any] | None:
        """The object, or ``None`` if Chargebee has no such id (the action's error says so)."""
        try:
            got = await call(resource.retrieve(oid))
        except NotFoundAtChargebee:
            return None
        raw: dict[str, Any] = getattr(got, attr).raw_data
        return raw

    async def send(
        self,
        subscription_id: str,
        action: BillingAction,
        current: Snapshot,  # noqa: ARG002 - Chargebee's calls need nothing of the object read
        target: SubscriptionState,
        idempotency_key: str,
    ) -> Sent:
        subs = self.client.Subscription
        headers = {"chargebee-idempotency-key": idempotency_key}
        params: dict[str, Any]
        match action:
            case ApplyCoupon(coupon_id=coupon):
                done = await call(
                    subs.update_for_items(subscription_id, {"coupon_ids": [coupon]}, headers)
                )
            case ChangePlan():
                params = {
                    "subscription_items": [
                        {"item_price_id": target.plan_id, "quantity": target.quantity}
                    ],
                    "change_option": "immediately",
                }
                done = await call(subs.update_for_items(subscription_id, params, headers))
            case PauseSubscription():
                params = {"pause_option": "immediately", "resume_date": _ts(target.pause_until)}
                done = await call(subs.pause(subscription_id, params, headers))
            case ResumeSubscription():
                done = await call(
                    subs.resume(subscription_id, {"resume_option": "immediately"}, headers)
                )
            case ExtendTrial():
                params = {"term_ends_at": _ts(target.trial_end)}
                done = await call(subs.change_term_end(subscription_id, params, headers))
            case CancelSubscription(end_of_term=end_of_term):
                params = {"end_of_term": end_of_term}
                done = await call(subs.cancel_for_items(subscription_id, params, headers))
            case RemoveScheduledCancellation():
                done = await call(subs.remove_scheduled_cancellation(subscription_id, {}, headers))
            case ConvertTrial():
                raise PermanentProviderError(CONVERT_TRIAL_REFUSED)
            case _:  # pragma: no cover
                raise AssertionError(f"no Chargebee call for {action!r}")
        request_id = None
        for key, value in dict(done.headers or {}).items():
            if str(key).lower() == "x-request-id":
                request_id = str(value)
        return Sent(_state(done.subscription.raw_data), request_id)


class ChargebeeProvider(RemoteProvider):
    """``BillingProvider`` for one Chargebee site."""

    name = "chargebee"
    unsupported = UNSUPPORTED
    backend: ChargebeeBackend

    def __init__(self, client: Chargebee, db: Database) -> None:
        super().__init__(ChargebeeBackend(client), db)

    async def preview(
        self,
        conn: Conn | None,  # noqa: ARG002
        *,
        site_id: str,  # noqa: ARG002
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview:
        """The ledger's summaries of before and after; for a change of plan or coupons the next
        charge after is Chargebee's estimate of the same change."""
        draft = await self.draft(subscription_id, action, now)
        state, target, after = draft.snapshot.state, draft.target, draft.after
        params: dict[str, Any] = {"subscription": {"id": subscription_id}}
        if (target.plan_id, target.quantity) != (state.plan_id, state.quantity):
            params["subscription_items"] = [
                {"item_price_id": target.plan_id, "quantity": target.quantity}
            ]
            params["change_option"] = "immediately"
        added = [c for c in target.coupon_ids if c not in state.coupon_ids]
        if added:
            params["coupon_ids"] = added
        if len(params) > 1:
            got = await call(self.backend.client.Estimate.update_subscription_for_items(params))
            nxt = got.estimate.raw_data.get("next_invoice_estimate") or {}
            amount = nxt.get("amount_due", nxt.get("total"))
            if amount is not None:
                after = replace(after, next_charge=int(amount))
        return Preview(draft.before, after)
