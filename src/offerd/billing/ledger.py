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

from offerd.billing import store
from offerd.billing.actions import (
    ActionError,
    BillingAction,
    SubscriptionState,
    apply_action,
)
from offerd.billing.catalog import catalog_of, referenced
from offerd.billing.pricing import summarize
from offerd.billing.provider import Applied, PermanentProviderError, Preview
from offerd.db import Conn, fetchall, fetchone


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


def _replayed(done: Mapping[str, Any]) -> Applied:
    return Applied(_state_from_log(done["before"]), _state_from_log(done["after"]), True)


class LedgerProvider:
    name = "ledger"
    remote = False

    async def apply(
        self,
        conn: Conn | None,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        idempotency_key: str,
        now: datetime,
    ) -> Applied:
        """Call inside a transaction: the change commits (or rolls back) with the caller's writes.

        Of two concurrent applies with one key, the second waits for the subscription's row lock
        and then finds the first one's change (the unique key of the change log settles it),
        and replays it.
        """
        assert conn is not None, "the ledger applies in the caller's transaction"
        row = await fetchone(
            conn,
            store.LEDGER_LOCK,
            {
                "site": site_id,
                "id": subscription_id,
                "key": idempotency_key,
                "plan": getattr(action, "plan_id", None),
                "coupon": getattr(action, "coupon_id", None),
            },
        )
        if row is None:
            raise PermanentProviderError(f"subscription {subscription_id!r} does not exist")
        if row["done"] is not None:
            return _replayed(row["done"])
        before = state_of(row)
        plans, coupons = catalog_of(row["plans"], row["coupons"])
        try:
            after = apply_action(before, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            # The row is the latest version, but ``done`` was read before any wait for the lock:
            # an apply with this key that committed meanwhile makes this a replay, not an error.
            done = await fetchone(conn, store.LEDGER_CHANGE, (site_id, idempotency_key))
            if done is not None:
                return _replayed(done)
            raise PermanentProviderError(str(exc)) from None
        written = await fetchone(
            conn,
            store.LEDGER_WRITE,
            {
                **{k: getattr(after, k) for k in after.__dataclass_fields__},
                "coupon_ids": list(after.coupon_ids),
                "now": now,
                "site": site_id,
                "id": subscription_id,
                "key": idempotency_key,
                "action": Jsonb(action.model_dump()),
                "before": Jsonb(before.as_dict()),
                "after": Jsonb(after.as_dict()),
            },
        )
        if written is None:  # the same key committed while this apply waited for the lock
            done = await fetchone(conn, store.LEDGER_CHANGE, (site_id, idempotency_key))
            assert done is not None
            return _replayed(done)
        return Applied(before, after, False)

    async def preview(
        self,
        conn: Conn | None,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview:
        assert conn is not None, "the ledger reads in the caller's connection"
        row = await fetchone(conn, store.LEDGER_READ, (site_id, subscription_id))
        if row is None:
            raise PermanentProviderError(f"subscription {subscription_id!r} does not exist")
        before = state_of(row)
        plan_ids, coupon_ids = referenced(before, action)
        plan_rows = await fetchall(conn, store.LEDGER_PLANS, (site_id, list(plan_ids)))
        coupon_rows = (
            await fetchall(conn, store.LEDGER_COUPONS, (site_id, list(coupon_ids)))
            if coupon_ids
            else []
        )
        plans, coupons = catalog_of(plan_rows, coupon_rows)
        try:
            after = apply_action(before, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            raise PermanentProviderError(str(exc)) from None
        return Preview(summarize(before, plans, coupons), summarize(after, plans, coupons))


async def history(conn: Conn, site_id: str, subscription_id: str) -> list[dict[str, Any]]:
    rows = await fetchall(conn, store.LEDGER_HISTORY, (site_id, subscription_id))
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
