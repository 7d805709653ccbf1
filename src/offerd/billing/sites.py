"""Which billing provider a site's changes go through, and where its mirror is read from: the
ledger (the default, and what a site without a ``billing_providers`` row has; its own mirror),
Stripe or Chargebee Billing (each through its official SDK).

A process keeps each site's provider for ``ttl`` seconds (a changed configuration is picked up
within that, at once in the process that saved it), so a ledger site's job costs no extra
statement in the common case, and a remote site keeps one SDK client per configuration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
import structlog

from offerd.billing import providers
from offerd.billing import providers_store as store
from offerd.billing import service as billing_service
from offerd.billing.chargebee import client as chargebee_client
from offerd.billing.chargebee.provider import ChargebeeProvider
from offerd.billing.chargebee.source import ChargebeeSource
from offerd.billing.ledger import LedgerProvider
from offerd.billing.mirror import service as mirror
from offerd.billing.mirror.objects import Kind, MirrorSource
from offerd.billing.provider import (
    BillingProvider,
    ProviderError,
)
from offerd.billing.stripe.provider import StripeProvider
from offerd.billing.stripe.source import StripeSource
from offerd.common.secrets import SecretBox
from offerd.db import Conn, Database
from offerd.edge.errors import ParamWrongValue, UnableToProcess
from offerd.observability import BILLING_PROVIDER_UNHEALTHY

log = structlog.get_logger("offerd.billing")

# A call to Stripe that has not answered in this long is a transient failure: the job is retried
# (and the next generation re-reads before sending). Stripe's HTTPXClient waits 80 s by default.
STRIPE_TIMEOUT_SECONDS = 20.0


_NOUNS: dict[str, dict[Kind, str]] = {
    "stripe": {
        "plan": "price",
        "coupon": "coupon",
        "customer": "customer",
        "subscription": "subscription",
    },
    "chargebee": {
        "plan": "item price",
        "coupon": "coupon",
        "customer": "customer",
        "subscription": "subscription",
    },
}

WEBHOOK_FIELDS = ("webhook_secret", "webhook_username", "webhook_password")


@dataclass(frozen=True, slots=True)
class Remote:
    provider: BillingProvider
    source: MirrorSource | None
    type: str  # "stripe" | "chargebee"
    webhook: Mapping[str, str]  # what the provider's webhooks authenticate with (decrypted)


class SiteProviders:
    """The process's billing provider per site."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        ledger: LedgerProvider,
        ttl: float = 5.0,
        fetch_budget: float = 1.5,
    ):
        self.db, self.box, self.ledger, self.ttl = db, box, ledger, ttl
        self.fetch_budget = fetch_budget
        # fetches of objects a decision found missing, shared by the requests that wait on them
        self._fetching: dict[tuple[str, str, str], asyncio.Task[bool]] = {}
        # site -> (valid until, the configuration's updated_at, its remote provider and mirror
        # source; None: the ledger, looked up on use so that a test may stand another in for it)
        self._cache: dict[str, tuple[float, datetime | None, Remote | None]] = {}

    def forget(self, site_id: str) -> None:
        """The site's configuration changed in this process."""
        self._cache.pop(site_id, None)

    async def of(self, conn: Conn, site_id: str) -> BillingProvider:
        remote = await self.remote(conn, site_id)
        return remote.provider if remote is not None else self.ledger

    async def source(self, conn: Conn, site_id: str) -> MirrorSource | None:
        """Where the site's mirror is read from; None for a ledger site (the ledger is its own
        mirror) and for a provider offerd cannot read yet."""
        remote = await self.remote(conn, site_id)
        return remote.source if remote is not None else None

    async def remote(self, conn: Conn, site_id: str) -> Remote | None:
        now = time.monotonic()
        hit = self._cache.get(site_id)
        if hit is None or hit[0] <= now:
            row = await providers.get(conn, site_id)
            updated = row["updated_at"] if row is not None else None
            if hit is None or hit[1] != updated:  # else the same configuration: keep its client
                hit = (now + self.ttl, updated, self._build(row))
            else:
                hit = (now + self.ttl, updated, hit[2])
            self._cache[site_id] = hit
        return hit[2]

    def _build(self, row: Mapping[str, Any] | None) -> Remote | None:
        if row is None or row["type"] == "ledger":
            return None
        config = providers.credentials(row, self.box)
        webhook = {k: config[k] for k in WEBHOOK_FIELDS if isinstance(config.get(k), str)}
        if row["type"] == "chargebee":
            cb = chargebee_client.build(config)
            return Remote(ChargebeeProvider(cb, self.db), ChargebeeSource(cb), "chargebee", webhook)
        client = stripe.StripeClient(
            config["secret_key"],
            base_addresses={"api": config["api_base"]} if config.get("api_base") else None,
            http_client=stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_SECONDS),
            # a retry is a new generation of the call (billing.remote), recorded before it is
            # sent: the SDK's own retries would resend under one key behind its back
            max_network_retries=0,
        )
        return Remote(StripeProvider(client, self.db), StripeSource(client), "stripe", webhook)

    async def fetch_missing(
        self, conn: Conn, site_id: str, kind: Kind, oid: str
    ) -> tuple[bool, str | None]:
        """Fetch an object a decision needs that the mirror lacks, waiting at most the fetch
        budget: (whether it is mirrored now, what to say in ``explain`` if not; None for a
        ledger site, its own mirror). A fetch that outlives the budget goes on in the
        background (the next request finds the object), and concurrent requests for one
        object share one fetch. The caller's connection stays held while it waits."""
        remote = await self.remote(conn, site_id)
        if remote is None or remote.source is None:
            return False, None
        key = (site_id, kind, oid)
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.create_task(mirror.refresh(self.db, remote.source, site_id, kind, oid))
            self._fetching[key] = task
            task.add_done_callback(lambda done: self._fetched(key, done))
        try:
            found = await asyncio.wait_for(asyncio.shield(task), self.fetch_budget)
        except TimeoutError:
            return False, (
                f"{kind} {oid} is not mirrored yet and {remote.type} did not answer within "
                f"{self.fetch_budget:g} s: decided without it (the fetch goes on)"
            )
        except ProviderError as exc:
            return False, f"{kind} {oid} is not mirrored and {remote.type} did not give it: {exc}"
        return (True, None) if found else (False, f"{remote.type} has no {kind} {oid}")

    async def check_offer(
        self,
        conn: Conn,
        site_id: str,
        actions: Sequence[tuple[str, str]],
        references: Sequence[tuple[str, Kind, str]],
    ) -> None:
        """What an offer's billing actions ask of the site's provider, checked when it is saved.
        Each (param, action type) must be one the provider can do (Chargebee Billing cannot
        convert a trial), and for a remote provider each (param, kind, id) must be the
        provider's: in the mirror, or else fetched from the provider (and mirrored); either
        failing is a 400 naming the param. A ledger site's ids are not checked here (its catalog
        may arrive after its offers)."""
        remote = await self.remote(conn, site_id)
        if remote is None or remote.source is None:
            return
        billing_service.check_actions(remote.type, actions)
        for param, kind, oid in references:
            if await mirror.exists(conn, site_id, kind, oid):
                continue
            noun = _NOUNS[remote.type][kind]
            try:
                found = await asyncio.wait_for(
                    mirror.refresh(self.db, remote.source, site_id, kind, oid), 10.0
                )
            except (TimeoutError, ProviderError) as exc:
                raise UnableToProcess(
                    f"could not check {param} with {remote.type}, try again: {exc or 'timed out'}",
                    param=param,
                ) from None
            if not found:
                raise ParamWrongValue(
                    param, f"{oid!r} is not a {noun} in this site's {remote.type}"
                )

    def _fetched(self, key: tuple[str, str, str], task: asyncio.Task[bool]) -> None:
        self._fetching.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.info("billing.fetch_missing_failed", key="/".join(key), error=str(task.exception()))

    async def unauthorized(self, conn: Conn, site_id: str, message: str) -> None:
        """The provider refused the site's credentials: mark it unhealthy (GET shows it)."""
        if await store.set_status(conn, site_id, "unhealthy"):
            BILLING_PROVIDER_UNHEALTHY.labels(site_id).inc()
            log.warning("billing_provider.unhealthy", site_id=site_id, error=message)

    async def answered(self, conn: Conn, site_id: str, provider: BillingProvider) -> None:
        """A call went through: a provider marked unknown or unhealthy is healthy again."""
        if provider is not self.ledger:
            await store.set_status(conn, site_id, "healthy")
