"""The built-in billing ledger provider: subscriptions in offerd's own tables.

Applying an action is one set of writes in the caller's transaction: the new subscription state
and a ``subscription_changes`` row keyed by the idempotency key (the fulfillment id). A key seen
before returns the change it made, so a retried job never applies twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from offerd.billing.actions import (
    ActionError,
    BillingAction,
    Coupon,
    Plan,
    SubscriptionState,
    apply_action,
)
from offerd.billing.pricing import summarize
from offerd.billing.provider import Applied, PermanentProviderError, Preview
from offerd.db import Conn, fetchall, fetchone

_CHANGE = "SELECT * FROM subscription_changes WHERE site_id = %s AND idempotency_key = %s"
_LOCK = "SELECT * FROM subscriptions WHERE site_id = %s AND id = %s FOR UPDATE"
_READ = "SELECT * FROM subscriptions WHERE site_id = %s AND id = %s"
_PLANS = "SELECT * FROM plans WHERE site_id = %s AND id = ANY(%s)"
_COUPONS = "SELECT * FROM coupons WHERE site_id = %s AND id = ANY(%s)"
_WRITE = """
UPDATE subscriptions
SET status = %(status)s, plan_id = %(plan_id)s, quantity = %(quantity)s,
    coupon_ids = %(coupon_ids)s, trial_end = %(trial_end)s,
    current_term_start = %(current_term_start)s, current_term_end = %(current_term_end)s,
    pause_until = %(pause_until)s, cancel_at = %(cancel_at)s, cancelled_at = %(cancelled_at)s,
    version = version + 1, updated_at = %(now)s
WHERE site_id = %(site)s AND id = %(id)s
"""
_LOG = """
INSERT INTO subscription_changes
    (site_id, subscription_id, idempotency_key, fulfillment_id, action, before, after, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
_HISTORY = """
SELECT id, idempotency_key, fulfillment_id, action, before, after, created_at
FROM subscription_changes WHERE site_id = %s AND subscription_id = %s ORDER BY id
"""


def state_of(row: Mapping[str, Any]) -> SubscriptionState:
    return SubscriptionState(
        status=row["status"],
        plan_id=row["plan_id"],
        quantity=row["quantity"],
        coupon_ids=tuple(row["coupon_ids"]),
        trial_end=row["trial_end"],
        current_term_start=row["current_term_start"],
        current_term_end=row["current_term_end"],
        pause_until=row["pause_until"],
        cancel_at=row["cancel_at"],
        cancelled_at=row["cancelled_at"],
    )


_TIMES = (
    "trial_end",
    "current_term_start",
    "current_term_end",
    "pause_until",
    "cancel_at",
    "cancelled_at",
)


def _state_from_log(raw: Mapping[str, Any]) -> SubscriptionState:
    values = dict(raw)
    for key in _TIMES:
        if values.get(key) is not None:
            values[key] = datetime.fromtimestamp(values[key], UTC)
    values["coupon_ids"] = tuple(values["coupon_ids"])
    return SubscriptionState(**values)


def _referenced(state: SubscriptionState, action: BillingAction) -> tuple[set[str], set[str]]:
    plans = {state.plan_id}
    coupons = set(state.coupon_ids)
    if (plan := getattr(action, "plan_id", None)) is not None:
        plans.add(plan)
    if (coupon := getattr(action, "coupon_id", None)) is not None:
        coupons.add(coupon)
    return plans, coupons


async def _catalog(
    conn: Conn, site_id: str, plan_ids: set[str], coupon_ids: set[str]
) -> tuple[dict[str, Plan], dict[str, Coupon]]:
    plan_rows = await fetchall(conn, _PLANS, (site_id, list(plan_ids)))
    coupon_rows = await fetchall(conn, _COUPONS, (site_id, list(coupon_ids))) if coupon_ids else []
    plans = {
        r["id"]: Plan(r["id"], r["name"], r["price"], r["currency"], r["period_unit"])
        for r in plan_rows
    }
    coupons = {
        r["id"]: Coupon(
            r["id"],
            r["name"],
            r["discount_type"],
            float(r["discount_percentage"]) if r["discount_percentage"] is not None else None,
            r["discount_amount"],
        )
        for r in coupon_rows
    }
    return plans, coupons


class LedgerProvider:
    name = "ledger"

    async def apply(
        self,
        conn: Conn,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        idempotency_key: str,
        now: datetime,
    ) -> Applied:
        """Call inside a transaction: the change commits (or rolls back) with the caller's writes.

        The subscription row is locked before the change log is read, so that of two concurrent
        applies with one key the second waits for the first and then finds its change.
        """
        row = await fetchone(conn, _LOCK, (site_id, subscription_id))
        if row is None:
            raise PermanentProviderError(f"subscription {subscription_id!r} does not exist")
        done = await fetchone(conn, _CHANGE, (site_id, idempotency_key))
        if done is not None:
            return Applied(_state_from_log(done["before"]), _state_from_log(done["after"]), True)
        before = state_of(row)
        plans, coupons = await _catalog(conn, site_id, *_referenced(before, action))
        try:
            after = apply_action(before, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            raise PermanentProviderError(str(exc)) from None
        await conn.execute(
            _WRITE,
            {
                **{k: getattr(after, k) for k in after.__dataclass_fields__},
                "coupon_ids": list(after.coupon_ids),
                "now": now,
                "site": site_id,
                "id": subscription_id,
            },
        )
        await conn.execute(
            _LOG,
            (
                site_id,
                subscription_id,
                idempotency_key,
                idempotency_key,
                Jsonb(action.model_dump()),
                Jsonb(before.as_dict()),
                Jsonb(after.as_dict()),
                now,
            ),
        )
        return Applied(before, after, False)

    async def preview(
        self,
        conn: Conn,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview:
        row = await fetchone(conn, _READ, (site_id, subscription_id))
        if row is None:
            raise PermanentProviderError(f"subscription {subscription_id!r} does not exist")
        before = state_of(row)
        plans, coupons = await _catalog(conn, site_id, *_referenced(before, action))
        try:
            after = apply_action(before, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            raise PermanentProviderError(str(exc)) from None
        return Preview(summarize(before, plans, coupons), summarize(after, plans, coupons))


async def history(conn: Conn, site_id: str, subscription_id: str) -> list[dict[str, Any]]:
    rows = await fetchall(conn, _HISTORY, (site_id, subscription_id))
    return [
        {
            "id": r["id"],
            "fulfillment_id": r["fulfillment_id"],
            "action": r["action"],
            "before": r["before"],
            "after": r["after"],
            "created_at": int(r["created_at"].timestamp()),
        }
        for r in rows
    ]
