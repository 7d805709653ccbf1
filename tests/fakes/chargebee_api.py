"""A stateful fake Chargebee Billing API on 127.0.0.1, for the unmodified ``chargebee`` SDK.

    with FakeChargebee(site="acme", api_key="test_key") as fake:   # or the fixtures below
        fake.seed_item_price("basic-USD-monthly", 1000)
        fake.seed_coupon("TEN", discount_percentage=10.0)
        sub = fake.seed_subscription("sub_1", items="basic-USD-monthly")
        cb = fake.sdk()            # Chargebee(api_key, site, chargebee_domain="localhost:PORT",
                                   #           protocol="http"); needs *.localhost → 127.0.0.1 and
                                   # Chargebee.verify_ca_certs = False (the fixtures do both)
        cb.Subscription.update_for_items("sub_1", {"coupon_ids": ["TEN"]},
                                         headers={"chargebee-idempotency-key": "k1"})
        assert [h["op"] for h in fake.history("sub_1")] == ["update_for_items"]

Where offerd points the SDK at a base URL itself, that base is ``fake.api_base``
(``http://127.0.0.1:PORT``; the API lives under ``/api/v2``).

What it checks like Chargebee: the API key (HTTP Basic user name; 401
``api_authentication_failed``), required and malformed parameters (400 ``param_wrong_value``
naming ``param``), unknown objects (404 ``resource_not_found``), the subscription state machine
(409 ``invalid_state_for_request``), idempotency keys (replay within 30 minutes of the fake's
clock with ``chargebee-idempotency-replayed: true``; other parameters under the same key → 422
``unable_to_process_request``). Objects are shaped like Chargebee's documented ones.

Ending a trial now: Chargebee's ``change_term_end`` reference requires a future
``term_ends_at``, so the fake refuses "now" there (400 ``param_wrong_value``). The fake ends a
trial when ``update_for_items`` gets a ``trial_end`` at or before now (e.g. 0) on an ``in_trial``
subscription: it turns ``active`` with a fresh term. That follows our reading of the
``update_for_items`` reference (a backdated ``trial_end`` is allowed for ``in_trial``
subscriptions and activates them); it could not be confirmed against the stored reference pages,
so check it before offerd relies on it.

Faults, from the test's thread: ``fail_next(n, status, retry_after)`` (answered before anything
is processed), ``apply_then_drop_connection(n)`` (the next n changes are applied and stored under
their idempotency key, then the connection is closed with no answer), ``latency(seconds)``,
``revoke_key()``. ``calls`` records every request and its answer.

Fixtures: ``chargebee_fake`` (a running fake, site ``acme``, key ``test_cb_key``) and
``chargebee_sdk`` (the SDK pointed at it, ``*.localhost`` resolving to 127.0.0.1 and
``Chargebee.verify_ca_certs`` off for the test only); register them by importing them into a
``conftest.py`` or test module (``from tests.fakes.chargebee_api import chargebee_fake,
chargebee_sdk, localhost_dns  # noqa: F401``).

Webhooks: every change queues the events Chargebee would send (``take_events()``);
``event_for(sub_id, type)`` builds one from the current state; ``post_events(url, events, user,
password, duplicates=, order=)`` delivers them as Chargebee does (JSON, HTTP Basic).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from chargebee import Chargebee

from tests.compat.conftest import localhost_dns  # noqa: F401  (the SDK builds *.localhost hosts)
from tests.fakes.chargebee import webhooks
from tests.fakes.chargebee.server import Call, Server, serve
from tests.fakes.chargebee.store import FakeClock, Obj, Store

__all__ = ["Call", "FakeChargebee", "FakeClock", "chargebee_fake", "chargebee_sdk"]


class FakeChargebee:
    def __init__(
        self, site: str = "acme", api_key: str = "test_cb_key", now: int | None = None
    ) -> None:
        self.site = site
        self.clock = FakeClock(now if now is not None else int(time.time()))
        self.store = Store(site, self.clock)
        self._server = Server(self.store, api_key)
        self._httpd: Any = None
        self._thread: Any = None

    # --- lifecycle and addresses ----------------------------------------------------------------

    def start(self) -> FakeChargebee:
        self._httpd, self._thread = serve(self._server)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> FakeChargebee:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the fake is not running"
        port: int = self._httpd.server_address[1]
        return port

    @property
    def api_base(self) -> str:
        """The base before ``/api/v2`` (what a site's ``api_base`` setting names)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def domain(self) -> str:
        """The SDK's ``chargebee_domain``: it then calls ``http://{site}.localhost:PORT/api/v2``."""
        return f"localhost:{self.port}"

    @property
    def api_key(self) -> str | None:
        return self._server.api_key

    def sdk(self, api_key: str | None = None) -> Chargebee:
        return Chargebee(
            api_key=api_key or self._server.api_key or "revoked",
            site=self.site,
            chargebee_domain=self.domain,
            protocol="http",
        )

    # --- seeding and reading state ------------------------------------------------------------

    def seed_customer(self, ident: str | None = None, **fields: Any) -> Obj:
        with self._server.lock:
            return copy.deepcopy(self.store.seed_customer(ident, **fields))

    def seed_item_price(self, ident: str, price: int, **fields: Any) -> Obj:
        with self._server.lock:
            return copy.deepcopy(self.store.seed_item_price(ident, price, **fields))

    def seed_coupon(self, ident: str, **fields: Any) -> Obj:
        with self._server.lock:
            return copy.deepcopy(self.store.seed_coupon(ident, **fields))

    def seed_subscription(self, ident: str | None = None, **fields: Any) -> Obj:
        with self._server.lock:
            return copy.deepcopy(self.store.seed_subscription(ident, **fields))

    def seed_many(
        self, count: int, *, items: str | None = None, status: str = "active", prefix: str = "bulk"
    ) -> list[str]:
        """``count`` customers each with one subscription (ids ``{prefix}_sub_{n}``), created one
        second apart in id order; returns the subscription ids."""
        with self._server.lock:
            if items is None:
                items = f"{prefix}-plan-USD-monthly"
                if items not in self.store.item_prices:
                    self.store.seed_item_price(items, 1500)
            start = self.clock.now - count
            ids = []
            for n in range(count):
                customer = self.store.seed_customer(f"{prefix}_cus_{n:05d}", created_at=start + n)
                sub = self.store.seed_subscription(
                    f"{prefix}_sub_{n:05d}",
                    customer_id=customer["id"],
                    items=items,
                    status=status,
                    created_at=start + n,
                )
                ids.append(sub["id"])
            return ids

    def update(self, kind: str, ident: str, **fields: Any) -> Obj:
        """Change an object as if in Chargebee's UI (``kind``: customer, coupon, item_price or
        subscription): bumps its version and queues the event Chargebee would send."""
        with self._server.lock:
            return copy.deepcopy(self.store.update(kind, ident, fields))

    def subscription(self, ident: str) -> Obj:
        with self._server.lock:
            return copy.deepcopy(self.store.subscriptions[ident])

    def history(self, ident: str) -> list[Obj]:
        """Every change applied to the subscription, oldest first (seeding is not a change)."""
        with self._server.lock:
            return copy.deepcopy(self.store.histories.get(ident, []))

    @property
    def calls(self) -> list[Call]:
        with self._server.lock:
            return list(self._server.calls)

    # --- faults ------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: int | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``n`` requests (only ``method`` ones, if given) are answered ``status`` (500,
        429, 503…, with ``Retry-After`` if given) without being processed."""
        with self._server.lock:
            self._server.faults.failures.extend([(status, retry_after, method)] * n)

    def apply_then_drop_connection(self, n: int = 1) -> None:
        with self._server.lock:
            self._server.faults.drops += n

    def latency(self, seconds: float) -> None:
        with self._server.lock:
            self._server.faults.latency = seconds

    def revoke_key(self) -> None:
        with self._server.lock:
            self._server.api_key = None

    def set_key(self, api_key: str) -> None:
        with self._server.lock:
            self._server.api_key = api_key

    # --- webhooks ------------------------------------------------------------------------------

    def take_events(self) -> list[Obj]:
        """The events the changes so far would have sent (and forget them)."""
        with self._server.lock:
            events, self.store.events = self.store.events, []
            return events

    def event_for(self, sub_id: str, event_type: str = "subscription_changed") -> Obj:
        """An event carrying the subscription (and its customer) as they are now."""
        with self._server.lock:
            return self.store.event(event_type, self.store.subscriptions[sub_id])

    def event(self, event_type: str, **content: Obj) -> Obj:
        """An event with the given content, e.g. ``event("coupon_updated", coupon=c)``."""
        with self._server.lock:
            return self.store.make_event(event_type, content)

    @staticmethod
    def post_events(
        url: str, events: Iterable[Obj], username: str, password: str, **how: Any
    ) -> list[tuple[str, int]]:
        return webhooks.post_events(url, list(events), username, password, **how)


@pytest.fixture
def chargebee_fake() -> Iterator[FakeChargebee]:
    """A running fake site ``acme`` with API key ``test_cb_key``, stopped after the test."""
    with FakeChargebee() as fake:
        yield fake


@pytest.fixture
def chargebee_sdk(
    chargebee_fake: FakeChargebee,
    localhost_dns: None,  # noqa: F811 (the fixture, imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> Chargebee:
    """The official SDK pointed at the fake. ``Chargebee.verify_ca_certs`` is a class attribute
    that ``http_request.py`` reads to choose the scheme: switched off for this test only."""
    monkeypatch.setattr(Chargebee, "verify_ca_certs", False)
    return chargebee_fake.sdk()
