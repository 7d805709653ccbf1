"""kill -9 the worker again and again while 500 billing_update fulfillments are applied through a
remote provider (the fake Stripe, the fake Chargebee, each a real HTTP server answering slowly
enough that kills land while calls are under way): every fulfillment still ends ``completed``
with one ``fulfilled`` event, and the provider's own record shows each subscription changed
exactly once, under the fulfillment's key.

A killed worker may die before, during or after a provider call: ``billing.remote`` records each
generation before sending it and re-reads the subscription before any retry, so a change the
provider made for a dead worker is found and not made again.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import pytest

from offerd.billing.mirror import sync
from tests.billing.test_chargebee_site import chargebee_site
from tests.billing.test_stripe_site import stripe_site
from tests.fakes.chargebee_api import FakeChargebee, chargebee_fake  # noqa: F401
from tests.fakes.stripe_api import FakeStripe, fake_stripe  # noqa: F401
from tests.fault.harness import (
    REPORT,
    Workers,
    fetch,
    in_progress,
    scalar,
    scaled,
    timeout_mark,
    wait_until_final,
)
from tests.fault.test_worker_killed import kill_and_count
from tests.support.app import TestApp
from tests.support.catalog import offer

pytestmark = [pytest.mark.fault, timeout_mark(600)]

LEASE = 2.0
IDLE_POLL = 0.5
CONCURRENCY = 16
LATENCY = 0.02  # per provider request: enough for kills to land mid-call


class Provider:
    """One fake provider as the test drives it."""

    site: str
    option: dict[str, Any]

    async def setup(self, app: TestApp, n: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
        raise NotImplementedError

    def changes(self, sub_id: str) -> list[str]:
        """The idempotency keys of the changes the provider applied to the subscription."""
        raise NotImplementedError


class StripeSide(Provider):
    site = "shop"

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    async def setup(self, app: TestApp, n: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
        self.fake.seed_price(id="price_basic", unit_amount=2000)
        subs = self.fake.seed_many(n, "price_basic")
        keys = await stripe_site(app, self.fake)  # offer "stay": its "discount" applies SAVE10
        pairs = [(self.fake.subscription(s)["customer"], s) for s in subs]
        return keys, pairs

    def changes(self, sub_id: str) -> list[str]:
        return [c.idempotency_key or "" for c in self.fake.history(sub_id)]


class ChargebeeSide(Provider):
    site = "cbshop"

    def __init__(self, fake: FakeChargebee) -> None:
        self.fake = fake

    async def setup(self, app: TestApp, n: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
        self.fake.seed_item_price("basic-USD-monthly", 2000)
        self.fake.seed_coupon("TEN", discount_percentage=10.0)
        pairs = []
        for i in range(n):
            sub = self.fake.seed_subscription(f"k{i}", items="basic-USD-monthly")
            pairs.append((sub["customer_id"], sub["id"]))
        keys = await chargebee_site(app, self.fake)
        discount = {
            "id": "discount",
            "label": "10% off",
            "processing_type": "billing_update",
            "billing_action": {"type": "apply_coupon", "coupon_id": "TEN"},
        }
        r = await app.admin("PUT", f"/sites/{self.site}/offers/stay", offer(options=[discount]))
        assert r.status_code in (200, 201), r.text
        return keys, pairs

    def changes(self, sub_id: str) -> list[str]:
        return [c.get("idempotency_key") or "" for c in self.fake.history(sub_id)]


async def accept_all(
    app: TestApp, keys: dict[str, str], pairs: list[tuple[str, str]]
) -> dict[str, str]:
    """One accepted ``discount`` per subscriber: {subscription id: fulfillment id}."""
    gate = asyncio.Semaphore(8)

    async def one(customer_id: str, sub_id: str) -> tuple[str, str]:
        async with gate:
            ids = {"customer_id": customer_id, "subscription_id": sub_id}
            r = await app.post("/api/v2/personalized_offers", keys["full_access"], json=ids)
            assert r.status_code == 200, r.text
            (po,) = r.json()["personalized_offers"]
            body = {"personalized_offer_id": po["id"], "option_id": "discount"}
            r = await app.post("/api/v2/offer_fulfillments", keys["full_access"], json=body)
            assert r.status_code == 202, r.text
            return sub_id, r.json()["offer_fulfillment"]["id"]

    return dict(await asyncio.gather(*(one(c, s) for c, s in pairs)))


@pytest.fixture(params=["stripe", "chargebee"])
def provider(request: pytest.FixtureRequest) -> Provider:
    if request.param == "stripe":
        return StripeSide(request.getfixturevalue("fake_stripe"))
    return ChargebeeSide(request.getfixturevalue("chargebee_fake"))


async def test_kill_9_repeatedly_while_remote_billing_updates_run(
    app: TestApp, workers: Workers, provider: Provider
) -> None:
    n = scaled(500)
    seed_value = int(os.environ.get("OFFERD_FAULT_SEED", random.randrange(1 << 32)))
    replay = f"OFFERD_FAULT_SEED={seed_value}"
    rng = random.Random(seed_value)
    keys, pairs = await provider.setup(app, n)
    async with app.services.db.connection() as conn:  # decisions read the mirror
        source = await app.services.billing.source(conn, provider.site)
    assert source is not None
    await sync.run(app.services.db, source, provider.site, now=app.services.clock.now)
    by_sub = await accept_all(app, keys, pairs)
    assert await in_progress(app) == n
    provider.fake.latency(LATENCY)  # type: ignore[attr-defined]

    # A job a worker died running is given up after billing_update's 8 attempts (a poison pill
    # guard): with at most 7 kills no job can be claimed more than 8 times, whatever the timing.
    max_kills = min(scaled(7), 7)
    kill_phase_ends = time.monotonic() + 150
    kills, stranded = 0, 0
    while await in_progress(app) > 0 and kills < max_kills and time.monotonic() < kill_phase_ends:
        w = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
        await w.wait_started()
        started = time.monotonic()
        target = max(await in_progress(app) - rng.randint(15, 80), 0)
        run_for = rng.uniform(0.2, 1.5)
        while time.monotonic() - started < run_for and await in_progress(app) > target:
            assert w.alive(), f"the worker died on its own\n{w.tail()}"
            await asyncio.sleep(0.01)
        stranded += await kill_and_count(app, w)
        kills += 1

    last = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
    await last.wait_started()
    await wait_until_final(app, workers, timeout=240, alive=[last])
    assert await last.terminate() == 0, last.tail()
    REPORT.append(
        f"kill -9 ({type(provider).__name__}): n={n}, {kills} kills, {stranded} claimed jobs "
        f"stranded, {replay}"
    )

    rows = await fetch(app, "SELECT id, status, error_message FROM offer_fulfillments")
    bad = [r for r in rows if r["status"] != "completed"]
    assert bad == [], replay
    twice = {}
    for sub_id, fid in by_sub.items():
        keys_applied = provider.changes(sub_id)
        if len(keys_applied) != 1 or not keys_applied[0].startswith(f"{fid}:apply:"):
            twice[sub_id] = keys_applied
    assert twice == {}, (replay, list(twice.items())[:5])
    fulfilled = await scalar(app, "SELECT count(*) FROM offer_events WHERE type = 'fulfilled'")
    assert fulfilled == n
    assert await fetch(app, "SELECT id, kind FROM jobs WHERE kind LIKE 'fulfillment.%'") == []
    assert stranded > 0, (replay, kills)  # kills really took down claimed jobs
