"""Which billing provider a site's changes go through: the ledger (the default, and what a site
without a ``billing_providers`` row has), Stripe, or Chargebee Billing (not built yet: its
billing updates fail with a clear ``billing_update_failed``).

A process keeps each site's provider for ``ttl`` seconds (a changed configuration is picked up
within that, at once in the process that saved it), so a ledger site's job costs no extra
statement in the common case, and a Stripe site keeps one ``StripeClient`` per configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
import structlog

from offerd.billing import providers
from offerd.billing import providers_store as store
from offerd.billing.ledger import LedgerProvider
from offerd.billing.mirror.objects import MirrorSource
from offerd.billing.provider import Applied, BillingProvider, PermanentProviderError, Preview
from offerd.billing.stripe.provider import StripeProvider
from offerd.billing.stripe.source import StripeSource
from offerd.common.secrets import SecretBox
from offerd.db import Conn, Database
from offerd.observability import BILLING_PROVIDER_UNHEALTHY

log = structlog.get_logger("offerd.billing")

# A call to Stripe that has not answered in this long is a transient failure: the job is retried
# (and the next generation re-reads before sending). Stripe's HTTPXClient waits 80 s by default.
STRIPE_TIMEOUT_SECONDS = 20.0


class NotSupported:
    """A provider offerd cannot call yet: every change is refused, saying so."""

    remote = True

    def __init__(self, name: str) -> None:
        self.message = f"{name} is not supported yet for billing updates and checkouts"

    async def apply(self, conn: Conn | None, **_: Any) -> Applied:  # noqa: ARG002
        raise PermanentProviderError(self.message)

    async def preview(self, conn: Conn | None, **_: Any) -> Preview:  # noqa: ARG002
        raise PermanentProviderError(self.message)


@dataclass(frozen=True, slots=True)
class Remote:
    provider: BillingProvider
    source: MirrorSource | None


class SiteProviders:
    """The process's billing provider per site."""

    def __init__(self, db: Database, box: SecretBox, ledger: LedgerProvider, ttl: float = 5.0):
        self.db, self.box, self.ledger, self.ttl = db, box, ledger, ttl
        # site -> (valid until, the configuration's updated_at, its remote provider and mirror
        # source; None: the ledger, looked up on use so that a test may stand another in for it)
        self._cache: dict[str, tuple[float, datetime | None, Remote | None]] = {}

    def forget(self, site_id: str) -> None:
        """The site's configuration changed in this process."""
        self._cache.pop(site_id, None)

    async def of(self, conn: Conn, site_id: str) -> BillingProvider:
        remote = await self._remote(conn, site_id)
        return remote.provider if remote is not None else self.ledger

    async def source(self, conn: Conn, site_id: str) -> MirrorSource | None:
        """Where the site's mirror is read from; None for a ledger site (the ledger is its own
        mirror) and for a provider offerd cannot read yet."""
        remote = await self._remote(conn, site_id)
        return remote.source if remote is not None else None

    async def _remote(self, conn: Conn, site_id: str) -> Remote | None:
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
        if row["type"] == "chargebee":
            return Remote(NotSupported("Chargebee Billing"), None)
        config = providers.credentials(row, self.box)
        client = stripe.StripeClient(
            config["secret_key"],
            base_addresses={"api": config["api_base"]} if config.get("api_base") else None,
            http_client=stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_SECONDS),
            # a retry is a new generation of the call (billing.remote), recorded before it is
            # sent: the SDK's own retries would resend under one key behind its back
            max_network_retries=0,
        )
        return Remote(StripeProvider(client, self.db), StripeSource(client))

    async def unauthorized(self, conn: Conn, site_id: str, message: str) -> None:
        """The provider refused the site's credentials: mark it unhealthy (GET shows it)."""
        if await store.set_status(conn, site_id, "unhealthy"):
            BILLING_PROVIDER_UNHEALTHY.labels(site_id).inc()
            log.warning("billing_provider.unhealthy", site_id=site_id, error=message)

    async def answered(self, conn: Conn, site_id: str, provider: BillingProvider) -> None:
        """A call went through: a provider marked unknown or unhealthy is healthy again."""
        if provider is not self.ledger:
            await store.set_status(conn, site_id, "healthy")
