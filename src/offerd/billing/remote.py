"""Exactly once against a remote billing provider (Stripe, Chargebee): provider-agnostic.

A provider's idempotency key alone is not enough: Stripe stores a 500 against its key and replays
it for 24 h, ignores the key on DELETE, and Chargebee forgets keys after 30 minutes. So each change
is made as a sequence of *generations*, each recorded (committed) in ``provider_calls`` before its
call and sent under its own key ``"{idempotency_key}:{step}:{generation}"``:

1. First attempt: re-read the subscription from the provider, compute the **absolute** target
   state once with ``apply_action`` (an ``ActionError`` is a ``PermanentProviderError``), record
   generation 1 with that target, then send.
2. Every later attempt (the job runs again; a 5xx, a timeout, a dropped connection) re-reads the
   subscription: the fields the action changes already equal the target → done, ``replayed=True``,
   nothing sent. Otherwise what it sends depends on how the last generation ended:
   - no answer ('sent': the worker died, the connection was cut, a timeout, a 429 or a key still
     in flight): that request may still be on its way to the provider, and the re-read may have
     come before it lands. It is sent again **under the same key**: whichever of the two arrives
     second is the provider's replay, never a second change (kill -9 during 500 changes found
     exactly this: a re-read that overtook a dead worker's request, then a second key);
   - an answer the provider keeps against the key ('failed': Stripe stores a 500 and replays it):
     that key is spent and nothing of it is in flight, so generation N+1 is recorded and sent
     with the *same* target under a new key.
   Because the target is absolute (``extend_trial`` sends "trial_end = T", T computed from the
   trial end seen at the first attempt; never "add 7 days"), even a duplicate send applies once.

The records go through their own pooled connections (borrowed per statement, never held across
a provider call), each statement its own transaction, not the ``conn`` the job passes (the job's
transaction commits only after ``apply`` returns). What a crash leaves at each point, and what
the retry does:

- before generation N is recorded: nothing; the retry starts over (N = 1: computes the target).
- after the record, before the call: a 'sent' row never sent; the re-read shows the target not
  reached, so its key is sent. Harmless.
- after the provider applied, before the outcome is recorded (or the response was lost): a 'sent'
  row; the re-read shows the target reached → replayed, nothing sent. If the re-read came first
  (the request still on its way), the same key is sent again and the provider replays it.
- after 'applied' is recorded, before the job's transaction commits: the retry finds 'applied' and
  returns replayed without sending (even if someone changed the subscription since).
- a domain refusal ('refused') is final: the retry raises the same ``PermanentProviderError``.
  Except for a resend: the first request may have landed between the re-read and the resend and
  made the resend's request wrong (Stripe keys no DELETE: a second cancel is a 404), so a
  refused resend re-reads once more, and a subscription that shows the change is 'applied'.

Two attempts of one job racing (the queue should prevent it): the unique (base key, step,
generation) lets one of them record generation N+1; the other gets a ``TransientProviderError``
and runs again later, when it will see the outcome.

``provider_calls`` is the remote providers' change log: the ledger's ``subscription_changes`` is
one row per key written with the new state in the job's transaction, which cannot record a call
before it is made. Each row keeps the key, the provider's request id, the outcome and the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from offerd.billing import calls_store, mirror_store
from offerd.billing.actions import (
    ActionError,
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
    apply_action,
)
from offerd.billing.catalog import catalog_of, referenced
from offerd.billing.mirror import service as mirror
from offerd.billing.pricing import Summary, summarize
from offerd.billing.provider import (
    Applied,
    PermanentProviderError,
    ProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.db import Conn, Database

STEP = "apply"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A subscription as just read: offerd's state, and the provider's object (opaque here) the
    backend builds its call from (Stripe's item and discount ids)."""

    state: SubscriptionState
    raw: Any


@dataclass(frozen=True, slots=True)
class Sent:
    after: SubscriptionState
    request_id: str | None


class RemoteBackend(Protocol):
    """One provider's SDK calls. Errors are raised as ``PermanentProviderError`` (incl.
    ``ProviderUnauthorized``) or ``TransientProviderError``, carrying the request id if any."""

    name: str

    async def read(self, subscription_id: str) -> Snapshot: ...

    async def catalog(
        self, state: SubscriptionState, action: BillingAction
    ) -> tuple[Mapping[str, Plan], Mapping[str, Coupon]]: ...

    async def send(
        self,
        subscription_id: str,
        action: BillingAction,
        current: Snapshot,
        target: SubscriptionState,
        idempotency_key: str,
    ) -> Sent: ...


_TIMES = ("trial_end", "current_term_start", "current_term_end", "pause_until", "cancel_at")


def state_from_dict(raw: Mapping[str, Any]) -> SubscriptionState:
    values = dict(raw)
    for key in (*_TIMES, "cancelled_at"):
        if values.get(key) is not None:
            values[key] = datetime.fromtimestamp(values[key], UTC)
    values["coupon_ids"] = tuple(values["coupon_ids"])
    return SubscriptionState(**values)


def reached(action: BillingAction, target: SubscriptionState, now: SubscriptionState) -> bool:
    """Whether ``now`` shows the change: compared on the fields the action sets, to the second
    (providers keep whole seconds), and never on what the provider computes itself (the new term
    of a converted trial, the cancellation date of a cancel at period end)."""
    t, n = target.as_dict(), now.as_dict()

    def same(*fields: str) -> bool:
        return all(t[f] == n[f] for f in fields)

    match action:
        case ApplyCoupon(coupon_id=coupon):
            return coupon in now.coupon_ids
        case ChangePlan():
            return same("plan_id", "quantity")
        case PauseSubscription():
            return same("status", "pause_until")
        case ResumeSubscription() | RemoveScheduledCancellation():
            return now.status == "active" and same("status")
        case ExtendTrial():
            return same("trial_end")
        case ConvertTrial():
            return same("status", "plan_id") and set(target.coupon_ids) <= set(now.coupon_ids)
        case CancelSubscription():
            return same("status")
    return False  # pragma: no cover


async def _catalog(
    db: Database,
    backend: RemoteBackend,
    site_id: str,
    state: SubscriptionState,
    action: BillingAction,
) -> tuple[Mapping[str, Plan], Mapping[str, Coupon]]:
    """The plans and coupons the action needs: from the mirror (kept current by the provider's
    webhooks), or from the provider when the mirror lacks one (two calls fewer per change)."""
    plan_ids, coupon_ids = referenced(state, action)
    async with db.connection() as conn:
        plan_rows, coupon_rows = await mirror_store.catalog(
            conn, site_id, sorted(plan_ids), sorted(coupon_ids)
        )
    plans, coupons = catalog_of(plan_rows, coupon_rows)
    if plan_ids <= plans.keys() and coupon_ids <= coupons.keys():
        return plans, coupons
    return await backend.catalog(state, action)


async def apply_once(
    db: Database,
    backend: RemoteBackend,
    *,
    site_id: str,
    subscription_id: str,
    action: BillingAction,
    idempotency_key: str,
    now: datetime,
    step: str = STEP,
) -> Applied:
    async with db.connection() as log:
        last = await calls_store.latest(log, idempotency_key, step)
        read_at = await mirror_store.read_time(log)  # before the re-read: orders the mirror write
    if last is not None and last["state"] == "applied":
        return Applied(
            state_from_dict(last["before"]), state_from_dict(last["target"]), replayed=True
        )
    if last is not None and last["state"] == "refused":
        raise PermanentProviderError(last["error"], request_id=last["provider_request_id"])
    snapshot = await backend.read(subscription_id)
    current = snapshot.state
    call: dict[str, Any] | None = None
    if last is None:
        before = current
        plans, coupons = await _catalog(db, backend, site_id, current, action)
        try:
            target = apply_action(current, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            raise PermanentProviderError(str(exc)) from None
        generation = 1
    else:
        before, target = state_from_dict(last["before"]), state_from_dict(last["target"])
        if reached(action, target, current):
            async with db.connection() as log:
                await calls_store.finish(log, last["id"], state="applied", now=now)
            await mirror.changed(db, site_id, subscription_id, current, read_at)
            return Applied(before, current, replayed=True)
        if last["state"] == "sent":
            # Its outcome is unknown (no answer: a crash, a cut connection, a timeout): it may
            # still be on its way to the provider. Sent again under the same key, so that
            # whichever of the two arrives second is the provider's replay, not a second change.
            call = last
        generation = last["generation"] + 1
    if call is None:
        async with db.connection() as log:
            call = await calls_store.record(
                log,
                site_id=site_id,
                provider=backend.name,
                subscription_id=subscription_id,
                base_key=idempotency_key,
                step=step,
                generation=generation,
                idempotency_key=f"{idempotency_key}:{step}:{generation}",
                action=action.model_dump(),
                before=before.as_dict(),
                target=target.as_dict(),
                now=now,
            )
        if call is None:
            raise TransientProviderError("another attempt of this change is in flight")
    key = call["idempotency_key"]
    try:
        sent = await backend.send(subscription_id, action, snapshot, target, key)
    except ProviderError as exc:
        # 401 is not the subscription's answer: a retry after the key is fixed may send.
        refused = isinstance(exc, PermanentProviderError) and not isinstance(
            exc, ProviderUnauthorized
        )
        unknown = isinstance(exc, TransientProviderError) and not exc.settled
        if refused and call is last:
            # A refusal of a resend may be the first request having landed in the meantime
            # (Stripe keys no DELETE: cancelling a cancelled subscription is a 404): the
            # subscription says which.
            again = await backend.read(subscription_id)
            if reached(action, target, again.state):
                async with db.connection() as log:
                    await calls_store.finish(log, call["id"], state="applied", now=now)
                await mirror.changed(db, site_id, subscription_id, again.state, read_at)
                return Applied(before, again.state, replayed=True)
        async with db.connection() as log:
            await calls_store.finish(
                log,
                call["id"],
                # an outcome still unknown keeps the call 'sent': the retry reuses its key
                state="refused" if refused else "sent" if unknown else "failed",
                now=now,
                request_id=exc.request_id,
                error=str(exc),
            )
        raise
    async with db.connection() as log:
        await calls_store.finish(
            log, call["id"], state="applied", now=now, request_id=sent.request_id
        )
    await mirror.changed(db, site_id, subscription_id, sent.after, read_at)
    return Applied(before, sent.after, replayed=False)


@dataclass(frozen=True, slots=True)
class Draft:
    """A change worked out without making it (a checkout's preview): the subscription as read,
    the target, and the ledger's summaries of both."""

    snapshot: Snapshot
    target: SubscriptionState
    before: Summary
    after: Summary


class RemoteProvider:
    """What Stripe's and Chargebee's ``BillingProvider`` share: ``apply`` exactly once through
    ``apply_once`` (refusing the actions the provider cannot do), and the draft a preview starts
    from. ``db``: the pool ``provider_calls`` is written through (its own transactions, never
    the job's ``conn``)."""

    remote = True
    unsupported: Mapping[str, str] = {}

    def __init__(self, backend: RemoteBackend, db: Database) -> None:
        self.backend = backend
        self.db = db

    def _refuse_unsupported(self, action: BillingAction) -> None:
        if action.type in self.unsupported:
            raise PermanentProviderError(self.unsupported[action.type])

    async def apply(
        self,
        conn: Conn | None,  # noqa: ARG002 - remote: calls are recorded in their own transactions
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        idempotency_key: str,
        now: datetime,
    ) -> Applied:
        self._refuse_unsupported(action)
        return await apply_once(
            self.db,
            self.backend,
            site_id=site_id,
            subscription_id=subscription_id,
            action=action,
            idempotency_key=idempotency_key,
            now=now,
        )

    async def draft(self, subscription_id: str, action: BillingAction, now: datetime) -> Draft:
        self._refuse_unsupported(action)
        snapshot = await self.backend.read(subscription_id)
        plans, coupons = await self.backend.catalog(snapshot.state, action)
        try:
            target = apply_action(snapshot.state, action, now=now, plans=plans, coupons=coupons)
        except ActionError as exc:
            raise PermanentProviderError(str(exc)) from None
        before = summarize(snapshot.state, plans, coupons)
        return Draft(snapshot, target, before, summarize(target, plans, coupons))
