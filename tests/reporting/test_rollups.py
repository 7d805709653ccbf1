"""The funnel's definitions on hand-built event histories (table tests): cohort days in the
site's time zone, weeks and months, late and out-of-order events, once-per-offer views, error
codes, dimensions. Each history is counted live by the triggers, then checked against the
report and against a rebuild."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from offerd.reporting import service, store
from offerd.reporting.query import parse
from offerd.sites import service as sites
from tests.reporting.history import History
from tests.support.app import TestApp

T0 = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # 2026-03-02 01:00 in Tokyo, a Monday there
COUNTS = ("decisions", "viewed", "dismissed", "accepted", "fulfilled", "failed")


def ts(at: datetime) -> int:
    return int(at.timestamp())


async def report(
    app: TestApp, site: str, *, start: datetime, end: datetime, granularity: str, group_by: str = ""
) -> list[dict[str, Any]]:
    async with app.services.db.connection() as conn:
        found = await sites.get(conn, site)
        assert found is not None
        q = parse(
            start=str(ts(start)), end=str(ts(end)), granularity=granularity, group_by=group_by
        )
        return await service.report(conn, found, "funnel", q)


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(row[c] for c in COUNTS)


async def late_events_land_on_the_issue_day(h: History) -> None:
    po = await h.issue(T0)
    # the subscriber comes back three days later: viewed, accepted, fulfilled 2 days on
    f = await h.accept(po, T0 + timedelta(days=3))
    await h.event(po, "viewed", T0 + timedelta(days=3, seconds=5))  # arrives after the accept
    await h.complete(po, f, T0 + timedelta(days=5))


async def views_and_dismissals_count_once_per_offer(h: History) -> None:
    po = await h.issue(T0)
    for _ in range(3):
        await h.event(po, "viewed", T0 + timedelta(minutes=1))
    await h.event(po, "dismissed", T0 + timedelta(minutes=2))
    await h.event(po, "dismissed", T0)  # earlier than the view, written later
    await h.issue(T0 + timedelta(hours=1))


async def a_failed_fulfilment_then_a_new_accept(h: History) -> None:
    po = await h.issue(T0)
    await h.event(po, "viewed", T0)
    f1 = await h.accept(po, T0 + timedelta(minutes=1))
    await h.fail(po, f1, T0 + timedelta(minutes=2), "payment_declined")
    f2 = await h.accept(po, T0 + timedelta(minutes=3), option="gift", processing_type="webhook")
    await h.complete(po, f2, T0 + timedelta(minutes=3, seconds=20))


CASES: dict[str, tuple[Callable[[History], Awaitable[None]], tuple[int, ...], dict[str, Any]]] = {
    # name: (history, (decisions, viewed, dismissed, accepted, fulfilled, failed), extra)
    "late": (
        late_events_land_on_the_issue_day,
        (1, 1, 0, 1, 1, 0),
        # two days from accept to fulfil: the mean exactly, the p50 half-way into (1 d, 2 d]
        {
            "time_to_fulfil_mean": 172800.0,
            "time_to_fulfil_p50": 129600.0,
            "accept_to_fulfil_rate": 1.0,
        },  # fmt: skip
    ),
    "once": (views_and_dismissals_count_once_per_offer, (2, 1, 1, 0, 0, 0), {}),
    "retry": (
        a_failed_fulfilment_then_a_new_accept,
        (1, 1, 0, 2, 1, 1),
        {
            "failed_by_code": {"payment_declined": 1},
            "view_to_accept_rate": 2.0,
            "accept_to_fulfil_rate": 0.5,
            "time_to_fulfil_mean": 20.0,
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_definitions(app: TestApp, name: str) -> None:
    history, expected, extra = CASES[name]
    await app.create_site("acme", time_zone="Asia/Tokyo")
    async with app.services.db.connection() as conn:
        await history(History(conn, "acme"))
    rows = await report(
        app, "acme", start=T0 - timedelta(days=1), end=T0 + timedelta(days=10), granularity="all"
    )
    (row,) = rows
    assert counts(row) == expected
    for key, value in extra.items():
        assert row[key] == value, key
    # the issue day only: everything the subscriber did later is there too
    (day,) = await report(app, "acme", start=T0, end=T0 + timedelta(hours=1), granularity="day")
    assert counts(day) == expected
    assert day["period_start"] == ts(datetime(2026, 3, 1, 15, tzinfo=UTC))  # Tokyo midnight
    # and a range after the issue day sees none of it
    assert (
        await report(
            app,
            "acme",
            start=T0 + timedelta(days=1),
            end=T0 + timedelta(days=10),
            granularity="all",
        )
        == []
    )
    async with app.services.db.connection() as conn:
        live = await store.summed(conn, "acme")
        site = await sites.get(conn, "acme")
        assert site is not None
        await service.rebuild(conn, site)
        assert await store.summed(conn, "acme") == live


async def test_days_weeks_and_months_in_the_site_time_zone(app: TestApp) -> None:
    await app.create_site("acme", time_zone="America/Los_Angeles")
    # Los Angeles local days: Mar 31 (Tue), Apr 1 (Wed), Apr 6 (Mon next week)
    times = [
        datetime(2026, 4, 1, 6, 30, tzinfo=UTC),  # Mar 31 23:30 PDT
        datetime(2026, 4, 1, 7, 30, tzinfo=UTC),  # Apr 1 00:30 PDT
        datetime(2026, 4, 6, 12, 0, tzinfo=UTC),  # Apr 6 05:00 PDT
    ]
    async with app.services.db.connection() as conn:
        h = History(conn, "acme")
        for at in times:
            await h.issue(at)
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)

    def pdt(y: int, m: int, d: int) -> int:
        return ts(datetime(y, m, d, 7, tzinfo=UTC))  # local midnight, UTC-7

    days = await report(app, "acme", start=start, end=end, granularity="day")
    assert [(r["period_start"], r["decisions"]) for r in days] == [
        (pdt(2026, 3, 31), 1), (pdt(2026, 4, 1), 1), (pdt(2026, 4, 6), 1),
    ]  # fmt: skip
    weeks = await report(app, "acme", start=start, end=end, granularity="week")
    assert [(r["period_start"], r["decisions"]) for r in weeks] == [
        (pdt(2026, 3, 30), 2), (pdt(2026, 4, 6), 1),
    ]  # fmt: skip
    months = await report(app, "acme", start=start, end=end, granularity="month")
    assert [(r["period_start"], r["decisions"]) for r in months] == [
        (ts(datetime(2026, 3, 1, 8, tzinfo=UTC)), 1),  # March 1 is still PST (UTC-8)
        (pdt(2026, 4, 1), 2),
    ]


async def test_dimensions(app: TestApp) -> None:
    await app.create_site("acme")
    async with app.services.db.connection() as conn:
        h = History(conn, "acme")
        for arm, entity, brand in [("control", "be_eu", "b1"), ("holdout", "be_us", "b2")] * 2:
            po = await h.issue(T0, offer="stay", arm=arm, entity=entity, brand=brand)
            await h.accept(po, T0, option="gift", processing_type="webhook")
        await h.issue(T0, offer="other")
    end = T0 + timedelta(days=1)
    by_arm = await report(app, "acme", start=T0, end=end, granularity="all", group_by="offer,arm")
    assert [(r["offer_id"], r["experiment_arm"], r["decisions"]) for r in by_arm] == [
        ("other", None, 1), ("stay", "control", 2), ("stay", "holdout", 2),
    ]  # fmt: skip
    for group_by, key, values in [
        ("business_entity", "business_entity_id", [None, "be_eu", "be_us"]),
        ("brand", "brand_id", [None, "b1", "b2"]),
    ]:
        rows = await report(app, "acme", start=T0, end=end, granularity="all", group_by=group_by)
        assert sorted((r[key] or "") for r in rows) == sorted(v or "" for v in values)
    rows = await report(
        app, "acme", start=T0, end=end, granularity="all", group_by="processing_type"
    )
    assert {r["processing_type"]: r["accepted"] for r in rows} == {None: 0, "webhook": 4}


async def test_compaction_folds_shards_and_keeps_every_number(app: TestApp) -> None:
    from offerd.reporting.sweeps import compact_shards

    await app.create_site("acme")
    old, today = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC)
    async with app.services.db.connection() as conn:
        h = History(conn, "acme")
        for at in (old, today):
            po = await h.issue(at)
            await h.event(po, "viewed", at)
            f = await h.accept(po, at)
            await h.fail(po, f, at + timedelta(seconds=5), "declined")
            f = await h.accept(po, at + timedelta(seconds=6))
            await h.complete(po, f, at + timedelta(seconds=40))
        # the same counts as if three other connections had counted on their own shards
        await conn.execute(
            """INSERT INTO report_rollups
               SELECT site_id, day, offer_id, option_id, experiment_arm, processing_type,
                      business_entity_id, brand_id, s, decisions, viewed, dismissed, accepted,
                      fulfilled, failed, failed_by_code, fulfil_seconds, fulfil_hist
               FROM report_rollups, (VALUES (3), (5), (7)) x(s) WHERE shard = 0 OR true
               ON CONFLICT DO NOTHING"""
        )
        count = "SELECT day, count(*) AS n FROM report_rollups GROUP BY day ORDER BY day"
        before = await store.summed(conn, "acme")
        rows_before = await (await conn.execute(count)).fetchall()
        assert await compact_shards(conn, today) > 0
        assert await store.summed(conn, "acme") == before
        rows_after = await (await conn.execute(count)).fetchall()
    # the old day is one row per key again; today's shards are left to count
    assert rows_before[0]["n"] >= 6
    assert [r["n"] for r in rows_after] == [2, rows_before[1]["n"]]


async def test_compaction_leaves_a_site_being_rebuilt_for_its_next_run(app: TestApp) -> None:
    """A rebuild holds the site's reporting lock exclusively; the compaction skips that site's
    shards meanwhile (folding them into days the rebuild is replacing would count them twice)
    and folds them on its next run."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for site in ("busy", "idle"):
        await app.create_site(site)
        async with app.services.db.connection() as conn:
            h = History(conn, site)
            po = await h.issue(at)
            await h.event(po, "viewed", at)
    live = "SELECT site_id, count(*) AS n FROM report_rollups WHERE shard <> -1 GROUP BY 1"
    later = (at + timedelta(days=10)).date()
    async with app.services.db.connection() as rebuilding, rebuilding.transaction():
        await rebuilding.execute(store.LOCK_SITE, ("busy",))
        async with app.services.db.connection() as conn:
            await store.compact(conn, before=later, limit=1000)
            left = {r["site_id"]: r["n"] for r in await (await conn.execute(live)).fetchall()}
        assert "idle" not in left and left.get("busy", 0) > 0
    async with app.services.db.connection() as conn:
        await store.compact(conn, before=later, limit=1000)
        assert await (await conn.execute(live)).fetchall() == []
