"""SQL for the report rollups (``report_rollups``): the reports' reads, and the rebuild from
the event log. The live counting is migration 0011's triggers (this slice's SQL in the database:
see there why a trigger)."""

from __future__ import annotations

from datetime import date, datetime

from psycopg.rows import DictRow

from offerd.db import Conn, execute, fetchall, fetchone
from offerd.reporting.metrics import COUNTERS, HIST_SIZE

KEY = (
    "site_id", "day", "offer_id", "option_id", "experiment_arm", "processing_type",
    "business_entity_id", "brand_id",
)  # fmt: skip

PERIOD = {
    "day": "day",
    "week": "date_trunc('week', day)::date",
    "month": "date_trunc('month', day)::date",
    "all": "NULL::date",
}

_HIST_SUM = "ARRAY[" + ", ".join(f"sum(fulfil_hist[{i}])" for i in range(1, HIST_SIZE + 1)) + "]"
# a report's: only rows that fulfilled anything open their histogram (NULL: none did)
_HIST_REPORT = (
    "ARRAY["
    + ", ".join(
        f"sum(fulfil_hist[{i}]) FILTER (WHERE fulfilled > 0)" for i in range(1, HIST_SIZE + 1)
    )
    + "]"
)


# The compacted shard (migration 0014): written only by the compaction and the rebuild; the
# triggers count on shards 0..15. ``report_periods`` holds the compacted rows summed per week
# and month.
COMPACTED = -1
# the offer_id of a day's totals over every dimension (grain 'day' of report_periods)
TOTAL = "*"

_ROW = f"{', '.join(COUNTERS)}, fulfil_seconds, fulfil_hist, failed_by_code"
_DIMS = ", ".join(KEY[2:])
_SUMS = f"""{", ".join(f"sum({c})" for c in COUNTERS)},
    coalesce((SELECT jsonb_object_agg(k, s) FROM (
        SELECT k, sum(v::bigint) AS s FROM unnest(array_agg(failed_by_code)) j,
            jsonb_each_text(j) x(k, v) GROUP BY k) y), '{{}}'::jsonb),
    sum(fulfil_seconds), {_HIST_SUM}::bigint[]"""


def sources_sql(granularity: str, columns: tuple[str, ...], *, periods: bool) -> str:
    """The rows a report sums, as ``src(period, <columns>, counters...)``. Per day: the site's
    daily rollups in the range. Per week or month (and ``all``) with whole periods inside the
    range (``periods``): those periods' rows of ``report_periods``, plus the daily rows not
    compacted yet in them, plus every daily row of the partial periods at the range's ends."""
    dims = "".join(f", {c}" for c in columns)
    daily = f"SELECT {PERIOD[granularity]} AS period{dims}, {_ROW} FROM report_rollups"
    in_range = "site_id = %(site)s AND day >= %(first)s AND day <= %(last)s"
    if granularity == "day" and not columns:
        # the days' totals, plus what is not compacted yet
        return f"""
SELECT period, {_ROW} FROM report_periods
WHERE site_id = %(site)s AND grain = 'day' AND period >= %(first)s AND period <= %(last)s
UNION ALL
{daily} WHERE {in_range} AND shard <> {COMPACTED}
"""
    if not periods:
        return f"{daily} WHERE {in_range}"
    period = "NULL::date" if granularity == "all" else "period"
    return f"""
SELECT {period} AS period{dims}, {_ROW} FROM report_periods
WHERE site_id = %(site)s AND grain = %(grain)s AND period >= %(full_lo)s AND period < %(full_hi)s
UNION ALL
{daily} WHERE site_id = %(site)s AND day >= %(first)s AND day < %(full_lo)s
UNION ALL
{daily} WHERE site_id = %(site)s AND day >= %(full_hi)s AND day <= %(last)s
UNION ALL
{daily} WHERE site_id = %(site)s AND day >= %(full_lo)s AND day < %(full_hi)s
    AND shard <> {COMPACTED}
"""


def funnel_sql(granularity: str, columns: tuple[str, ...], *, periods: bool = False) -> str:
    """The rollups summed per period and the asked dimensions (``columns`` are the whitelisted
    names of ``query.DIMENSIONS``, never the caller's text), at most ``%(limit)s`` groups, each
    with its source rows' failures by error code as they are (an array of objects, added up by
    the caller: summing them per code here, in a second pass over the rows, cost as much again
    as the counters)."""
    order = ", ".join(["1", *columns])
    return f"""
SELECT period{"".join(f", {c}" for c in columns)},
    {", ".join(f"sum({c})::bigint AS {c}" for c in COUNTERS)},
    sum(fulfil_seconds)::double precision AS fulfil_seconds,
    {_HIST_REPORT}::bigint[] AS fulfil_hist,
    array_agg(failed_by_code) FILTER (WHERE failed > 0) AS failed_by_code
FROM ({sources_sql(granularity, columns, periods=periods)}) src
GROUP BY {order}
ORDER BY {order}
LIMIT %(limit)s
"""


async def funnel(
    conn: Conn,
    site_id: str,
    *,
    granularity: str,
    columns: tuple[str, ...],
    first: date,
    last: date,
    limit: int,
    whole: tuple[date, date] | None = None,
) -> list[DictRow]:
    """The summed counters per group (at most ``limit``) with their failures by code.
    ``whole``: the whole weeks or months inside the range, [lo, hi), read from the periods
    (None: read every day)."""
    params: dict[str, object] = {"site": site_id, "first": first, "last": last, "limit": limit}
    if whole is not None:
        params.update(
            grain="week" if granularity == "week" else "month", full_lo=whole[0], full_hi=whole[1]
        )
    return await fetchall(conn, funnel_sql(granularity, columns, periods=whole is not None), params)


# --- rebuild --------------------------------------------------------------------------------

_BUCKETS = ", ".join(
    f"count(*) FILTER (WHERE secs IS NOT NULL AND report_bucket(secs) = {i})"
    for i in range(1, HIST_SIZE + 1)
)

# The rollups of one site's days [first, last], recomputed from the event log with the
# triggers' definitions (migration 0011): decisions and first views/dismissals per personalized
# offer on its issue day, accepted/fulfilled/failed per fulfillment event with its option and
# processing type. Written as the compacted shard; ``refresh_periods`` then sums its weeks and
# months again.
REBUILD = f"""
WITH po AS (
    SELECT p.id, p.offer_id, coalesce(p.experiment_arm, '') AS arm,
           coalesce(p.business_entity_id, '') AS be, coalesce(p.brand_id, '') AS brand,
           (p.created_at AT TIME ZONE %(tz)s)::date AS day
    FROM personalized_offers p
    WHERE p.site_id = %(site)s AND p.created_at >= %(lo)s AND p.created_at < %(hi)s
), ev AS (
    SELECT po.day, e.offer_id, coalesce(f.option_id, e.option_id, '') AS option_id, po.arm,
           coalesce(f.processing_type, '') AS pt, po.be, po.brand, e.type,
           CASE WHEN e.type = 'fulfilled'
                THEN greatest(0, extract(epoch FROM e.occurred_at - f.created_at))::double precision
           END AS secs,
           CASE WHEN e.type = 'failed' THEN coalesce(f.error_code, 'unknown') END AS code
    FROM po JOIN offer_events e
        ON e.personalized_offer_id = po.id AND e.type IN ('accepted', 'fulfilled', 'failed')
    LEFT JOIN offer_fulfillments f ON f.id = e.fulfillment_id
), parts AS (
    SELECT day, offer_id, '' AS option_id, arm, '' AS pt, be, brand,
           count(*) AS decisions,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM offer_events v
               WHERE v.personalized_offer_id = po.id AND v.type = 'viewed')) AS viewed,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM offer_events v
               WHERE v.personalized_offer_id = po.id AND v.type = 'dismissed')) AS dismissed,
           0 AS accepted, 0 AS fulfilled, 0 AS failed, '{{}}'::jsonb AS codes,
           0::double precision AS secs, array_fill(0::bigint, ARRAY[{HIST_SIZE}]) AS hist
    FROM po GROUP BY 1, 2, 3, 4, 5, 6, 7
    UNION ALL
    SELECT day, offer_id, option_id, arm, pt, be, brand, 0, 0, 0,
           count(*) FILTER (WHERE type = 'accepted'),
           count(*) FILTER (WHERE type = 'fulfilled'),
           count(*) FILTER (WHERE type = 'failed'),
           coalesce((SELECT jsonb_object_agg(c, n) FROM (
                SELECT c, count(*) AS n FROM unnest(array_agg(code)) c
                WHERE c IS NOT NULL GROUP BY c) x), '{{}}'::jsonb),
           coalesce(sum(secs), 0),
           ARRAY[{_BUCKETS}]::bigint[]
    FROM ev GROUP BY 1, 2, 3, 4, 5, 6, 7
)
INSERT INTO report_rollups ({", ".join(KEY)}, shard, {", ".join(COUNTERS)},
    failed_by_code, fulfil_seconds, fulfil_hist)
SELECT %(site)s, day, offer_id, option_id, arm, pt, be, brand, {COMPACTED},
       sum(decisions), sum(viewed), sum(dismissed), sum(accepted), sum(fulfilled), sum(failed),
       coalesce((array_agg(codes) FILTER (WHERE codes <> '{{}}'::jsonb))[1], '{{}}'::jsonb),
       sum(secs),
       ARRAY[{", ".join(f"sum(hist[{i}])" for i in range(1, HIST_SIZE + 1))}]::bigint[]
FROM parts GROUP BY day, offer_id, option_id, arm, pt, be, brand
"""

LOCK_SITE = "SELECT pg_advisory_xact_lock(report_site_lock(%s))"
DELETE_DAYS = "DELETE FROM report_rollups WHERE site_id = %s AND day >= %s AND day <= %s"
SPAN = """
SELECT least((SELECT min(created_at) FROM personalized_offers WHERE site_id = %(site)s),
             (SELECT min(day) FROM report_rollups WHERE site_id = %(site)s)::timestamp
                 AT TIME ZONE %(tz)s) AS first,
       greatest((SELECT max(created_at) FROM personalized_offers WHERE site_id = %(site)s),
                (SELECT max(day) FROM report_rollups WHERE site_id = %(site)s)::timestamp
                    AT TIME ZONE %(tz)s) AS last
"""


async def span(conn: Conn, site_id: str, tz: str) -> tuple[datetime | None, datetime | None]:
    """The first and last instants with anything to count or already counted."""
    row = await fetchone(conn, SPAN, {"site": site_id, "tz": tz})
    assert row is not None
    return row["first"], row["last"]


async def rebuild_days(
    conn: Conn, site_id: str, *, tz: str, first: date, last: date, lo: datetime, hi: datetime
) -> int:
    """Replace the site's rollups of days [first, last] (``lo``..``hi`` as instants) with a
    recomputation, under the site's reporting lock (the triggers wait on it). The caller's
    transaction. Returns the rows written."""
    await conn.execute(LOCK_SITE, (site_id,))
    await conn.execute(DELETE_DAYS, (site_id, first, last))
    cur = await conn.execute(REBUILD, {"site": site_id, "tz": tz, "lo": lo, "hi": hi})
    await refresh_periods(conn, site_id, first=first, last=last)
    return cur.rowcount


# The site's weeks and months that hold days [first, last], summed again from the compacted
# daily rows (after a rebuild replaced them).
_SPAN = """
    SELECT g.grain, date_trunc(g.grain, %(first)s::date)::date AS lo,
           (date_trunc(g.grain, %(last)s::date)
               + CASE g.grain WHEN 'week' THEN interval '1 week' ELSE interval '1 month' END
           )::date AS hi
    FROM (VALUES ('week'), ('month')) g(grain)"""
_R_DIMS = ", ".join(f"r.{c}" for c in KEY[2:])
DELETE_PERIODS = f"""
DELETE FROM report_periods p USING ({_SPAN}) span
WHERE p.site_id = %(site)s AND p.grain = span.grain AND p.period >= span.lo AND p.period < span.hi
"""
SUM_PERIODS = f"""
INSERT INTO report_periods (site_id, grain, period, {_DIMS}, {", ".join(COUNTERS)},
    failed_by_code, fulfil_seconds, fulfil_hist)
SELECT %(site)s, span.grain, date_trunc(span.grain, r.day)::date, {_R_DIMS}, {_SUMS}
FROM ({_SPAN}) span JOIN report_rollups r
    ON r.site_id = %(site)s AND r.day >= span.lo AND r.day < span.hi AND r.shard = {COMPACTED}
GROUP BY span.grain, date_trunc(span.grain, r.day)::date, {_R_DIMS}
"""


DELETE_TOTALS = """
DELETE FROM report_periods
WHERE site_id = %(site)s AND grain = 'day' AND period >= %(first)s AND period <= %(last)s
"""
SUM_TOTALS = f"""
INSERT INTO report_periods (site_id, grain, period, offer_id, {", ".join(COUNTERS)},
    failed_by_code, fulfil_seconds, fulfil_hist)
SELECT %(site)s, 'day', day, '{TOTAL}', {_SUMS}
FROM report_rollups
WHERE site_id = %(site)s AND day >= %(first)s AND day <= %(last)s AND shard = {COMPACTED}
GROUP BY day
"""


async def refresh_periods(conn: Conn, site_id: str, *, first: date, last: date) -> None:
    """Sum the site's weeks and months holding days [first, last] again from its compacted
    daily rows (the rebuild; a bulk load). The caller's transaction, under the site's lock."""
    params = {"site": site_id, "first": first, "last": last}
    for statement in (DELETE_PERIODS, SUM_PERIODS, DELETE_TOTALS, SUM_TOTALS):
        await conn.execute(statement, params)


SUMMED = f"""
SELECT {", ".join(KEY)}, {", ".join(f"sum({c})::bigint AS {c}" for c in COUNTERS)},
    sum(fulfil_seconds)::double precision AS fulfil_seconds, {_HIST_SUM}::bigint[] AS fulfil_hist,
    coalesce((SELECT jsonb_object_agg(k, s) FROM (
        SELECT k, sum(v::bigint) AS s FROM unnest(array_agg(failed_by_code)) j,
            jsonb_each_text(j) x(k, v) GROUP BY k) y), '{{}}'::jsonb) AS failed_by_code
FROM report_rollups WHERE site_id = %s
GROUP BY {", ".join(KEY)} ORDER BY {", ".join(KEY)}
"""


async def summed(conn: Conn, site_id: str) -> list[DictRow]:
    """Every rollup key of a site with its shards summed (what rebuild and live compare on)."""
    return await fetchall(conn, SUMMED, (site_id,))


async def sites_with_data(conn: Conn) -> list[str]:
    rows = await fetchall(conn, "SELECT id FROM sites ORDER BY id")
    return [r["id"] for r in rows]


# --- compaction -----------------------------------------------------------------------------

_KEYS = ", ".join(KEY)
_ADD_CODES = """CASE WHEN excluded.failed_by_code = '{}'::jsonb THEN report_rollups.failed_by_code
    ELSE (SELECT jsonb_object_agg(k, v) FROM (
        SELECT k, sum(v::bigint) AS v FROM (
            SELECT * FROM jsonb_each_text(report_rollups.failed_by_code)
            UNION ALL SELECT * FROM jsonb_each_text(excluded.failed_by_code)
        ) x(k, v) GROUP BY k) y) END"""
_ADD_HIST = """(SELECT array_agg(a + b ORDER BY i)
    FROM unnest(report_rollups.fulfil_hist, excluded.fulfil_hist) WITH ORDINALITY u(a, b, i))"""


def _add_to(table: str) -> str:
    """An upsert's SET adding the new row's counts to ``table``'s row."""
    return f"""{", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)},
    failed_by_code = {_ADD_CODES.replace("report_rollups.", f"{table}.")},
    fulfil_seconds = {table}.fulfil_seconds + excluded.fulfil_seconds,
    fulfil_hist = {_ADD_HIST.replace("report_rollups.", f"{table}.")}"""


# Fold the live shards of days before ``before`` into the compacted row, a batch of rows at a
# time, and add the same counts to their weeks and months (``report_periods``): the shards keep
# concurrent counting off one row lock on the day it happens; after it, one row per key is all a
# report should have to read, and a report over months reads the periods. A late event still
# counts on its shard (a row comes back), and the next run folds it again. Safe under live
# counting: the moved rows are locked, deleted and added in one statement. It holds the sites'
# reporting locks shared, as the triggers do, so a rebuild (which takes one exclusively) never
# runs beside it on the same site: a shard folded into a day the rebuild is replacing would
# count twice.
COMPACT = f"""
WITH victims AS (
    SELECT {_KEYS}, shard FROM report_rollups
    WHERE shard <> {COMPACTED} AND day < %(before)s
        -- a site being rebuilt (its reporting lock held exclusively) is left for the next run
        AND pg_try_advisory_xact_lock_shared(report_site_lock(site_id))
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM report_rollups r USING victims v
    WHERE ({", ".join(f"r.{c}" for c in KEY)}, r.shard) = ({", ".join(f"v.{c}" for c in KEY)}, v.shard)
    RETURNING r.*
), periods AS (
    INSERT INTO report_periods (site_id, grain, period, {_DIMS}, {", ".join(COUNTERS)},
        failed_by_code, fulfil_seconds, fulfil_hist)
    SELECT site_id, g.grain, date_trunc(g.grain, day)::date, {_DIMS}, {_SUMS}
    FROM gone, (VALUES ('week'), ('month')) g(grain)
    GROUP BY site_id, g.grain, date_trunc(g.grain, day)::date, {_DIMS}
    ON CONFLICT (site_id, grain, period, {_DIMS}) DO UPDATE SET {_add_to("report_periods")}
), totals AS (
    INSERT INTO report_periods (site_id, grain, period, offer_id, {", ".join(COUNTERS)},
        failed_by_code, fulfil_seconds, fulfil_hist)
    SELECT site_id, 'day', day, '{TOTAL}', {_SUMS}
    FROM gone GROUP BY site_id, day
    ON CONFLICT (site_id, grain, period, {_DIMS}) DO UPDATE SET {_add_to("report_periods")}
)
INSERT INTO report_rollups ({_KEYS}, shard, {", ".join(COUNTERS)}, failed_by_code,
    fulfil_seconds, fulfil_hist)
SELECT {_KEYS}, {COMPACTED}, {_SUMS}
FROM gone GROUP BY {_KEYS}
ON CONFLICT ({_KEYS}, shard) DO UPDATE SET {_add_to("report_rollups")}
"""


async def compact(conn: Conn, *, before: date, limit: int) -> int:
    """Fold up to ``limit`` shard rows of days before ``before``; returns the rows folded into."""
    cur = await conn.execute(COMPACT, {"before": before, "limit": limit})
    return cur.rowcount


# --- saves (offer_saves: written only here) --------------------------------------------------------

# Completed fulfillments on a subscription not followed yet (the last 60 days: a sweep that did
# not run for longer than that has bigger problems), each with its site's window.
ENROLL_SAVES = """
INSERT INTO offer_saves (site_id, fulfillment_id, offer_id, option_id, experiment_arm,
    processing_type, business_entity_id, brand_id, subscription_id, accepted_at, window_ends_at,
    state)
SELECT f.site_id, f.id, f.offer_id, f.option_id, coalesce(po.experiment_arm, ''),
    f.processing_type, coalesce(po.business_entity_id, ''), coalesce(po.brand_id, ''),
    f.subscription_id, f.created_at,
    f.created_at + make_interval(days => coalesce((s.settings->>'save_window_days')::int, 30)),
    'pending'
FROM offer_fulfillments f
JOIN personalized_offers po ON po.id = f.personalized_offer_id
JOIN sites s ON s.id = f.site_id
WHERE f.status = 'completed' AND f.subscription_id IS NOT NULL
  AND f.completed_at > %(now)s - interval '60 days'
  AND NOT EXISTS (
      SELECT 1 FROM offer_saves x WHERE x.site_id = f.site_id AND x.fulfillment_id = f.id)
LIMIT %(limit)s
ON CONFLICT DO NOTHING
"""

# Pending saves whose subscription was cancelled inside the window: lost, whenever it is seen.
LOSE_SAVES = """
UPDATE offer_saves x SET state = 'lost', settled_at = %(now)s
FROM subscriptions sub
WHERE x.state = 'pending' AND sub.site_id = x.site_id AND sub.id = x.subscription_id
  AND sub.status = 'cancelled' AND coalesce(sub.cancelled_at, %(now)s) <= x.window_ends_at
"""

# Pending saves whose window is over, with whether their subscription is still there.
DUE_SAVES = """
SELECT x.site_id, x.fulfillment_id, x.subscription_id, sub.id IS NOT NULL AS present
FROM offer_saves x
LEFT JOIN subscriptions sub ON sub.site_id = x.site_id AND sub.id = x.subscription_id
WHERE x.state = 'pending' AND x.window_ends_at <= %(now)s
ORDER BY x.window_ends_at
LIMIT %(limit)s
FOR UPDATE OF x SKIP LOCKED
"""

SETTLE_SAVE = """
UPDATE offer_saves SET state = %(state)s, settled_at = %(now)s, currency = %(currency)s,
    mrr = %(mrr)s
WHERE site_id = %(site)s AND fulfillment_id = %(id)s AND state = 'pending'
"""


async def enroll_saves(conn: Conn, *, now: datetime, limit: int) -> int:
    return await execute(conn, ENROLL_SAVES, {"now": now, "limit": limit})


async def lose_saves(conn: Conn, *, now: datetime) -> int:
    return await execute(conn, LOSE_SAVES, {"now": now})


async def due_saves(conn: Conn, *, now: datetime, limit: int) -> list[DictRow]:
    return await fetchall(conn, DUE_SAVES, {"now": now, "limit": limit})


async def settle_save(
    conn: Conn,
    site_id: str,
    fulfillment_id: str,
    *,
    state: str,
    currency: str | None,
    mrr: int | None,
    now: datetime,
) -> None:
    values = {
        "site": site_id,
        "id": fulfillment_id,
        "state": state,
        "currency": currency,
        "mrr": mrr,
        "now": now,
    }
    await execute(conn, SETTLE_SAVE, values)


_SAVE_DIMS = "offer_id, option_id, experiment_arm, processing_type, business_entity_id, brand_id"


def _save_sources(granularity: str, *, periods: bool) -> str:
    """The ``save_rollups`` rows a saves report sums, as ``src(period, ...)``: days in the range;
    or, with whole weeks or months inside it (``periods``), those periods' rows plus the
    partial ends' days."""
    trunc = "NULL::date" if granularity == "all" else f"date_trunc('{granularity}', period)::date"
    daily = f"SELECT {trunc} AS period, {_SAVE_DIMS}, currency, pending, saved, lost, mrr FROM save_rollups WHERE site_id = %(site)s AND grain = 'day'"
    if not periods:
        return f"{daily} AND period >= %(first)s AND period <= %(last)s"
    period = "NULL::date" if granularity == "all" else "period"
    return f"""
SELECT {period} AS period, {_SAVE_DIMS}, currency, pending, saved, lost, mrr
FROM save_rollups
WHERE site_id = %(site)s AND grain = %(grain)s AND period >= %(full_lo)s AND period < %(full_hi)s
UNION ALL
{daily} AND period >= %(first)s AND period < %(full_lo)s
UNION ALL
{daily} AND period >= %(full_hi)s AND period <= %(last)s
"""


def saves_sql(
    granularity: str, columns: tuple[str, ...], *, revenue: bool = False, periods: bool = False
) -> str:
    """The saves report: per period of acceptance (the site's days) and the asked dimensions;
    with ``revenue``, the saved ones' monthly revenue per currency instead of the counts. At
    most ``%(limit)s`` groups."""
    keys = ["period", *columns]
    if revenue:
        keys.append("currency")
        measures = "sum(mrr) AS revenue"
        where, having = "WHERE currency <> ''", "HAVING sum(saved) > 0"
    else:
        measures = """sum(pending)::bigint AS pending, sum(saved)::bigint AS saved,
    sum(lost)::bigint AS lost"""
        where, having = "", "HAVING sum(pending) + sum(saved) + sum(lost) > 0"
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    return f"""
SELECT {", ".join(keys)}, {measures}
FROM ({_save_sources(granularity, periods=periods)}) src
{where}
GROUP BY {group}
{having}
ORDER BY {group}
LIMIT %(limit)s
"""


async def saves_report(
    conn: Conn,
    site_id: str,
    *,
    granularity: str,
    columns: tuple[str, ...],
    first: date,
    last: date,
    limit: int,
    whole: tuple[date, date] | None = None,
) -> tuple[list[DictRow], list[DictRow]]:
    """(counts per group, revenue per group and currency), from the save rollups of days
    [first, last] (``whole``: the whole weeks or months inside, read as such). The revenue is
    not read when the groups reach ``limit``: the report is refused."""
    values: dict[str, object] = {"site": site_id, "first": first, "last": last, "limit": limit}
    if whole is not None:
        values.update(
            grain="week" if granularity == "week" else "month", full_lo=whole[0], full_hi=whole[1]
        )
    periods = whole is not None
    counts = await fetchall(conn, saves_sql(granularity, columns, periods=periods), values)
    if not 0 < len(counts) < limit:
        return counts, []
    revenue = await fetchall(
        conn, saves_sql(granularity, columns, revenue=True, periods=periods), values
    )
    return counts, revenue


# The site's save rollups recomputed from its saves (after a time zone change); the settling
# sweep's writes wait (the table lock) so none is counted twice or lost.
REBUILD_SAVES = f"""
INSERT INTO save_rollups (site_id, grain, period, {_SAVE_DIMS}, currency,
    pending, saved, lost, mrr)
SELECT x.site_id, g.grain, date_trunc(g.grain, report_day(x.site_id, x.accepted_at))::date,
       {", ".join(f"x.{d}" for d in _SAVE_DIMS.split(", "))}, coalesce(x.currency, ''),
       count(*) FILTER (WHERE x.state = 'pending'), count(*) FILTER (WHERE x.state = 'saved'),
       count(*) FILTER (WHERE x.state = 'lost'),
       coalesce(sum(x.mrr) FILTER (WHERE x.state = 'saved'), 0)
FROM offer_saves x, (VALUES ('day'), ('week'), ('month')) g(grain)
WHERE x.site_id = %(site)s
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
"""


async def rebuild_saves(conn: Conn, site_id: str) -> int:
    """Replace the site's save rollups with a recomputation; the caller's transaction."""
    await conn.execute("LOCK TABLE offer_saves IN SHARE MODE")
    await conn.execute("DELETE FROM save_rollups WHERE site_id = %s", (site_id,))
    cur = await conn.execute(REBUILD_SAVES, {"site": site_id})
    return cur.rowcount


SAVE_ROLLUPS = f"""
SELECT grain, period, {_SAVE_DIMS}, currency, pending, saved, lost, mrr
FROM save_rollups WHERE site_id = %s AND (pending <> 0 OR saved <> 0 OR lost <> 0 OR mrr <> 0)
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""


async def save_rollups(conn: Conn, site_id: str) -> list[DictRow]:
    """Every non-empty save rollup of a site (what live counting and a rebuild compare on)."""
    return await fetchall(conn, SAVE_ROLLUPS, (site_id,))


# --- experiments: each subscriber's first assignment and what became of it ---------------------

# The save window of an assignment's site (as the saves are followed).
_WINDOW = "make_interval(days => coalesce((s.settings->>'save_window_days')::int, 30))"

# Fold a batch of unfolded ``served`` rows (oldest first) into ``experiment_assignments``: a
# subscriber's first assignment to an experiment is theirs (an earlier one found late, from a
# transaction that committed late, replaces it). Marks the rows folded in the same statement, so
# each is folded exactly once. Returns (served rows folded, assignments written).
FOLD_SERVED = f"""
WITH batch AS (
    UPDATE served sv SET folded = true
    WHERE sv.id IN (SELECT id FROM served WHERE NOT folded ORDER BY occurred_at
                    LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING sv.site_id, sv.experiment_id, coalesce(sv.subscription_id, sv.customer_id) AS who,
        sv.experiment_arm, sv.offer_id IS NULL AS holdout, sv.subscription_id, sv.occurred_at
), firsts AS (
    SELECT DISTINCT ON (site_id, experiment_id, who) * FROM batch
    ORDER BY site_id, experiment_id, who, occurred_at
), written AS (
    INSERT INTO experiment_assignments (site_id, experiment_id, who, experiment_arm, holdout,
        subscription_id, assigned_at, window_ends_at, state)
    SELECT b.site_id, b.experiment_id, b.who, b.experiment_arm, b.holdout, b.subscription_id,
        b.occurred_at, b.occurred_at + {_WINDOW},
        CASE WHEN b.subscription_id IS NULL THEN 'none' ELSE 'pending' END
    FROM firsts b JOIN sites s ON s.id = b.site_id
    ON CONFLICT (site_id, experiment_id, who) DO UPDATE SET
        experiment_arm = excluded.experiment_arm, holdout = excluded.holdout,
        subscription_id = excluded.subscription_id, assigned_at = excluded.assigned_at,
        window_ends_at = excluded.window_ends_at
    WHERE excluded.assigned_at < experiment_assignments.assigned_at
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS folded, (SELECT count(*) FROM written) AS written
"""

# Mark assigned subscribers who accepted: fulfillments with an experiment created since the
# last run (less a margin for transactions that committed late: marking is idempotent) and
# before the oldest unfolded ``served`` row (whose assignment may not be folded yet; a
# fulfillment always follows its decision). The mark moves to that bound.
FOLD_ACCEPTANCES = """
WITH bounds AS (
    SELECT coalesce((SELECT mark FROM report_marks WHERE name = 'experiment_acceptances'),
                    '-infinity') - interval '15 minutes' AS lo,
        least(%(now)s, coalesce((SELECT min(occurred_at) FROM served WHERE NOT folded), %(now)s))
            AS hi
), marked AS (
    INSERT INTO report_marks (name, mark) SELECT 'experiment_acceptances', hi FROM bounds
    ON CONFLICT (name) DO UPDATE SET mark = greatest(report_marks.mark, excluded.mark)
)
UPDATE experiment_assignments a SET accepted = true
FROM bounds, offer_fulfillments f JOIN personalized_offers po ON po.id = f.personalized_offer_id
WHERE f.experiment_id IS NOT NULL AND f.created_at >= bounds.lo AND f.created_at < bounds.hi
  AND a.site_id = f.site_id AND a.experiment_id = f.experiment_id
  AND a.who = coalesce(po.subscription_id, po.customer_id) AND NOT a.accepted
"""

# Pending assignments whose subscription was cancelled inside the window: lost, when seen.
LOSE_ASSIGNMENTS = """
UPDATE experiment_assignments a SET state = 'lost', settled_at = %(now)s
FROM subscriptions sub
WHERE a.state = 'pending' AND sub.site_id = a.site_id AND sub.id = a.subscription_id
  AND sub.status = 'cancelled' AND sub.cancelled_at <= a.window_ends_at
"""

# Pending assignments whose window is over: saved if their subscription is still there and was
# not cancelled inside the window, lost otherwise (as the saves are settled).
SETTLE_ASSIGNMENTS = """
WITH due AS (
    SELECT site_id, experiment_id, who, subscription_id, window_ends_at
    FROM experiment_assignments
    WHERE state = 'pending' AND window_ends_at <= %(now)s
    ORDER BY window_ends_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE experiment_assignments a SET settled_at = %(now)s,
    state = CASE WHEN sub.id IS NULL
                   OR (sub.status = 'cancelled' AND sub.cancelled_at <= d.window_ends_at)
                 THEN 'lost' ELSE 'saved' END
FROM due d LEFT JOIN subscriptions sub ON sub.site_id = d.site_id AND sub.id = d.subscription_id
WHERE (a.site_id, a.experiment_id, a.who) = (d.site_id, d.experiment_id, d.who)
"""


async def lock_experiments(conn: Conn) -> None:
    """Hold the experiments' fold to this transaction: two runs at once would add to the same
    rollup rows in different orders (a deadlock), and gain nothing."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('offerd.experiments', 0))")


async def fold_served(conn: Conn, *, limit: int) -> tuple[int, int]:
    """Fold up to ``limit`` served rows; returns (rows folded, assignments written)."""
    row = await fetchone(conn, FOLD_SERVED, {"limit": limit})
    assert row is not None
    return int(row["folded"]), int(row["written"])


async def fold_acceptances(conn: Conn, *, now: datetime) -> int:
    return await execute(conn, FOLD_ACCEPTANCES, {"now": now})


async def lose_assignments(conn: Conn, *, now: datetime) -> int:
    return await execute(conn, LOSE_ASSIGNMENTS, {"now": now})


async def settle_assignments(conn: Conn, *, now: datetime, limit: int) -> int:
    return await execute(conn, SETTLE_ASSIGNMENTS, {"now": now, "limit": limit})


# One row per experiment and arm over the subscribers first assigned on days [first, last].
EXPERIMENTS = """
SELECT experiment_id, experiment_arm, bool_or(holdout) AS holdout,
    sum(assigned)::bigint AS assigned, sum(accepted)::bigint AS accepted,
    sum(pending)::bigint AS pending, sum(saved)::bigint AS saved, sum(lost)::bigint AS lost
FROM experiment_rollups
WHERE site_id = %(site)s AND day >= %(first)s AND day <= %(last)s
GROUP BY 1, 2
HAVING sum(assigned) <> 0
ORDER BY 1, 2
"""


async def experiments(conn: Conn, site_id: str, *, first: date, last: date) -> list[DictRow]:
    return await fetchall(conn, EXPERIMENTS, {"site": site_id, "first": first, "last": last})


REBUILD_EXPERIMENTS = """
INSERT INTO experiment_rollups (site_id, experiment_id, experiment_arm, day, holdout, assigned,
    accepted, pending, saved, lost)
SELECT site_id, experiment_id, experiment_arm, report_day(site_id, assigned_at), bool_or(holdout),
    count(*), count(*) FILTER (WHERE accepted), count(*) FILTER (WHERE state = 'pending'),
    count(*) FILTER (WHERE state = 'saved'), count(*) FILTER (WHERE state = 'lost')
FROM experiment_assignments WHERE site_id = %(site)s
GROUP BY 1, 2, 3, 4
"""


async def rebuild_experiments(conn: Conn, site_id: str) -> int:
    """Replace the site's experiment rollups with a recomputation from the assignments; the
    caller's transaction (the sweep waits on the table's lock)."""
    await conn.execute("LOCK TABLE experiment_assignments IN SHARE MODE")
    await conn.execute("DELETE FROM experiment_rollups WHERE site_id = %s", (site_id,))
    cur = await conn.execute(REBUILD_EXPERIMENTS, {"site": site_id})
    return cur.rowcount


EXPERIMENT_ROLLUPS = """
SELECT experiment_id, experiment_arm, day, holdout, assigned, accepted, pending, saved, lost
FROM experiment_rollups WHERE site_id = %s AND assigned <> 0 ORDER BY 1, 2, 3
"""


async def experiment_rollups(conn: Conn, site_id: str) -> list[DictRow]:
    """Every non-empty experiment rollup of a site (what the sweep and a rebuild compare on)."""
    return await fetchall(conn, EXPERIMENT_ROLLUPS, (site_id,))
