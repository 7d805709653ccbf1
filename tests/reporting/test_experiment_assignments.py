"""The experiments report's assignments, folded by the ``fold_experiments`` sweep off the
request's path: whatever the order of decisions, acceptances, cancellations, the clock and the
sweep's runs (in batches too small to keep up), the report equals one computed directly from the
decisions ``served``, the fulfillments and the subscriptions, and the rollups the trigger keeps
equal a rebuild from the assignments. Also: a decision that committed late with an earlier time
moves the subscriber to it, two sweeps at once count nobody twice, and a subscription gone when
the window ends is a loss."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offerd.reporting import store, sweeps
from offerd.reporting.sweeps import fold_experiments
from tests.fulfillments.helpers import accept_option
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

ARMS = [{"id": "A", "offer_id": "a", "weight": 1}, {"id": "holdout", "weight": 1}]
PEOPLE = 8
SITES = itertools.count()

step = st.one_of(
    st.tuples(st.just("decide"), st.integers(0, PEOPLE - 1), st.booleans()),
    st.tuples(st.just("accept"), st.integers(0, PEOPLE - 1), st.just(0)),
    st.tuples(st.just("cancel"), st.integers(0, PEOPLE - 1), st.integers(0, 40)),
    st.tuples(st.just("advance"), st.just(0), st.integers(1, 20)),
    st.tuples(st.just("fold"), st.just(0), st.just(0)),
)


async def rows(app: TestApp, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with app.services.db.connection() as conn:
        return [dict(r) for r in await (await conn.execute(sql, params)).fetchall()]


async def fold(app: TestApp) -> int:
    async with app.services.db.connection() as conn, conn.transaction():
        return await fold_experiments(conn, app.clock.now())


async def site_with_experiment(app: TestApp, site: str = "") -> tuple[str, dict[str, str]]:
    """A site (a new one each call unless named: arms are drawn per site) running the
    experiment, with ``PEOPLE`` customers each on an active subscription."""
    site = site or f"x{next(SITES)}"
    keys = await seed(app, site)
    await app.put(site, "offers/a", offer(priority=20, content={"title": "Variant A"}))
    body = {"name": "Stay test", "status": "running", "arms": ARMS}
    r = await app.admin("PUT", f"/sites/{site}/experiments/exp", body)
    assert r.status_code == 201, r.text
    async with app.services.db.connection() as conn, conn.transaction():
        for n in range(PEOPLE):
            await conn.execute(
                "INSERT INTO customers (site_id, id, created_at, updated_at) "
                "VALUES (%s, %s, now(), now())",
                (site, f"cus_p{n}"),
            )
            await conn.execute(
                "INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status, "
                "created_at, updated_at) VALUES (%s, %s, %s, 'basic', 'active', now(), now())",
                (site, f"sub_p{n}", f"cus_p{n}"),
            )
    return site, keys


async def decide(
    app: TestApp, site: str, keys: dict[str, str], who: int, with_subscription: bool
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"customer_id": f"cus_p{who}"}
    if with_subscription:
        body["subscription_id"] = f"sub_p{who}"
    r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=body)
    assert r.status_code == 200, r.text
    offers: list[dict[str, Any]] = r.json()["personalized_offers"]
    return offers


async def expected(app: TestApp, site: str, now: datetime) -> dict[str, dict[str, Any]]:
    """The report from the raw tables: each subscriber's first decision in the experiment, any
    acceptance of it, and their subscription's state against the 30-day window."""
    served = await rows(
        app,
        "SELECT experiment_id, experiment_arm, offer_id IS NULL AS holdout, "
        "coalesce(subscription_id, customer_id) AS who, subscription_id, occurred_at "
        "FROM served WHERE site_id = %s ORDER BY occurred_at",
        site,
    )
    accepted = {
        (r["experiment_id"], r["who"])
        for r in await rows(
            app,
            "SELECT f.experiment_id, coalesce(po.subscription_id, po.customer_id) AS who "
            "FROM offer_fulfillments f "
            "JOIN personalized_offers po ON po.id = f.personalized_offer_id "
            "WHERE f.site_id = %s AND f.experiment_id IS NOT NULL",
            site,
        )
    }
    subs = {
        r["id"]: r
        for r in await rows(
            app, "SELECT id, status, cancelled_at FROM subscriptions WHERE site_id = %s", site
        )
    }
    firsts: dict[tuple[str, str], Any] = {}
    for r in served:
        firsts.setdefault((r["experiment_id"], r["who"]), r)
    arms: dict[str, dict[str, Any]] = {}
    for (experiment, who), r in firsts.items():
        a = arms.setdefault(
            r["experiment_arm"],
            {"holdout": r["holdout"], "assigned": 0, "accepted": 0, "pending": 0, "saved": 0,
             "lost": 0},
        )  # fmt: skip
        a["assigned"] += 1
        a["accepted"] += (experiment, who) in accepted
        if r["subscription_id"] is None:
            continue
        end = r["occurred_at"] + timedelta(days=30)
        sub = subs.get(r["subscription_id"])
        if sub and sub["status"] == "cancelled" and sub["cancelled_at"] <= end:
            a["lost"] += 1
        elif end <= now:
            a["saved" if sub else "lost"] += 1
        else:
            a["pending"] += 1
    return arms


async def report(app: TestApp, site: str) -> dict[str, dict[str, Any]]:
    now = int(app.clock.now().timestamp())
    r = await app.admin(
        "GET", f"/sites/{site}/reports/experiments?from={now - 400 * 86400}&to={now + 86400}"
    )
    assert r.status_code == 200, r.text
    keep = ("holdout", "assigned", "accepted", "pending", "saved", "lost")
    return {row["experiment_arm"]: {k: row[k] for k in keep} for row in r.json()["rows"]}


async def rollups_equal_a_rebuild(app: TestApp, site: str) -> None:
    async with app.services.db.connection() as conn:
        live = await store.experiment_rollups(conn, site)
        async with conn.transaction():
            await store.rebuild_experiments(conn, site)
        assert await store.experiment_rollups(conn, site) == live


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(step, max_size=30))
async def test_report_equals_the_decisions_whatever_the_order(
    app: TestApp, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, int, Any]]
) -> None:
    # batches too small to keep up: acceptances must wait for their decisions to be folded
    monkeypatch.setattr(sweeps, "EXPERIMENTS_BATCH", 2)
    monkeypatch.setattr(sweeps, "EXPERIMENTS_BATCHES", 1)
    site, keys = await site_with_experiment(app)
    shown: dict[int, dict[str, Any]] = {}
    taken: set[int] = set()
    for op, who, arg in steps:
        if op == "decide":
            offers = await decide(app, site, keys, who, arg)
            if offers:
                shown[who] = offers[0]
        elif op == "accept" and who in shown and who not in taken:
            await accept_option(app, keys, "talk", po=shown[who])
            taken.add(who)
        elif op == "cancel":
            async with app.services.db.connection() as conn:
                await conn.execute(
                    "UPDATE subscriptions SET status = 'cancelled', cancelled_at = %s "
                    "WHERE site_id = %s AND id = %s AND status <> 'cancelled'",
                    (app.clock.now() + timedelta(days=arg), site, f"sub_p{who}"),
                )
        elif op == "advance":
            app.clock.advance(timedelta(days=arg))
            shown.clear()  # the offers shown have expired
        elif op == "fold":
            await fold(app)
    for _ in range(20):  # the sweep catches up, a batch a run
        await fold(app)
    assert await report(app, site) == await expected(app, site, app.clock.now())
    app.clock.advance(timedelta(days=31))  # every window over
    for _ in range(20):
        await fold(app)
    assert await report(app, site) == await expected(app, site, app.clock.now())
    await rollups_equal_a_rebuild(app, site)


async def test_a_decision_committed_late_with_an_earlier_time_moves_the_subscriber(
    app: TestApp,
) -> None:
    site, keys = await site_with_experiment(app)
    for who in range(PEOPLE):
        await decide(app, site, keys, who, True)
    await fold(app)
    before = await report(app, site)
    (first,) = await rows(
        app,
        "SELECT experiment_arm, occurred_at FROM served WHERE site_id = %s "
        "AND subscription_id = 'sub_p0'",
        site,
    )
    other = "holdout" if first["experiment_arm"] == "A" else "A"
    # as if a decision from a day earlier, in the other arm, committed only now
    await rows(
        app,
        "INSERT INTO served (id, site_id, customer_id, subscription_id, experiment_id, "
        "experiment_arm, offer_id, occurred_at) "
        "VALUES ('srv_late', %s, 'cus_p0', 'sub_p0', 'exp', %s, %s, %s) RETURNING id",
        site, other, "a" if other == "A" else None, first["occurred_at"] - timedelta(days=1),
    )  # fmt: skip
    await fold(app)
    after = await report(app, site)
    moved = first["experiment_arm"]
    assert after[moved]["assigned"] == before[moved]["assigned"] - 1
    assert after[other]["assigned"] == before.get(other, {"assigned": 0})["assigned"] + 1
    assert after == await expected(app, site, app.clock.now())
    await rollups_equal_a_rebuild(app, site)


async def test_two_sweeps_at_once_count_nobody_twice(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "EXPERIMENTS_BATCH", 3)
    site, keys = await site_with_experiment(app)
    for who in range(PEOPLE):
        for with_subscription in (True, False, True):
            await decide(app, site, keys, who, with_subscription)
    (row,) = await rows(
        app,
        "SELECT count(*) AS rows, count(DISTINCT coalesce(subscription_id, customer_id)) "
        "AS people FROM served WHERE site_id = %s",
        site,
    )
    assert row["people"] >= PEOPLE and row["rows"] > row["people"]
    counts = await asyncio.gather(fold(app), fold(app), fold(app))
    assert sum(counts) == row["people"]  # each assigned once, whichever sweep folded them
    got = await report(app, site)
    assert sum(a["assigned"] for a in got.values()) == row["people"]
    assert got == await expected(app, site, app.clock.now())
    await rollups_equal_a_rebuild(app, site)


async def test_a_subscription_gone_when_the_window_ends_is_lost(app: TestApp) -> None:
    site, keys = await site_with_experiment(app)
    await decide(app, site, keys, 0, True)
    await fold(app)
    async with app.services.db.connection() as conn:
        await conn.execute(
            "DELETE FROM subscriptions WHERE site_id = %s AND id = 'sub_p0'", (site,)
        )
    app.clock.advance(timedelta(days=31))
    await fold(app)
    (arm,) = (await report(app, site)).values()
    assert (arm["assigned"], arm["pending"], arm["saved"], arm["lost"]) == (1, 0, 0, 1)


async def test_an_acceptance_waits_for_its_decision_to_be_folded(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "EXPERIMENTS_BATCH", 1)
    monkeypatch.setattr(sweeps, "EXPERIMENTS_BATCHES", 1)
    site, keys = await site_with_experiment(app, "acc")
    shown = {}
    for who in range(PEOPLE):
        app.clock.advance(timedelta(seconds=1))
        offers = await decide(app, site, keys, who, True)
        if offers:
            shown[who] = offers[0]
    assert shown, "nobody in arm A on this site: name another"
    last = max(shown)  # the last decision with an offer: folded last
    await accept_option(app, keys, "talk", po=shown[last])
    await fold(app)  # one decision folded: the acceptance's is not yet
    app.clock.advance(timedelta(days=1))
    for _ in range(PEOPLE):
        await fold(app)
    got = await report(app, site)
    assert got["A"]["accepted"] == 1
    assert got == await expected(app, site, app.clock.now())
