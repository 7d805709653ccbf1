"""The seam between the engine and whatever holds subscriptions.

The built-in ledger (``offerd.billing.ledger``) is the default; a Stripe or Chargebee Billing
provider implements the same protocol. ``apply`` is given the transaction's connection: the
ledger writes through it (so the change commits with the fulfillment's status), a remote provider
ignores it and sends ``idempotency_key`` upstream so that a retried job applies nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from offerd.billing.actions import BillingAction, SubscriptionState
from offerd.billing.pricing import Summary
from offerd.db import Conn


class ProviderError(Exception):
    """``request_id``: the provider's id for the failed request (Stripe's ``req_…``), if any."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class PermanentProviderError(ProviderError):
    """The provider refused the change (a domain error): the fulfillment fails, no retry."""


class ProviderUnauthorized(PermanentProviderError):  # noqa: N818 - reads as the outcome
    """The provider rejected offerd's credentials (401): permanent, and the caller marks the
    site's provider unhealthy — every other call with this key will fail the same way."""


class TransientProviderError(ProviderError):
    """The provider could not be reached or was busy: the job is retried with backoff.

    ``retry_after``: seconds the provider asked to wait (``Retry-After``), used as the delay.
    ``settled``: the provider answered, and keeps that answer against the idempotency key (Stripe
    stores a 500 and replays it): the key is spent, a retry must send under a new one. Otherwise
    (no answer, a timeout, 429, a key still in flight) the outcome is unknown or nothing ran, and
    a retry sends under the same key, so that a request still on its way cannot apply twice."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        settled: bool = False,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after
        self.settled = settled


@dataclass(frozen=True, slots=True)
class Applied:
    before: SubscriptionState
    after: SubscriptionState
    replayed: bool


@dataclass(frozen=True, slots=True)
class Preview:
    before: Summary
    after: Summary


class BillingProvider(Protocol):
    # A remote provider is called with no database connection held while it answers (``conn``
    # is None); the ledger applies in the caller's transaction, so its change commits with the
    # fulfillment's status.
    remote: bool

    async def apply(
        self,
        conn: Conn | None,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        idempotency_key: str,
        now: datetime,
    ) -> Applied: ...

    async def preview(
        self,
        conn: Conn | None,
        *,
        site_id: str,
        subscription_id: str,
        action: BillingAction,
        now: datetime,
    ) -> Preview: ...
