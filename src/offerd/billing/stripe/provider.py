"""Stripe as a ``BillingProvider``: the eight actions through stripe-python's ``StripeClient``.

Exactly once comes from ``offerd.billing.remote`` (generations recorded before each call, the
subscription re-read on every retry); this module is only the SDK calls (DESIGN §7's table) and
the translation of Stripe's errors:

- 401 (``AuthenticationError``) → ``ProviderUnauthorized`` (permanent; mark the provider unhealthy);
- 429, 5xx, 409 (a key still in flight), connection errors and timeouts → ``TransientProviderError``
  carrying ``Retry-After``, unless Stripe answered ``Stripe-Should-Retry: false`` → permanent;
- any other 4xx (``InvalidRequestError``, ``CardError``: wrong state, unknown coupon, card
  declined) → ``PermanentProviderError`` with Stripe's message.

The ``_async`` methods are used: give the client an async-capable HTTP client, e.g.
``StripeClient(key, http_client=stripe.HTTPXClient())`` (the default one does too when httpx is
installed). Pausing uses ``pause_collection`` (works on every account, and keeps the date the
offer promised in ``resumes_at``); a subscription Stripe itself paused (status ``paused``) is
resumed with ``resume``.

``preview`` summarizes before and after as the ledger does, from Stripe's prices and coupons; when
the price or the discounts change, the next charge after is Stripe's own invoice preview
(``invoices.create_preview``, prorations included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import stripe

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
from offerd.billing.provider import (
    PermanentProviderError,
    Preview,
    ProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.billing.remote import RemoteProvider, Sent, Snapshot
from offerd.billing.stripe.mapping import NotMappable, subscription_state
from offerd.db import Conn, Database

_EXPAND = ["discounts"]


def _header(exc: stripe.StripeError, name: str) -> str | None:
    for key, value in (exc.headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def translate(exc: stripe.StripeError) -> ProviderError:
    """A Stripe SDK error as offerd's permanent / transient provider error."""
    request_id = exc.request_id
    message = exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.AuthenticationError) or exc.http_status == 401:
        return ProviderUnauthorized(
            f"Stripe rejected the API key: {message}", request_id=request_id
        )
    should_retry = _header(exc, "Stripe-Should-Retry")
    retry_after_raw = _header(exc, "Retry-After")
    try:
        retry_after = float(retry_after_raw) if retry_after_raw is not None else None
    except ValueError:
        retry_after = None
    status = exc.http_status
    if isinstance(exc, stripe.IdempotencyError) and status == 400:
        # The key was first used with other parameters: the request under it was answered and
        # kept (the subscription changed between two attempts, and the parameters with it). The
        # key is spent and nothing under it is in flight: a new generation, after a re-read.
        return TransientProviderError(f"Stripe: {message}", request_id=request_id, settled=True)
    transient = (
        isinstance(exc, stripe.APIConnectionError)
        or status is None
        or status in (409, 429)
        or status >= 500
    )
    if should_retry == "false":
        transient = False
    elif should_retry == "true":
        transient = True
    if transient:
        return TransientProviderError(
            f"Stripe: {message}",
            request_id=request_id,
            retry_after=retry_after,
            # Stripe stores a 500 against the idempotency key and replays it
            settled=status == 500,
        )
    return PermanentProviderError(message, request_id=request_id)


class StripeBackend:
    """The SDK calls for one Stripe account (``remote.RemoteBackend``)."""

    name = "stripe"

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    async def _raw(
        self, method: str, path: str, params: Mapping[str, Any], key: str | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """One call through the SDK's ``raw_request_async`` (the client's authentication, API
        version and errors): the JSON as it is and Stripe's request id. The typed objects the
        services build cost more CPU than the rest of a billing update together."""
        options = {"idempotency_key": key} if key else {}
        try:
            response = await self.client.raw_request_async(method, path, **params, **options)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return response.data, response.request_id

    async def read(self, subscription_id: str) -> Snapshot:
        raw, _ = await self._raw("get", f"/v1/subscriptions/{subscription_id}", {"expand": _EXPAND})
        return Snapshot(_state(raw), raw)

    async def catalog(
        self, state: SubscriptionState, action: BillingAction
    ) -> tuple[Mapping[str, Plan], Mapping[str, Coupon]]:
        plans: dict[str, Plan] = {}
        coupons: dict[str, Coupon] = {}
        for price_id in {state.plan_id, getattr(action, "plan_id", None) or state.plan_id}:
            price = await self._get(self.client.v1.prices.retrieve_async, price_id)
            if price is not None:
                interval = (price.get("recurring") or {}).get("interval")
                plans[price_id] = Plan(
                    price_id,
                    price.get("nickname") or price_id,
                    int(price.get("unit_amount") or 0),
                    str(price.get("currency", "usd")),
                    "year" if interval == "year" else "month",
                )
        wanted = {*state.coupon_ids, getattr(action, "coupon_id", None)} - {None}
        for coupon_id in sorted(c for c in wanted if c is not None):
            coupon = await self._get(self.client.v1.coupons.retrieve_async, coupon_id)
            if coupon is not None and coupon.get("valid", True):
                percent = coupon.get("percent_off")
                coupons[coupon_id] = Coupon(
                    coupon_id,
                    coupon.get("name") or coupon_id,
                    "percentage" if percent is not None else "fixed_amount",
                    float(percent) if percent is not None else None,
                    coupon.get("amount_off"),
                )
        return plans, coupons

    async def _get(self, retrieve: Any, oid: str) -> dict[str, Any] | None:
        """The object, or ``None`` if Stripe has no such id (the action's error says so)."""
        try:
            obj = await retrieve(oid)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return cast(dict[str, Any], obj.to_dict())

    async def send(
        self,
        subscription_id: str,
        action: BillingAction,
        current: Snapshot,
        target: SubscriptionState,
        idempotency_key: str,
    ) -> Sent:
        raw, key = current.raw, idempotency_key
        path = f"/v1/subscriptions/{subscription_id}"
        match action:
            case CancelSubscription(end_of_term=False):
                # DELETE: Stripe ignores the key; a retry re-reads first (remote.py).
                sub, request_id = await self._raw("delete", path, {"expand": _EXPAND}, key)
            case ResumeSubscription() if raw["status"] == "paused":
                sub, request_id = await self._raw(
                    "post", f"{path}/resume", {"expand": _EXPAND}, key
                )
            case _:
                params = {**_update_params(action, raw, target), "expand": _EXPAND}
                sub, request_id = await self._raw("post", path, params, key)
        return Sent(_state(sub), request_id)


def _state(raw: Mapping[str, Any]) -> SubscriptionState:
    try:
        return subscription_state(raw)
    except NotMappable as exc:
        raise PermanentProviderError(str(exc)) from None


def _ts(at: datetime | None) -> int:
    assert at is not None
    return int(at.timestamp())


def _discounts(raw: Mapping[str, Any], coupon_ids: tuple[str, ...]) -> list[dict[str, str]]:
    """``discounts`` replaces the list: keep the existing discounts (by id, so Stripe does not
    restart their duration) and add a coupon for each new one."""
    existing: dict[str, str] = {}
    for disc in raw.get("discounts") or ():
        source = disc.get("source") or {}
        existing.setdefault(source.get("coupon") or "", disc["id"])
    return [{"discount": existing[c]} if c in existing else {"coupon": c} for c in coupon_ids]


def _items(raw: Mapping[str, Any], target: SubscriptionState) -> list[dict[str, Any]]:
    (item,) = raw["items"]["data"]
    return [{"id": item["id"], "price": target.plan_id, "quantity": target.quantity}]


def _update_params(
    action: BillingAction, raw: Mapping[str, Any], target: SubscriptionState
) -> dict[str, Any]:
    match action:
        case ApplyCoupon():
            return {"discounts": _discounts(raw, target.coupon_ids)}
        case ChangePlan():
            return {"items": _items(raw, target), "proration_behavior": "create_prorations"}
        case PauseSubscription():
            return {"pause_collection": {"behavior": "void", "resumes_at": _ts(target.pause_until)}}
        case ResumeSubscription():
            return {"pause_collection": ""}
        case ExtendTrial():
            return {"trial_end": _ts(target.trial_end), "proration_behavior": "none"}
        case ConvertTrial(plan_id=plan_id, coupon_id=coupon_id):
            params: dict[str, Any] = {"trial_end": "now"}
            if plan_id is not None:
                params["items"] = _items(raw, target)
            if coupon_id is not None:
                params["discounts"] = _discounts(raw, target.coupon_ids)
            return params
        case CancelSubscription():
            return {"cancel_at_period_end": True}
        case RemoveScheduledCancellation():
            return {"cancel_at_period_end": False}
    raise AssertionError(f"no Stripe call for {action!r}")  # pragma: no cover


class StripeProvider(RemoteProvider):
    """``BillingProvider`` for one Stripe account."""

    name = "stripe"
    backend: StripeBackend

    def __init__(self, client: stripe.StripeClient, db: Database) -> None:
        super().__init__(StripeBackend(client), db)

    async def preview(
        self,
        conn: Conn | None,  # noqa: ARG002
        *,
        site_id: str,  # noqa: ARG002
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview:
        """The ledger's summaries of before and after, with the next charge after the change
        taken from Stripe's invoice preview (prorations included) when the price changes."""
        draft = await self.draft(subscription_id, action, now)
        after = draft.after
        params = _preview_params(
            subscription_id, draft.snapshot.raw, draft.snapshot.state, draft.target
        )
        if params is not None:
            try:
                invoice = await self.backend.client.v1.invoices.create_preview_async(params)
            except stripe.StripeError as exc:
                raise translate(exc) from exc
            after = replace(after, next_charge=int(invoice.amount_due))
        return Preview(draft.before, after)


def _preview_params(
    subscription_id: str,
    raw: Mapping[str, Any],
    state: SubscriptionState,
    target: SubscriptionState,
) -> Any:
    """What to ask ``invoices.create_preview`` for a change of price or discounts, else None."""
    params: dict[str, Any] = {"subscription": subscription_id}
    if (target.plan_id, target.quantity) != (state.plan_id, state.quantity):
        params["subscription_details"] = {
            "items": _items(raw, target),
            "proration_behavior": "create_prorations",
        }
    if target.coupon_ids != state.coupon_ids:
        params["discounts"] = _discounts(raw, target.coupon_ids)
    return params if len(params) > 1 else None
