"""Saves, end to end on the ledger: a completed offer on a subscription is followed for the
site's window; cancelled inside it is ``lost``, still there after it ``saved`` with the monthly
revenue its subscription bills (after the offer's coupon); the saves report and its rates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from offerd.billing.pricing import monthly
from offerd.queue.runtime import build_worker
from offerd.reporting import sweeps
from offerd.reporting.sweeps import settle_saves
from tests.fulfillments.helpers import accept_option
from tests.support.app import TestApp
from tests.support.catalog import NOW_TERM, seed


async def work(app: TestApp) -> None:
    worker = build_worker(app.services)
    while await worker.run_once():
        pass


async def settle(app: TestApp) -> int:
    async with app.services.db.connection() as conn, conn.transaction():
        return await settle_saves(conn, app.services.clock.now())


async def saves(app: TestApp, **params: Any) -> list[dict[str, Any]]:
    now = int(app.services.clock.now().timestamp())
    query = {"from": now - 90 * 86400, "to": now + 86400, "granularity": "all", **params}
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = await app.admin("GET", f"/sites/acme/reports/saves?{qs}")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows


async def second_subscriber(app: TestApp) -> None:
    await app.put("acme", "customers/cus_2", {"email": "bob@example.com"})
    await app.put(
        "acme",
        "subscriptions/sub_2",
        {
            "customer_id": "cus_2",
            "plan_id": "basic",
            "status": "active",
            "current_term_start": NOW_TERM - 86400,
            "current_term_end": NOW_TERM + 29 * 86400,
        },
    )


async def two_saved_subscribers(app: TestApp) -> None:
    """sub_1 and sub_2 each accept SAVE20 on basic (15.00/month), applied: completed."""
    keys = await seed(app)
    await second_subscriber(app)
    await accept_option(app, keys, "discount")
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["publishable"],
        json={"customer_id": "cus_2", "subscription_id": "sub_2"},
    )
    (po,) = r.json()["personalized_offers"]
    await accept_option(app, keys, "discount", po=po)
    await work(app)


async def test_pending_then_saved_with_revenue_or_lost_inside_the_window(app: TestApp) -> None:
    await two_saved_subscribers(app)

    await settle(app)
    (row,) = await saves(app)
    assert (row["pending"], row["saved"], row["lost"], row["save_rate"]) == (2, 0, 0, None)

    app.clock.advance(timedelta(days=10))
    r = await app.admin(
        "PUT",
        "/sites/acme/subscriptions/sub_2",
        {
            "customer_id": "cus_2",
            "plan_id": "basic",
            "status": "cancelled",
        },
    )
    assert r.status_code in (200, 201), r.text
    await settle(app)
    (row,) = await saves(app)
    assert (row["pending"], row["saved"], row["lost"]) == (1, 0, 1)

    app.clock.advance(timedelta(days=21))
    await settle(app)
    (row,) = await saves(app)
    assert (row["pending"], row["saved"], row["lost"], row["save_rate"]) == (0, 1, 1, 0.5)
    assert row["revenue_retained"] == {"USD": 1200}  # 15.00 less 20 %

    by_option = await saves(app, group_by="offer,option")
    assert [(r["offer_id"], r["option_id"], r["saved"]) for r in by_option] == [
        ("stay", "discount", 1)
    ]
    # the save carries its fulfilment's processing type, and its offer's entity and brand
    by_kind = await saves(app, group_by="processing_type,business_entity,brand")
    assert [(r["processing_type"], r["business_entity_id"], r["brand_id"], r["saved"], r["lost"])
            for r in by_kind] == [("billing_update", None, None, 1, 1)]  # fmt: skip
    now = int(app.clock.now().timestamp())
    csv = await app.admin(
        "GET", f"/sites/acme/reports/saves.csv?from={now - 86400 * 90}&to={now}&granularity=all"
    )
    assert csv.status_code == 200 and csv.text.splitlines()[0].endswith(
        "pending,saved,lost,save_rate,revenue_retained"
    )


async def test_a_settled_save_is_not_settled_again(app: TestApp) -> None:
    keys = await seed(app)
    await accept_option(app, keys, "discount")
    await work(app)
    await settle(app)
    app.clock.advance(timedelta(days=31))
    assert await settle(app) == 1
    assert await settle(app) == 0


@pytest.mark.parametrize("batches", [1, 2])
async def test_a_run_works_off_a_backlog_of_several_batches_up_to_its_cap(
    app: TestApp, monkeypatch: pytest.MonkeyPatch, batches: int
) -> None:
    """Two completions, batches of one: a run enrols (and later settles) both when it may take
    two batches, one when it may take one; the next run takes the rest."""
    monkeypatch.setattr(sweeps, "SAVES_BATCH", 1)
    monkeypatch.setattr(sweeps, "SAVES_BATCHES", batches)
    await two_saved_subscribers(app)

    assert await settle(app) == batches
    (row,) = await saves(app)
    assert row["pending"] == batches
    app.clock.advance(timedelta(days=31))
    # the one left is enrolled (and at once due), or both are due: settled as far as the cap goes
    await settle(app)
    await settle(app)
    (row,) = await saves(app)
    assert (row["pending"], row["saved"]) == (0, 2)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("amount", "unit", "period", "per_month"),
    [
        (1500, "month", 1, 1500),
        (12000, "year", 1, 1000),
        (4500, "month", 3, 1500),
        (700, "week", 1, 3033),
        (100, "day", 1, 3042),
    ],
)
def test_monthly_revenue_of_any_period(amount: int, unit: str, period: int, per_month: int) -> None:
    assert monthly(amount, unit, period) == per_month
