"""Report queries over generated history: N offer events (default 10 million) over two years,
spread over offers, options and experiment arms, written straight into the event tables in
chunks (the rollup triggers count them, as they count live traffic) or, with --rollups-only,
straight into the rollups (the same distribution, without the event rows: minutes instead of
an hour to generate). Then each report shape is asked repeatedly through the reporting service
(the SQL and the Python the API runs) and its p50/p95 printed. The issue's target: p95 <= 200 ms.

    .venv/bin/python bench/bench_reports.py [--events 10000000] [--rollups-only] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from offerd.reporting import store  # noqa: E402

SITE = "bench"
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 365 * 86400
EVENTS_PER_OFFER = 1.6  # a view or a dismissal, then 30% accepted and fulfilled or failed

# One chunk of personalized offers [lo, hi) of `total` and what their subscribers did, decided
# by a hash of the offer's number: 80% viewed, 20% dismissed, 30% accepted, of which 90%
# fulfilled (after 1 s to 2 h) and 10% failed (two error codes).
CHUNK_SQL = """
WITH s AS (
    SELECT i, %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
           abs(hashint8(i)) %% 1000 AS r
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
), po AS (
    INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
        content, options, context, origin, experiment_id, experiment_arm, created_at, expires_at)
    SELECT 'po_' || i, %(site)s, 'offer_' || (i %% %(offers)s), 1, 'cus_' || (i %% 100000),
        '{}', '[]', '{}', '{}', CASE WHEN i %% 3 > 0 THEN 'exp_1' END,
        CASE i %% 3 WHEN 1 THEN 'control' WHEN 2 THEN 'holdout' END, t, t + interval '1 day'
    FROM s
    RETURNING id
)
SELECT count(*) FROM po
"""

FULFILMENTS_SQL = """
WITH s AS (
    SELECT i, %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
           abs(hashint8(i)) %% 1000 AS r
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
)
INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
    processing_type, status, customer_id, origin, created_at, completed_at, failed_at,
    error_code, error_message, deadline_at)
SELECT 'ful_' || i, %(site)s, 'po_' || i, 'offer_' || (i %% %(offers)s), 'opt_' || (r %% 3),
    (ARRAY['billing_update', 'checkout', 'url_redirect'])[r %% 3 + 1],
    CASE WHEN r < 270 THEN 'completed' ELSE 'failed' END, 'cus_' || (i %% 100000), '{}',
    t + interval '30 seconds',
    CASE WHEN r < 270 THEN t + interval '30 seconds' + (1 + r * 26) * interval '1 second' END,
    CASE WHEN r >= 270 THEN t + interval '1 minute' END,
    CASE WHEN r >= 270 THEN (ARRAY['payment_declined', 'timeout'])[r %% 2 + 1] END,
    CASE WHEN r >= 270 THEN 'generated' END,
    t + interval '7 days'
FROM s WHERE r < 300
"""

EVENTS_SQL = """
WITH s AS (
    SELECT i, %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
           abs(hashint8(i)) %% 1000 AS r
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
), e AS (
    SELECT i, CASE WHEN r %% 10 < 8 THEN 'viewed' ELSE 'dismissed' END AS type, t, NULL AS ful
    FROM s
    UNION ALL SELECT i, 'accepted', t + interval '30 seconds', 'ful_' || i FROM s WHERE r < 300
    UNION ALL SELECT i, CASE WHEN r < 270 THEN 'fulfilled' ELSE 'failed' END,
        t + interval '2 minutes', 'ful_' || i FROM s WHERE r < 300
)
INSERT INTO offer_events (id, site_id, type, personalized_offer_id, offer_id, option_id,
    fulfillment_id, customer_id, origin, occurred_at)
SELECT 'ev_' || type || '_' || i, %(site)s, type, 'po_' || i, 'offer_' || (i %% %(offers)s),
    NULL, ful, 'cus_' || (i %% 100000), '{}', t
FROM e
"""

# --rollups-only: the rollup rows the same history makes, per day, offer, option and arm.
ROLLUPS_SQL = """
INSERT INTO report_rollups (site_id, day, offer_id, option_id, experiment_arm, processing_type,
    shard, decisions, viewed, dismissed, accepted, fulfilled, failed, failed_by_code, fulfil_seconds)
SELECT %(site)s, d::date, 'offer_' || o, opt, arm, pt, -1,
    CASE WHEN opt = '' THEN per_day ELSE 0 END,
    CASE WHEN opt = '' THEN per_day * 8 / 10 ELSE 0 END,
    CASE WHEN opt = '' THEN per_day * 2 / 10 ELSE 0 END,
    CASE WHEN opt = '' THEN 0 ELSE per_day / 10 END,
    CASE WHEN opt = '' THEN 0 ELSE per_day * 9 / 100 END,
    CASE WHEN opt = '' THEN 0 ELSE per_day / 100 END,
    CASE WHEN opt = '' THEN '{}'::jsonb
         ELSE jsonb_build_object('payment_declined', per_day / 100) END,
    CASE WHEN opt = '' THEN 0 ELSE per_day * 9 / 100 * 3600 END
FROM generate_series(%(start)s::timestamptz, %(start)s::timestamptz + %(span)s * interval '1 second',
                     interval '1 day') d,
     generate_series(0, %(offers)s - 1) o,
     (VALUES ('', ''), ('opt_0', 'billing_update'), ('opt_1', 'checkout'),
             ('opt_2', 'url_redirect')) x(opt, pt),
     (VALUES (''), ('control'), ('holdout')) a(arm),
     (SELECT greatest(1, %(pos)s / (730 * %(offers)s * 3))::bigint AS per_day) p
"""

# The saves the settling sweep would have written for the same history: one per fulfilled
# acceptance on a subscription (27 % of personalized offers), 80 % saved, 15 % lost, the last
# month's pending; in three arms, three options, USD and EUR.
SAVES_SQL = """
INSERT INTO offer_saves (site_id, fulfillment_id, offer_id, option_id, experiment_arm,
    subscription_id, accepted_at, window_ends_at, state, settled_at, currency, mrr)
SELECT %(site)s, 'ful_' || i, 'offer_' || (i %% %(offers)s), 'opt_' || (i %% 3),
    (ARRAY['', 'control', 'holdout'])[1 + i %% 3], 'sub_' || i, t, t + interval '30 days',
    CASE WHEN t > %(start)s::timestamptz + (%(span)s - 30 * 86400) * interval '1 second'
         THEN 'pending' WHEN abs(hashint8(i)) %% 100 < 80 THEN 'saved' ELSE 'lost' END,
    CASE WHEN t > %(start)s::timestamptz + (%(span)s - 30 * 86400) * interval '1 second'
         THEN NULL ELSE t + interval '30 days' END,
    CASE WHEN abs(hashint8(i)) %% 100 < 80 THEN (ARRAY['USD', 'EUR'])[1 + i %% 2] END,
    CASE WHEN abs(hashint8(i)) %% 100 < 80 THEN 1500 + (i %% 4) * 1000 END
FROM (SELECT i, %(start)s::timestamptz + (i::float8 / %(saves)s * %(span)s) * interval '1 second' AS t
      FROM generate_series(0, %(saves)s - 1) i) s
"""

# The decisions in experiments (two in three personalized offers): five experiments, each with a
# control, a variant and a 10 % holdout (shown nothing), a subscriber (four decisions each, close
# together) always in the same experiment and arm. Written unfolded, as the decision path
# writes them; the ``fold_experiments`` sweep's statement folds them into assignments.
SERVED_SQL = """
INSERT INTO served (id, site_id, customer_id, subscription_id, experiment_id, experiment_arm,
    offer_id, personalized_offer_id, occurred_at)
SELECT 'srv_' || i, %(site)s, 'cus_' || w, 'sub_' || w, 'exp_' || (w %% 5), arm,
    CASE WHEN arm <> 'holdout' THEN 'offer_' || (i %% %(offers)s) END, 'po_' || i, t
FROM (SELECT i, i / 4 AS w,
             %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
             CASE WHEN abs(hashint8(i / 4)) %% 10 = 0 THEN 'holdout'
                  WHEN abs(hashint8(i / 4)) %% 2 = 0 THEN 'control' ELSE 'variant' END AS arm
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i) s
WHERE i %% 3 > 0
"""

SHAPES = [
    ("all", ""),
    ("all", "offer,option,arm"),
    ("month", ""),
    ("month", "offer,option,arm,processing_type"),
    ("week", "offer"),
    ("week", "offer,option,arm"),
    ("day", ""),
    ("day", "offer"),
    ("day", "offer,option,arm"),  # 175,000 rows: refused (MAX_ROWS)
]


SAVE_SHAPES = [("all", ""), ("month", ""), ("month", "offer"), ("week", "offer,option,arm")]


def history_arguments(*, chunk: int, repeat: int) -> argparse.ArgumentParser:
    """The options of a benchmark over this generated history (also bench_experiment_detail.py
    and bench_settle_saves.py)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--offers", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=chunk, help="personalized offers per chunk")
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser


def insert_site(conn: psycopg.Connection, settings: str = "{}") -> None:
    conn.execute(
        "INSERT INTO sites (id, name, settings, created_at, updated_at) "
        "VALUES (%s, 'Bench', %s, now(), now())",
        (SITE, settings),
    )


def summary(times: list[float]) -> dict[str, float]:
    """p50 and p95 (the 95th of every 100 asks) of some asks' times in ms."""
    ordered = sorted(times)
    return {
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def generate(url: str, *, events: int, offers: int, chunk: int, rollups_only: bool) -> None:
    pos = int(events / EVENTS_PER_OFFER)
    with psycopg.connect(url, autocommit=True) as conn:
        insert_site(conn, '{"time_zone": "Europe/Paris"}')
        params = {
            "site": SITE,
            "start": START,
            "span": SPAN_SECONDS,
            "total": pos,
            "offers": offers,
        }
        if rollups_only:
            # written as compacted rows, then summed into their weeks and months as a rebuild does
            conn.execute(ROLLUPS_SQL, {**params, "pos": pos})
            span = {
                "site": SITE,
                "first": START.date(),
                "last": (START + timedelta(seconds=SPAN_SECONDS)).date(),
            }
            for statement in (
                store.DELETE_PERIODS,
                store.SUM_PERIODS,
                store.DELETE_TOTALS,
                store.SUM_TOTALS,
            ):
                conn.execute(statement, span)
        else:
            began = time.monotonic()
            for lo in range(0, pos, chunk):
                hi = min(lo + chunk, pos)
                with conn.transaction():
                    for sql in (CHUNK_SQL, FULFILMENTS_SQL, EVENTS_SQL):
                        conn.execute(sql, {**params, "lo": lo, "hi": hi})
                done = hi / pos
                rate = hi / max(time.monotonic() - began, 1e-3)
                print(f"  {done:6.1%} of {pos} personalized offers ({rate:,.0f}/s)", flush=True)
            # the steady state: the triggers' shards folded by the compaction sweep (its statement,
            # in larger batches), as a worker does for every day two days past
            folded = 1
            while folded:
                folded = conn.execute(
                    store.COMPACT, {"before": date(9999, 1, 1), "limit": 50_000}
                ).rowcount
                print(f"  compacted into {folded} rows", flush=True)
        # bulk-loaded without the per-row trigger, then summed as `offerd reports rebuild` does
        # (a property test holds the trigger's rollups equal to that rebuild)
        conn.execute("ALTER TABLE offer_saves DISABLE TRIGGER save_rollup_count")
        conn.execute(SAVES_SQL, {**params, "saves": int(pos * 0.27)})
        conn.execute("ALTER TABLE offer_saves ENABLE TRIGGER save_rollup_count")
        conn.execute(store.REBUILD_SAVES, {"site": SITE})
        fold_served(conn, params, pos, chunk)
        # the steady state a live site is in: bulk writes vacuumed and flushed (else autovacuum of
        # millions of just-updated rows, and the checkpoint writing them, run beside the asks)
        for table in (
            "save_rollups", "report_rollups", "offer_saves", "report_periods", "served",
            "experiment_assignments", "experiment_rollups", "personalized_offers",
            "offer_fulfillments", "offer_events",
        ):  # fmt: skip
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
        n = conn.execute("SELECT count(*) FROM report_rollups").fetchone()
        print(
            f"generated: {pos} personalized offers, ~{events} events, {n[0] if n else 0} rollup rows"
        )


def fold_served(conn: psycopg.Connection, params: dict[str, object], pos: int, chunk: int) -> None:
    """Write the decisions in experiments, then fold them as the sweep does (its statement, in
    larger batches), printing how fast it folds."""
    for lo in range(0, pos, chunk * 5):
        conn.execute(SERVED_SQL, {**params, "lo": lo, "hi": min(lo + chunk * 5, pos)})
    total = conn.execute("SELECT count(*) FROM served WHERE NOT folded").fetchone()
    began, folded = time.monotonic(), 0
    while True:
        with conn.transaction():
            row = conn.execute(store.FOLD_SERVED, {"limit": 50_000}).fetchone()
        assert row is not None
        folded += row[0]
        rate = folded / max(time.monotonic() - began, 1e-3)
        print(f"  folded {folded} of {total[0] if total else 0} served rows ({rate:,.0f}/s)")
        if row[0] < 50_000:
            break
    n = conn.execute("SELECT count(*) FROM experiment_assignments").fetchone()
    print(f"  {n[0] if n else 0} experiment assignments")


async def measure(url: str, repeat: int) -> dict[str, dict[str, float]]:
    from offerd.db import Database
    from offerd.edge.errors import APIError
    from offerd.reporting import query, service
    from offerd.sites import service as sites

    db = Database(url, min_size=1, max_size=2)
    await db.open()
    results: dict[str, dict[str, float]] = {}
    try:
        async with db.connection() as conn:
            site = await sites.get(conn, SITE)
            assert site is not None
            end = START + timedelta(seconds=SPAN_SECONDS)
            for kind, granularity, group_by in [
                *(("funnel", g, b) for g, b in SHAPES),
                *(("saves", g, b) for g, b in SAVE_SHAPES),
                ("experiments", "all", ""),
            ]:
                q = query.parse(
                    start=str(int(START.timestamp())),
                    end=str(int(end.timestamp())),
                    granularity=granularity,
                    group_by=group_by,
                )
                times, rows = [], 0
                for _ in range(repeat):
                    began = time.perf_counter()
                    try:
                        rows = len(await service.report(conn, site, kind, q))
                    except APIError:
                        rows = -1  # refused: more than MAX_ROWS rows (the time to say so)
                    times.append((time.perf_counter() - began) * 1000)
                name = f"{kind} {granularity} by [{group_by}]"
                results[name] = {**summary(times), "rows": rows}
                print(f"{name:48} rows {rows:7}  p50 {results[name]['p50_ms']:8.1f} ms  "
                      f"p95 {results[name]['p95_ms']:8.1f} ms")  # fmt: skip
    finally:
        await db.close()
    return results


def main() -> None:
    parser = history_arguments(chunk=100_000, repeat=20)
    parser.add_argument("--rollups-only", action="store_true")
    args = parser.parse_args()
    with harness.database() as db:
        generate(
            db.url,
            events=args.events,
            offers=args.offers,
            chunk=args.chunk,
            rollups_only=args.rollups_only,
        )
        results = asyncio.run(measure(db.url, args.repeat))
    worst = max(r["p95_ms"] for r in results.values())
    print(f"worst p95 {worst:.1f} ms (target <= 200 ms)")
    harness.write_json(
        "reports", {"machine": harness.machine(), "args": vars(args), "results": results}
    )


if __name__ == "__main__":
    main()
