"""The mirror's initial import from (the fake) Stripe through the unmodified SDK: through the
admin API and the worker, and ``offerd billing sync``; it leaves the mirror equal to Stripe's
objects, skips what offerd has no equivalent for, survives a 500, fails on refused credentials
and resumes where it stopped after a crash (kill -9 of the command, 10,000 subscriptions)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from offerd.billing.mirror import sync
from offerd.billing.stripe.mapping import row_of
from offerd.queue.runtime import build_worker
from tests.billing.test_stripe_site import SITE, stripe_site
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp
from tests.support.cli import OFFERD, run_offerd

PROVIDER = f"/sites/{SITE}/billing_provider"


async def drain(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


async def table(app: TestApp, name: str) -> dict[str, dict[str, Any]]:
    rows = await app.fetch(f"SELECT * FROM {name} WHERE site_id = %s", SITE)
    return {r["id"]: r for r in rows}


def stripe_objects(fake: FakeStripe, kind: str) -> list[dict[str, Any]]:
    """Every object of a kind as the SDK lists it (auto-paging), as the mirror should have it."""
    client = fake.client()
    service = {
        "plan": client.v1.prices,
        "coupon": client.v1.coupons,
        "customer": client.v1.customers,
        "subscription": client.v1.subscriptions,
    }[kind]
    params: dict[str, Any] = {"limit": 100}
    if kind == "subscription":
        params.update(status="all", expand=["data.discounts"])
    return [o.to_dict() for o in service.list(params).auto_paging_iter()]


def seed_variety(fake: FakeStripe, count: int) -> dict[str, str]:
    fake.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
    fake.seed_price(id="price_year", unit_amount=20000, interval="year")
    with fake.store.lock:  # a one-off price: not a plan
        one_off = fake.seed_price(id="price_once", unit_amount=500)
        one_off["recurring"] = None
        one_off["type"] = "one_time"
    fake.seed_coupon(id="HALF", percent_off=50, duration="repeating", duration_in_months=3)
    fake.seed_coupon(id="FIVE", amount_off=500, duration="forever")
    fake.seed_many(count, "price_basic", statuses=("active", "trialing", "canceled"))
    cus = fake.seed_customer(email="two@example.test")
    multi = fake.seed_subscription(cus, "price_year", coupons=["HALF"])
    with fake.store.lock:  # a second item: offerd's actions speak of one plan
        items = multi["items"]["data"]
        items.append({**items[0], "id": "si_second"})
    return {"multi": multi["id"]}


async def test_an_import_through_the_api_leaves_the_mirror_equal_to_stripe(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    special = seed_variety(fake_stripe, 250)
    await stripe_site(app, fake_stripe)

    r = await app.admin("POST", f"{PROVIDER}/sync")
    assert r.status_code == 202, r.text
    assert r.json()["sync"]["state"] == "running"
    again = await app.admin("POST", f"{PROVIDER}/sync")  # one import, not two
    assert again.status_code == 202
    assert len(await app.fetch("SELECT 1 FROM jobs WHERE kind = 'billing.sync'")) == 1
    await drain(app)

    got = (await app.admin("GET", PROVIDER)).json()["sync"]
    assert got["state"] == "idle" and got["last_error"] is None
    assert got["last_synced_at"] is not None
    assert got["counts"] == {"customers": 251, "subscriptions": 250, "plans": 2, "coupons": 3}
    assert got["skipped"] == 2  # the one-off price and the two-item subscription
    for kind, name in (("plan", "plans"), ("coupon", "coupons"), ("subscription", "subscriptions")):
        mirrored = await table(app, name)
        for obj in stripe_objects(fake_stripe, kind):
            want = row_of(kind, obj)  # type: ignore[arg-type]
            if obj["id"] in ("price_once", special["multi"]):
                assert obj["id"] not in mirrored
                continue
            row = mirrored[obj["id"]]
            if kind == "subscription":
                state = want.state  # type: ignore[union-attr]
                assert (row["status"], row["plan_id"], row["trial_end"], row["customer_id"]) == (
                    state.status,
                    state.plan_id,
                    state.trial_end,
                    obj["customer"],
                )
            else:
                for field in ("name", "currency") if kind == "plan" else ("discount_type",):
                    assert row[field] == getattr(want, field)
    statuses = {r["status"] for r in (await table(app, "subscriptions")).values()}
    assert statuses == {"active", "in_trial", "cancelled"}


async def test_a_ledger_site_has_nothing_to_import(app: TestApp) -> None:
    await app.create_site(SITE)
    r = await app.admin("POST", f"{PROVIDER}/sync")
    assert r.status_code == 400
    assert "ledger" in r.json()["message"]


async def test_a_500_mid_import_is_retried_and_the_import_completes(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    fake_stripe.seed_many(150, "price_basic")
    await stripe_site(app, fake_stripe)
    fake_stripe.fail_next(1, 500, methods=("GET",))
    async with app.services.db.connection() as conn:
        source = await app.services.billing.source(conn, SITE)
    assert source is not None

    async def no_wait(_: float) -> None:
        return None

    outcome = await sync.run(
        app.services.db, source, SITE, now=app.services.clock.now, sleep=no_wait
    )

    assert outcome.seen["subscription"] == 150
    assert len(await table(app, "subscriptions")) == 150


async def test_refused_credentials_fail_it_and_get_shows_why(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    await stripe_site(app, fake_stripe)
    fake_stripe.invalidate_key()
    await app.admin("POST", f"{PROVIDER}/sync")
    await drain(app)
    body = (await app.admin("GET", PROVIDER)).json()
    assert body["status"] == "unhealthy"
    assert body["sync"]["state"] == "failed"
    assert "API key" in body["sync"]["last_error"]


class Crash(Exception):
    pass


async def test_an_import_stopped_midway_resumes_at_the_page_it_stopped_at(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    fake_stripe.seed_many(450, "price_basic")
    await stripe_site(app, fake_stripe)
    async with app.services.db.connection() as conn:
        source = await app.services.billing.source(conn, SITE)
    assert source is not None
    pages: list[str] = []

    def crash_after_two_subscription_pages(kind: str, seen: int) -> None:
        if kind == "subscription" and seen >= 200:
            raise Crash
        pages.append(kind)

    with pytest.raises(Crash):
        await sync.run(
            app.services.db,
            source,
            SITE,
            now=app.services.clock.now,
            progress=crash_after_two_subscription_pages,
        )
    assert len(await table(app, "subscriptions")) == 200
    before = len(fake_stripe.requests)

    outcome = await sync.run(app.services.db, source, SITE, now=app.services.clock.now)

    assert len(await table(app, "subscriptions")) == 450
    assert outcome.seen["subscription"] == 450
    lists = [r for r in fake_stripe.requests[before:] if r.path == "/v1/subscriptions"]
    assert lists[0].params.get("starting_after")  # not from the first page again
    assert not [r for r in fake_stripe.requests[before:] if r.path == "/v1/customers"]


def synced_subscriptions(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT coalesce((seen->>'subscription')::int, 0) FROM billing_syncs WHERE site_id = %s",
            (SITE,),
        ).fetchone()
    return row[0] if row else 0


async def test_kill_9_during_a_10000_subscription_import_then_it_resumes_and_completes(
    app: TestApp, fake_stripe: FakeStripe, db_url: str, tmp_path: Path
) -> None:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    fake_stripe.seed_many(10_000, "price_basic")
    await stripe_site(app, fake_stripe)
    env = {
        **os.environ,
        "OFFERD_DATABASE_URL": db_url,
        "OFFERD_LOG_LEVEL": "warning",
        "OFFERD_ALLOW_PRIVATE_DESTINATIONS": "1",
    }
    proc = subprocess.Popen(
        [str(OFFERD), "billing", "sync", "--site", SITE],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while synced_subscriptions(db_url) < 2000:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    stopped_at = synced_subscriptions(db_url)
    assert 2000 <= stopped_at < 10_000
    before = len(fake_stripe.requests)

    done = run_offerd(db_url, tmp_path, "billing", "sync", "--site", SITE)

    assert done.returncode == 0, done.stderr
    assert "10,000 subscriptions" in done.stderr
    (count,) = await app.fetch("SELECT count(*) AS n FROM subscriptions WHERE site_id = %s", SITE)
    assert count["n"] == 10_000
    lists = [r for r in fake_stripe.requests[before:] if r.path == "/v1/subscriptions"]
    assert lists[0].params.get("starting_after")  # resumed, not started over
    assert len(lists) <= 100 - stopped_at // 100 + 1
    body = (await app.admin("GET", PROVIDER)).json()["sync"]
    assert body["state"] == "idle" and body["counts"]["subscriptions"] == 10_000
