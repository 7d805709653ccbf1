"""Hosted checkout pages: the subscriber sees what an option changes and confirms or declines.

Opening the page marks it ``requested``; Confirm applies the billing action (``succeeded``, the
fulfillment ``completed``); No thanks is ``cancelled`` (the fulfillment fails with
``checkout_abandoned``), and so is a page left open past its 3 hours. The page and its
fulfillment are locked together for every decision, so a double submit applies once.

With a remote provider (Stripe, Chargebee) no database connection is held while it answers
(the preview, the confirm): a slow provider must not take the pool from the API. The confirm
is then checked and the page locked in one transaction, the change made with no connection
held, and the outcome written in a second. Two confirms of one page racing between those are
still one change: both send under the fulfillment's key through ``billing.remote``, whose
generation record lets only one of them call (the other is told to try again, and then finds
the page answered). The ledger applies inside the first transaction, as before.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from psycopg.rows import DictRow

from offerd.billing.actions import SubscriptionState, parse_action
from offerd.billing.provider import (
    BillingProvider,
    PermanentProviderError,
    Preview,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.billing.sites import SiteProviders
from offerd.checkout import store
from offerd.common.ids import secret_token
from offerd.db import Conn, Database, transaction
from offerd.fulfillments import transitions

PAGE_TTL = timedelta(hours=3)

log = structlog.get_logger("offerd.checkout")


def page_url(base_url: str, page_id: str) -> str:
    return f"{base_url}/hosted_pages/{page_id}"


def resource(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "hosted_page",
        "type": row["type"],
        "url": page_url(base_url, row["id"]),
        "state": row["state"],
        "layout": row["layout"],
        "embed": False,
        "created_at": int(row["created_at"].timestamp()),
        "expires_at": int(row["expires_at"].timestamp()),
        "updated_at": int(row["updated_at"].timestamp()),
        "content": row["content"] or {},
    }


async def create(
    conn: Conn, *, fulfillment: Mapping[str, Any], option: Mapping[str, Any], now: datetime
) -> DictRow:
    return await store.insert(
        conn,
        {
            "id": secret_token("hp", bits=160),
            "site_id": fulfillment["site_id"],
            "fulfillment_id": fulfillment["id"],
            "type": "checkout_existing" if fulfillment["subscription_id"] else "checkout_new",
            "layout": option.get("processing_layout", "full_page"),
            "form_token": secrets.token_urlsafe(32),
            "now": now,
            "expires_at": now + PAGE_TTL,
        },
    )


# What the subscriber is told when an offer can't be shown as applicable (never the developer
# message: that goes to the fulfillment's error and the logs).
Problem = Literal["no_subscription", "not_applicable", "billing_unavailable"]


@dataclass(frozen=True)
class PageView:
    page: DictRow
    preview: Preview | None
    problem: Problem | None


async def page_of(conn: Conn, fulfillment_id: str) -> DictRow | None:
    """The hosted page of a checkout fulfillment (None before its accept made one)."""
    return await store.by_fulfillment(conn, fulfillment_id)


async def open_page(
    db: Database, page_id: str, *, billing: SiteProviders, now: datetime
) -> PageView | None:
    """Read the page for display; the first look marks it ``requested``; past expiry, abandon it."""
    async with db.connection() as conn:
        view = await _open(conn, page_id, now=now)
        if view is None or isinstance(view, PageView):
            return view
        provider = await billing.of(conn, view["site_id"])
        if not provider.remote:
            return await _preview(conn, view, provider, now)
    return await _preview(None, view, provider, now)  # no connection while the provider answers


async def _open(conn: Conn, page_id: str, *, now: datetime) -> PageView | DictRow | None:
    """The page's state moved on as a look moves it: a PageView when there is nothing to
    preview, else the page row to preview."""
    async with transaction(conn):
        page = await store.view(conn, page_id, lock=True)
        if page is None:
            return None
        if page["state"] in ("created", "requested") and now >= page["expires_at"]:
            await _abandon(conn, page, now, reason="expired")
            page = await store.view(conn, page_id)
            assert page is not None
        elif page["state"] == "created":
            await store.set_state(conn, page_id, "requested", now)
            page = await store.view(conn, page_id)
            assert page is not None
    if page["state"] != "requested":
        return PageView(page, None, None)
    if not page["subscription_id"]:
        return PageView(page, None, "no_subscription")
    return page


async def _preview(
    conn: Conn | None, page: DictRow, provider: BillingProvider, now: datetime
) -> PageView:
    try:
        preview = await provider.preview(
            conn,
            site_id=page["site_id"],
            subscription_id=page["subscription_id"],
            action=parse_action(page["option"]["billing_action"]),
            now=now,
        )
    except PermanentProviderError as exc:
        log.info("checkout.not_applicable", page=page["id"][:8], reason=str(exc))
        return PageView(page, None, "not_applicable")
    except TransientProviderError as exc:
        log.warning("checkout.billing_unavailable", error=str(exc))
        return PageView(page, None, "billing_unavailable")
    return PageView(page, preview, None)


Decision = Literal["confirm", "cancel"]
Result = Literal[
    "succeeded", "cancelled", "failed", "expired", "already_done", "bad_token", "retry"
]


async def decide(
    db: Database,
    page_id: str,
    *,
    decision: Decision,
    token: str,
    billing: SiteProviders,
    now: datetime,
) -> Result | None:
    """The subscriber's answer. Exactly one answer per page takes effect."""
    try:
        async with db.connection() as conn, transaction(conn):
            checked = await _check(conn, page_id, decision=decision, token=token, now=now)
            if not isinstance(checked, tuple):
                return checked
            page, fulfillment = checked
            if not fulfillment["subscription_id"]:
                message = "no subscription is known for this checkout"
                return await _settle(conn, page, fulfillment, now, error=message)
            provider = await billing.of(conn, page["site_id"])
            if not provider.remote:  # the ledger: the change commits with the outcome
                error = await _apply(conn, provider, page, fulfillment, now)
                return await _settle(conn, page, fulfillment, now, error=error)
        error = await _apply(None, provider, page, fulfillment, now)
        async with db.connection() as conn, transaction(conn):
            now_page = await store.view(conn, page_id, lock=True)
            now_fulfillment = await transitions.lock(conn, page["fulfillment_id"])
            assert now_page is not None and now_fulfillment is not None
            page, fulfillment = now_page, now_fulfillment
            if page["state"] not in ("created", "requested") or fulfillment["status"] != (
                "in_progress"
            ):
                # answered or expired while the provider answered (its change, if any, is on
                # the provider's change log, provider_calls)
                log.warning("checkout.ended_while_confirming", page=page_id[:8])
                return "already_done"
            if isinstance(error, _Applied):
                await billing.answered(conn, page["site_id"], provider)
            elif isinstance(error, ProviderUnauthorized):
                await billing.unauthorized(conn, page["site_id"], str(error))
            return await _settle(conn, page, fulfillment, now, error=error)
    except TransientProviderError:
        return "retry"


async def _check(
    conn: Conn, page_id: str, *, decision: Decision, token: str, now: datetime
) -> Result | None | tuple[DictRow, DictRow]:
    """Lock the page and its fulfillment and check the answer may take effect; a decline takes
    effect here. (page, fulfillment) when a confirm is to be applied."""
    page = await store.view(conn, page_id, lock=True)
    if page is None:
        return None
    if page["state"] not in ("created", "requested"):
        return "already_done"
    if now >= page["expires_at"]:
        await _abandon(conn, page, now, reason="expired")
        return "expired"
    if not hmac.compare_digest(token.encode(), page["form_token"].encode()):
        return "bad_token"
    fulfillment = await transitions.lock(conn, page["fulfillment_id"])
    assert fulfillment is not None
    if fulfillment["status"] != "in_progress":
        await store.set_state(conn, page_id, "cancelled", now, {"reason": "closed"})
        return "already_done"
    if decision == "cancel":
        await _abandon(conn, page, now, reason="declined")
        return "cancelled"
    return page, fulfillment


@dataclass(frozen=True, slots=True)
class _Applied:
    after: SubscriptionState


async def _apply(
    conn: Conn | None,
    provider: BillingProvider,
    page: Mapping[str, Any],
    fulfillment: Mapping[str, Any],
    now: datetime,
) -> PermanentProviderError | _Applied:
    """The change through the provider; a refusal is returned, a transient failure raised."""
    try:
        applied = await provider.apply(
            conn,
            site_id=page["site_id"],
            subscription_id=fulfillment["subscription_id"],
            action=parse_action(page["option"]["billing_action"]),
            idempotency_key=fulfillment["id"],
            now=now,
        )
    except PermanentProviderError as exc:
        return exc
    return _Applied(applied.after)


async def _settle(
    conn: Conn,
    page: Mapping[str, Any],
    fulfillment: DictRow,
    now: datetime,
    *,
    error: PermanentProviderError | _Applied | str,
) -> Result:
    if isinstance(error, _Applied):
        await transitions.complete(conn, fulfillment, now=now)
        await store.set_state(
            conn, page["id"], "succeeded", now, {"subscription": error.after.as_dict()}
        )
        return "succeeded"
    message = str(error)
    await transitions.fail(conn, fulfillment, "billing_update_failed", message, now=now)
    await store.set_state(conn, page["id"], "cancelled", now, {"error": message})
    return "failed"


async def _abandon(conn: Conn, page: Mapping[str, Any], now: datetime, *, reason: str) -> None:
    fulfillment = await transitions.lock(conn, page["fulfillment_id"])
    assert fulfillment is not None
    if fulfillment["status"] == "in_progress":
        message = (
            "the subscriber declined the checkout"
            if reason == "declined"
            else "the checkout page expired before the subscriber confirmed"
        )
        await transitions.fail(conn, fulfillment, "checkout_abandoned", message, now=now)
    await store.set_state(conn, page["id"], "cancelled", now, {"reason": reason})


async def abandon_if_open(
    conn: Conn, fulfillment_id: str, now: datetime
) -> Literal["abandoned", "answered", "not_yet"]:
    """For the job scheduled at the page's expiry: abandon it unless the subscriber answered."""
    async with transaction(conn):
        page = await store.by_fulfillment(conn, fulfillment_id)
        locked = await store.view(conn, page["id"], lock=True) if page else None
        if locked is None or locked["state"] not in ("created", "requested"):
            return "answered"
        if now < locked["expires_at"]:
            return "not_yet"
        await _abandon(conn, locked, now, reason="expired")
        return "abandoned"
