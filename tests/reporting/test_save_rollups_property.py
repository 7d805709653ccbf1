"""Property: whatever the settling sweep does to the saves (enrol as pending, lose, settle as
saved with revenue in any currency, in any order and time zone), the save rollups the trigger
keeps equal a rebuild from ``offer_saves``, and every saves report read from them (days, weeks,
months, all, grouped or not, ranges with partial ends) equals the report computed directly from
the saves."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offerd.reporting import service, store
from offerd.reporting.query import parse
from offerd.sites import service as sites
from tests.support.app import TestApp

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "Asia/Kathmandu", "America/Los_Angeles"]
SITES = itertools.count()

save = st.tuples(
    st.integers(0, 120 * 86400),  # accepted, seconds after T0
    st.sampled_from(["a", "b"]),
    st.sampled_from(["talk", "gift"]),
    st.sampled_from(["", "control", "holdout"]),
    st.sampled_from(["billing_update", "webhook"]),  # processing type
    st.sampled_from(["", "be_eu"]),  # business entity
    st.sampled_from(["", "brand_b"]),
    # what the sweep does next: nothing, lose it, settle it saved (currency, mrr)
    st.sampled_from(["pending", "lost", "saved"]),
    st.sampled_from(["USD", "EUR"]),
    st.integers(0, 10_000),
)
workload = st.tuples(st.sampled_from(ZONES), st.lists(save, max_size=30))

SHAPES = [
    ("day", ""),
    ("week", "offer"),
    ("month", "offer,option,arm"),
    ("all", ""),
    ("all", "arm"),
    ("month", "processing_type,business_entity,brand"),
    ("week", "offer,brand"),
]
COLUMN = {
    "offer": "offer_id", "option": "option_id", "arm": "experiment_arm",
    "processing_type": "processing_type", "business_entity": "business_entity_id",
    "brand": "brand_id",
}  # fmt: skip


def expected(
    rows: list[dict[str, Any]], tz: str, granularity: str, group_by: str, start: int, end: int
) -> list[dict[str, Any]]:
    """The saves report from the saves themselves: days of acceptance in the site's zone, the
    range widened to whole days as the report does."""
    zone = ZoneInfo(tz)
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(end - 1, zone).date()
    columns = [COLUMN[g] for g in group_by.split(",") if g]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        day = r["accepted_at"].astimezone(zone).date()
        if not first <= day <= last:
            continue
        if granularity == "day":
            period: Any = day
        elif granularity == "week":
            period = day - timedelta(days=day.weekday())
        elif granularity == "month":
            period = day.replace(day=1)
        else:
            period = None
        key = (period, *(r[c] for c in columns))
        g = groups.setdefault(key, {"pending": 0, "saved": 0, "lost": 0, "revenue": {}})
        g[r["state"]] += 1
        if r["state"] == "saved":
            g["revenue"][r["currency"]] = g["revenue"].get(r["currency"], 0) + r["mrr"]
    out = []
    for key in sorted(groups, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        g = groups[key]
        settled = g["saved"] + g["lost"]
        out.append(
            {
                **{c: key[1 + i] or None for i, c in enumerate(columns)},
                "pending": g["pending"],
                "saved": g["saved"],
                "lost": g["lost"],
                "save_rate": round(g["saved"] / settled, 4) if settled else None,
                "revenue_retained": g["revenue"],
            }
        )
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workload, st.integers(0, 40), st.integers(20, 100))
async def test_save_rollups_equal_the_saves(
    app: TestApp, w: Any, start_day: int, length: int
) -> None:
    zone, saves = w
    site_id = f"s{next(SITES)}"
    await app.create_site(site_id, time_zone=zone)
    async with app.services.db.connection() as conn:
        for n, (at, offer, option, arm, kind, entity, brand, *_) in enumerate(saves):
            accepted = T0 + timedelta(seconds=at)
            await conn.execute(
                "INSERT INTO offer_saves (site_id, fulfillment_id, offer_id, option_id, "
                "experiment_arm, processing_type, business_entity_id, brand_id, "
                "subscription_id, accepted_at, window_ends_at, state) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')",
                (site_id, f"f{n}", offer, option, arm, kind, entity, brand, f"sub{n}", accepted,
                 accepted + timedelta(days=30)),
            )  # fmt: skip
        for n, (*_, fate, currency, mrr) in enumerate(saves):
            if fate != "pending":
                await store.settle_save(
                    conn,
                    site_id,
                    f"f{n}",
                    state=fate,
                    currency=currency if fate == "saved" else None,
                    mrr=mrr if fate == "saved" else None,
                    now=T0,
                )
        rows = [
            dict(r)
            for r in await (
                await conn.execute("SELECT * FROM offer_saves WHERE site_id = %s", (site_id,))
            ).fetchall()
        ]
        site = await sites.get(conn, site_id)
        assert site is not None
        start = int((T0 + timedelta(days=start_day, hours=5)).timestamp())
        end = start + length * 86400
        for granularity, group_by in SHAPES:
            q = parse(start=str(start), end=str(end), granularity=granularity, group_by=group_by)
            got = await service.report(conn, site, "saves", q)
            want = expected(rows, zone, granularity, group_by, start, end)
            assert [{k: v for k, v in r.items() if k != "period_start"} for r in got] == want
        live = await store.save_rollups(conn, site_id)
        async with conn.transaction():
            await store.rebuild_saves(conn, site_id)
        assert await store.save_rollups(conn, site_id) == live
