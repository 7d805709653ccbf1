"""Property: after any workload (random offers, arms, entities, brands, time zones, events in
any order and at any time, failed fulfilments accepted again), the rollups counted live by the
triggers equal the ones ``reporting.service.rebuild`` recomputes from the event log, and so
does every report read from them; compactions run part-way keep the week and month periods
equal to the compacted days, and change no report."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offerd.reporting import service, store
from offerd.reporting.query import parse
from offerd.sites import service as sites
from tests.reporting.history import History
from tests.support.app import TestApp

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "Asia/Kathmandu", "America/Los_Angeles"]
SITES = itertools.count()

instant = st.integers(min_value=0, max_value=60 * 86400).map(lambda s: T0 + timedelta(seconds=s))
issue = st.tuples(
    st.just("issue"),
    st.sampled_from(["a", "b"]),
    st.sampled_from([None, "control", "holdout"]),
    st.sampled_from([None, "be_1"]),
    st.sampled_from([None, "brand_1"]),
    instant,
)
act = st.tuples(
    st.sampled_from(["viewed", "dismissed", "accept", "complete", "fail"]),
    st.integers(min_value=0, max_value=50),  # which offer / fulfilment (modulo what exists)
    st.sampled_from(["talk", "gift"]),
    st.sampled_from(["declined", "timeout"]),
    instant,
)
workload = st.tuples(
    st.sampled_from(ZONES),
    st.lists(issue, min_size=1, max_size=6),
    st.lists(act, max_size=25),
    st.integers(min_value=1, max_value=40),  # batch days of the rebuild
    # compactions run part-way through: (before which day, how many rows at most)
    st.lists(st.tuples(st.integers(0, 62), st.integers(1, 20)), max_size=3),
)


async def run(h: History, issues: list[Any], acts: list[Any]) -> None:
    pos = [
        await h.issue(at, offer=offer, arm=arm, entity=entity, brand=brand)
        for _, offer, arm, entity, brand, at in issues
    ]
    open_: list[tuple[str, str]] = []  # in-progress fulfilments
    live: set[str] = set()  # offers with a live (in progress or completed) fulfilment
    for kind, n, option, code, at in acts:
        po = pos[n % len(pos)]
        if kind in ("viewed", "dismissed"):
            await h.event(po, kind, at)
        elif kind == "accept" and po not in live:
            ptype = "url_redirect" if option == "talk" else "webhook"
            open_.append((po, await h.accept(po, at, option=option, processing_type=ptype)))
            live.add(po)
        elif kind in ("complete", "fail") and open_:
            po, f = open_.pop(n % len(open_))
            if kind == "complete":
                await h.complete(po, f, at)
            else:
                await h.fail(po, f, at, code)
                live.discard(po)


async def reports(app: TestApp, site_id: str) -> list[list[dict[str, Any]]]:
    out = []
    async with app.services.db.connection() as conn:
        site = await sites.get(conn, site_id)
        assert site is not None
        for granularity, group_by in [
            ("all", ""),
            ("week", "offer,option,arm"),
            ("day", "brand"),
            ("day", ""),
            ("month", "offer,processing_type"),
            ("all", "arm,business_entity"),
        ]:
            q = parse(
                start=str(int(T0.timestamp()) - 86400),
                end=str(int(T0.timestamp()) + 70 * 86400),
                granularity=granularity,
                group_by=group_by,
            )
            out.append(await service.report(conn, site, "funnel", q))
    return out


# report_periods must be the compacted daily rows summed per week and month (its invariant)
PERIODS = """
SELECT grain, period, offer_id, option_id, experiment_arm, processing_type, business_entity_id,
       brand_id, decisions, viewed, dismissed, accepted, fulfilled, failed, failed_by_code,
       round(fulfil_seconds::numeric, 3) AS secs, fulfil_hist
FROM report_periods WHERE site_id = %(site)s AND grain IN ('week', 'month')
    AND (decisions + viewed + dismissed + accepted + fulfilled + failed) > 0
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
"""
PERIODS_FROM_DAYS = """
SELECT g.grain, date_trunc(g.grain, day)::date AS period, offer_id, option_id, experiment_arm,
       processing_type, business_entity_id, brand_id, sum(decisions) AS decisions,
       sum(viewed) AS viewed, sum(dismissed) AS dismissed, sum(accepted) AS accepted,
       sum(fulfilled) AS fulfilled, sum(failed) AS failed,
       coalesce((SELECT jsonb_object_agg(k, s) FROM (
           SELECT k, sum(v::bigint) AS s FROM unnest(array_agg(failed_by_code)) j,
               jsonb_each_text(j) x(k, v) GROUP BY k) y), '{}'::jsonb) AS failed_by_code,
       round(sum(fulfil_seconds)::numeric, 3) AS secs,
       ARRAY(SELECT sum(h) FROM unnest(array_agg(fulfil_hist)) WITH ORDINALITY u(h, i)
             GROUP BY (i - 1) %% 18 ORDER BY (i - 1) %% 18)::bigint[] AS fulfil_hist
FROM report_rollups, (VALUES ('week'), ('month')) g(grain)
WHERE site_id = %(site)s AND shard = -1
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
HAVING sum(decisions + viewed + dismissed + accepted + fulfilled + failed) > 0
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
"""


# and its grain 'day' each compacted day's totals over every dimension
TOTALS = """
SELECT period AS day, decisions, viewed, dismissed, accepted, fulfilled, failed, failed_by_code,
       round(fulfil_seconds::numeric, 3) AS secs, fulfil_hist
FROM report_periods WHERE site_id = %(site)s AND grain = 'day'
    AND (decisions + viewed + dismissed + accepted + fulfilled + failed) > 0
ORDER BY 1
"""
TOTALS_FROM_DAYS = """
SELECT day, sum(decisions) AS decisions, sum(viewed) AS viewed, sum(dismissed) AS dismissed,
       sum(accepted) AS accepted, sum(fulfilled) AS fulfilled, sum(failed) AS failed,
       coalesce((SELECT jsonb_object_agg(k, s) FROM (
           SELECT k, sum(v::bigint) AS s FROM unnest(array_agg(failed_by_code)) j,
               jsonb_each_text(j) x(k, v) GROUP BY k) y), '{}'::jsonb) AS failed_by_code,
       round(sum(fulfil_seconds)::numeric, 3) AS secs,
       ARRAY(SELECT sum(h) FROM unnest(array_agg(fulfil_hist)) WITH ORDINALITY u(h, i)
             GROUP BY (i - 1) %% 18 ORDER BY (i - 1) %% 18)::bigint[] AS fulfil_hist
FROM report_rollups WHERE site_id = %(site)s AND shard = -1
GROUP BY day
HAVING sum(decisions + viewed + dismissed + accepted + fulfilled + failed) > 0
ORDER BY 1
"""


async def periods_hold(app: TestApp, site_id: str) -> None:
    async with app.services.db.connection() as conn:
        for kept_sql, derived_sql in ((PERIODS, PERIODS_FROM_DAYS), (TOTALS, TOTALS_FROM_DAYS)):
            kept = await (await conn.execute(kept_sql, {"site": site_id})).fetchall()
            derived = await (await conn.execute(derived_sql, {"site": site_id})).fetchall()
            assert kept == derived


def comparable(rows: list[Any]) -> list[dict[str, Any]]:
    return [{**r, "fulfil_seconds": round(r["fulfil_seconds"], 3)} for r in rows]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workload)
async def test_live_rollups_equal_rebuilt(app: TestApp, w: Any) -> None:
    zone, issues, acts, batch_days, compactions = w
    site_id = f"p{next(SITES)}"
    await app.create_site(site_id, time_zone=zone)
    async with app.services.db.connection() as conn:
        await run(History(conn, site_id), issues, acts)
    before = await reports(app, site_id)
    # compacted in part (some days, some rows): the periods hold the compacted part, the reports
    # read periods + what is not compacted yet + the range's partial ends, and say the same
    for day, limit in compactions:
        async with app.services.db.connection() as conn:
            await store.compact(conn, before=(T0 + timedelta(days=day)).date(), limit=limit)
        await periods_hold(app, site_id)
        assert await reports(app, site_id) == before
    async with app.services.db.connection() as conn:
        live = comparable(await store.summed(conn, site_id))
        site = await sites.get(conn, site_id)
        assert site is not None
        await service.rebuild(conn, site, batch_days=batch_days)
        rebuilt = comparable(await store.summed(conn, site_id))
    assert rebuilt == live
    assert sum(r["decisions"] for r in live) == len(issues)
    await periods_hold(app, site_id)
    assert await reports(app, site_id) == before
