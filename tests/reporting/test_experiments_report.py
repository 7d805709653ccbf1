"""The experiments report on the ledger: each arm's subscribers (assigned in the range), their
acceptances, saves and losses once the window is over, and each arm's lift in save rate against
the holdout with its always-valid interval and verdict."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from offerd.offers import experiments
from offerd.offers.experiments import Arm, Experiment
from offerd.reporting.sweeps import fold_experiments
from tests.fulfillments.helpers import accept_option
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

ARMS = [{"id": "A", "offer_id": "a", "weight": 1}, {"id": "holdout", "weight": 1}]
EXPERIMENT = Experiment("exp", tuple(Arm(a["id"], a["weight"], a.get("offer_id")) for a in ARMS))
PER_ARM = 40


def subscribers() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"A": [], "holdout": []}
    for i in range(2000):
        arm = experiments.assign("acme", EXPERIMENT, f"cus_e{i}").id
        if len(out[arm]) < PER_ARM:
            out[arm].append(f"cus_e{i}")
        if all(len(v) == PER_ARM for v in out.values()):
            return out
    raise AssertionError("not enough customers in each arm")


async def fold(app: TestApp) -> int:
    """What the worker's ``fold_experiments`` sweep does every minute."""
    async with app.services.db.connection() as conn, conn.transaction():
        return await fold_experiments(conn, app.clock.now())


async def report(app: TestApp, **params: Any) -> list[dict[str, Any]]:
    await fold(app)
    now = int(app.clock.now().timestamp())
    query = {"from": now - 60 * 86400, "to": now + 86400, **params}
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = await app.admin("GET", f"/sites/acme/reports/experiments?{qs}")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows


async def test_arms_against_the_holdout(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/a", offer(priority=20, content={"title": "Variant A"}))
    r = await app.admin(
        "PUT",
        "/sites/acme/experiments/exp",
        {"name": "Stay test", "status": "running", "arms": ARMS},
    )
    assert r.status_code == 201, r.text
    arms = subscribers()
    everyone = [c for cs in arms.values() for c in cs]
    async with app.services.db.connection() as conn, conn.transaction():
        for c in everyone:
            await conn.execute(
                "INSERT INTO customers (site_id, id, created_at, updated_at) "
                "VALUES ('acme', %s, now(), now())",
                (c,),
            )
            await conn.execute(
                "INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status, "
                "created_at, updated_at) VALUES ('acme', %s, %s, 'basic', 'active', now(), now())",
                ("sub" + c[3:], c),
            )
    for c in everyone:
        body = {"customer_id": c, "subscription_id": "sub" + c[3:]}
        r = await app.post("/api/v2/personalized_offers", keys["publishable"], json=body)
        offers = r.json()["personalized_offers"]
        if c in arms["A"][:10]:
            await accept_option(app, keys, "talk", po=offers[0])
    # losses: 4 of A's, 16 of the holdout's cancel inside the window
    lost = arms["A"][:4] + arms["holdout"][:16]
    async with app.services.db.connection() as conn:
        await conn.execute(
            "UPDATE subscriptions SET status = 'cancelled', cancelled_at = now() + interval '3 days' "
            "WHERE site_id = 'acme' AND id = ANY(%s)",
            (["sub" + c[3:] for c in lost],),
        )

    before = {r["experiment_arm"]: r for r in await report(app)}
    assert before["A"]["assigned"] == before["holdout"]["assigned"] == PER_ARM
    assert before["A"]["accepted"] == 10 and before["holdout"]["accepted"] == 0
    assert (before["A"]["lost"], before["A"]["saved"]) == (4, 0)  # the rest not settled yet
    assert before["A"]["verdict"] == "inconclusive"

    app.clock.advance(timedelta(days=31))
    rows = {r["experiment_arm"]: r for r in await report(app)}
    a, h = rows["A"], rows["holdout"]
    assert (a["saved"], a["lost"], h["saved"], h["lost"]) == (36, 4, 24, 16)
    assert a["save_rate"] == 0.9 and h["save_rate"] == 0.6
    assert a["lift"] == 0.3 and a["interval_low"] <= 0.3 <= a["interval_high"]
    assert a["verdict"] in ("better", "inconclusive")
    assert h["holdout"] is True and h["lift"] is None
    # acceptance against the holdout (which is shown nothing, so accepts nothing): 10 of 40
    assert a["acceptance_lift"] == 0.25
    assert a["acceptance_interval_low"] <= 0.25 <= a["acceptance_interval_high"]
    assert a["acceptance_verdict"] in ("better", "inconclusive")
    assert h["acceptance_lift"] is None
    bad = await app.admin("GET", "/sites/acme/reports/experiments?from=0&to=100&group_by=offer")
    assert bad.status_code == 400
