"""A stateful fake of the Stripe API on 127.0.0.1, for driving offerd's Stripe provider (and the
unmodified stripe SDK) in tests without a network.

    with FakeStripe() as fake:                       # or the ``fake_stripe`` fixture
        price = fake.seed_price(unit_amount=2000)
        sub = fake.seed_subscription(fake.seed_customer(), price, status="trialing")
        client = fake.client()                       # StripeClient at fake.url, no SDK retries
        client.v1.subscriptions.update(sub["id"], {"trial_end": "now"})
        assert [c.action for c in fake.history(sub["id"])] == ["update"]

Objects are Stripe's published fixtures with ids and modelled fields overridden. It checks what
Stripe checks (key, unknown and missing params, unknown ids, idempotency replay and key reuse,
state refusals) — see stripefake/app.py for the order. Faults come from the test:
``fail_next``, ``apply_then_drop_connection``, ``latency``, ``invalidate_key``. Every change to a
subscription is in ``history(sub_id)`` and in ``events`` (signed and posted by ``deliver``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import stripe
import uvicorn

from tests.fakes.stripefake import seed
from tests.fakes.stripefake.app import Logged, StripeApp
from tests.fakes.stripefake.faults import Fault, Faults
from tests.fakes.stripefake.store import API_VERSION, Change, Store
from tests.fakes.stripefake.webhooks import post_events, signed
from tests.support.server import free_port

__all__ = ["API_VERSION", "FakeStripe", "fake_stripe"]


class FakeStripe:
    def __init__(
        self,
        api_key: str = "sk_test_fake_4242424242424242",
        webhook_secret: str = "whsec_fake_secret",
        now: Callable[[], int] | None = None,
    ) -> None:
        self.api_key, self.webhook_secret = api_key, webhook_secret
        self.store = Store(now)
        self.faults = Faults()
        self.app = StripeApp(self.store, self.faults, api_key)
        self._delivered = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        self.port = free_port()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Stripe server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._server = self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base before ``/v1`` (offerd's ``api_base``)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, api_key: str | None = None, **options: Any) -> stripe.StripeClient:
        """The unmodified SDK pointed here; no SDK retries unless ``max_network_retries`` is given."""
        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(
            api_key or self.api_key, base_addresses={"api": self.url}, **options
        )

    # --- seeding (no HTTP, no events) ------------------------------------------------------

    def seed_customer(self, **fields: Any) -> dict[str, Any]:
        return seed.customer(self.store, **fields)

    def seed_price(self, **fields: Any) -> dict[str, Any]:
        return seed.price(self.store, **fields)

    def seed_coupon(self, **fields: Any) -> dict[str, Any]:
        return seed.coupon(self.store, **fields)

    def seed_subscription(
        self, customer: str | dict[str, Any], price: str | dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        return seed.subscription(self.store, customer, price, **fields)

    def seed_many(self, count: int, price: str | dict[str, Any], **fields: Any) -> list[str]:
        return seed.many(self.store, count, price, **fields)

    # --- what the test reads ---------------------------------------------------------------

    def subscription(self, sub_id: str) -> dict[str, Any]:
        with self.store.lock:
            return self.store.get("subscription", sub_id)

    def object(self, kind: str, oid: str) -> dict[str, Any]:
        with self.store.lock:
            return self.store.get(kind, oid)

    def history(self, sub_id: str) -> list[Change]:
        """Every committed change to the subscription, oldest first."""
        with self.store.lock:
            return list(self.store.histories.get(sub_id, []))

    def version(self, oid: str) -> int:
        with self.store.lock:
            return self.store.versions[oid]

    @property
    def requests(self) -> list[Logged]:
        with self.store.lock:
            return list(self.app.requests)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return list(self.store.events)

    # --- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: int | None = None,
        should_retry: bool | None = None,
        apply: bool = False,
        store: bool | None = None,
        methods: tuple[str, ...] = ("POST", "DELETE"),
    ) -> None:
        """Answer the next ``n`` matching requests with ``status``. A 500 is stored against the
        idempotency key (Stripe replays it) unless ``store=False``; 429/503 come before the API
        runs and are never stored. ``apply=True``: the change is made, then the error answered."""
        stored = status == 500 if store is None else store
        self.faults.add(
            Fault("status", status, retry_after, should_retry, apply, stored, methods), n
        )

    def apply_then_drop_connection(self, n: int = 1) -> None:
        """The next ``n`` mutating requests are applied and their answer stored against the
        idempotency key, then the connection is cut without a byte of response."""
        self.faults.add(Fault("drop"), n)

    def latency(self, seconds: float) -> None:
        self.faults.latency = seconds

    def invalidate_key(self, invalid: bool = True) -> None:
        """Every request then gets 401 (a rolled or revoked key)."""
        self.app.key_valid = not invalid

    def add_api_key(self, api_key: str) -> None:
        """Another key of the same account (objects shared, idempotency keys not)."""
        self.app.api_keys.add(api_key)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.app.key_valid = True

    # --- webhooks --------------------------------------------------------------------------

    def undelivered(self) -> list[dict[str, Any]]:
        """Events recorded since the last ``deliver`` (or since the start)."""
        with self.store.lock:
            return list(self.store.events[self._delivered :])

    def event_for(self, kind: str, oid: str, event_type: str | None = None) -> dict[str, Any]:
        """An event carrying the object's current state (not recorded): for hand-made deliveries."""
        with self.store.lock:
            obj = self.store.get(kind, oid)
            self.store.emit(event_type or f"{kind}.updated", obj)
            return self.store.events.pop()

    def signed(
        self, event: dict[str, Any], secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        return signed(event, secret or self.webhook_secret, timestamp)

    def post_events(
        self,
        url: str,
        events: list[dict[str, Any]],
        *,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> list[httpx.Response]:
        return post_events(url, events, secret or self.webhook_secret, timestamp=timestamp)

    def deliver(
        self, url: str, *, reverse: bool = False, duplicate: bool = False, secret: str | None = None
    ) -> list[httpx.Response]:
        """POST the undelivered events: in order, reversed, and/or each twice (as Stripe may)."""
        with self.store.lock:
            events = self.store.events[self._delivered :]
            self._delivered = len(self.store.events)
        if reverse:
            events = events[::-1]
        if duplicate:
            events = [e for e in events for _ in (0, 1)]
        return self.post_events(url, events, secret=secret)


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A running fake Stripe for one test."""
    with FakeStripe() as fake:
        yield fake
