"""The saves sweep's enrolment (``settle_saves``, every 5 minutes in a worker) over a generated
history: bench_reports.py's personalized offers for N events (default 10 million) over two
years, their accepted fulfilments (30 %, 90 % of them completed, each on a subscription), all
but the last hour's already enrolled as saves (the steady state: the sweep keeps up). Then the
enrolment statement is run repeatedly, each time rolled back, and its p50/p95 printed: once
with the last hour's completions to enrol, once with nothing left to enrol.

    .venv/bin/python bench/bench_settle_saves.py [--events 10000000] [--repeat 10]
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.bench_reports import (  # noqa: E402
    CHUNK_SQL,
    EVENTS_PER_OFFER,
    SITE,
    SPAN_SECONDS,
    START,
    history_arguments,
    insert_site,
    summary,
)
from offerd.reporting import store  # noqa: E402

END = START + timedelta(seconds=SPAN_SECONDS)

FULFILMENTS_SQL = """
WITH s AS (
    SELECT i, %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
           abs(hashint8(i)) %% 1000 AS r
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
)
INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
    processing_type, status, customer_id, subscription_id, origin, created_at, completed_at,
    failed_at, error_code, error_message, deadline_at)
SELECT 'ful_' || i, %(site)s, 'po_' || i, 'offer_' || (i %% %(offers)s), 'opt_' || (r %% 3),
    'billing_update', CASE WHEN r < 270 THEN 'completed' ELSE 'failed' END,
    'cus_' || (i %% 100000), 'sub_' || i, '{}', t,
    CASE WHEN r < 270 THEN t + interval '1 minute' END,
    CASE WHEN r >= 270 THEN t + interval '1 minute' END,
    CASE WHEN r >= 270 THEN 'payment_declined' END,
    CASE WHEN r >= 270 THEN 'generated' END,
    t + interval '7 days'
FROM s WHERE r < 300
"""


def generate(url: str, *, events: int, offers: int, chunk: int) -> None:
    pos = int(events / EVENTS_PER_OFFER)
    params = {"site": SITE, "start": START, "span": SPAN_SECONDS, "total": pos, "offers": offers}
    with psycopg.connect(url, autocommit=True) as conn:
        insert_site(conn)
        began = time.monotonic()
        for lo in range(0, pos, chunk):
            hi = min(lo + chunk, pos)
            with conn.transaction():
                conn.execute(CHUNK_SQL, {**params, "lo": lo, "hi": hi})
                conn.execute(FULFILMENTS_SQL, {**params, "lo": lo, "hi": hi})
            rate = hi / max(time.monotonic() - began, 1e-3)
            print(f"  {hi / pos:6.1%} of {pos} personalized offers ({rate:,.0f}/s)", flush=True)
        # enrolled up to an hour before the end, by the sweep's own statement (without the
        # rollups' trigger: they are not what is measured)
        conn.execute("ALTER TABLE offer_saves DISABLE TRIGGER save_rollup_count")
        conn.execute("ANALYZE personalized_offers, offer_fulfillments")
        # (the statement looks 60 days back: stepped through the history as the sweep went)
        at, enrolled = START, 0
        while at < END - timedelta(hours=1):
            at = min(at + timedelta(days=50), END - timedelta(hours=1))
            enrolled += conn.execute(store.ENROLL_SAVES, {"now": at, "limit": 10**9}).rowcount
            conn.execute("ANALYZE offer_saves")  # else its first rows plan it as empty
            print(f"  enrolled {enrolled} saves up to {at:%Y-%m-%d}", flush=True)
        # (it enrols whatever completed after its window's start: the last hour's taken back)
        conn.execute("DELETE FROM offer_saves WHERE accepted_at > %s", (END - timedelta(hours=1),))
        conn.execute("ALTER TABLE offer_saves ENABLE TRIGGER save_rollup_count")
        for table in ("personalized_offers", "offer_fulfillments", "offer_saves"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
        found = conn.execute(
            "SELECT (SELECT count(*) FROM offer_fulfillments), (SELECT count(*) FROM offer_saves)"
        ).fetchone()
        assert found is not None
        print(f"generated: {found[0]} fulfilments, {found[1]} saves")


def measure(url: str, repeat: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with psycopg.connect(url) as conn:
        for name, enrol in (("the last hour to enrol", True), ("nothing to enrol", False)):
            if not enrol:  # the last hour enrolled for good
                conn.execute(store.ENROLL_SAVES, {"now": END, "limit": 1000})
                conn.commit()
            times, enrolled = [], 0
            for _ in range(repeat):
                began = time.perf_counter()
                enrolled = conn.execute(store.ENROLL_SAVES, {"now": END, "limit": 1000}).rowcount
                times.append((time.perf_counter() - began) * 1000)
                conn.rollback()
            results[name] = {**summary(times), "rows": enrolled}
            print(f"enrol, {name:24} rows {enrolled:5}  p50 {results[name]['p50_ms']:8.1f} ms  "
                  f"p95 {results[name]['p95_ms']:8.1f} ms")  # fmt: skip
    return results


def main() -> None:
    args = history_arguments(chunk=250_000, repeat=10).parse_args()
    with harness.database() as db:
        generate(db.url, events=args.events, offers=args.offers, chunk=args.chunk)
        results = measure(db.url, args.repeat)
    harness.write_json(
        "settle_saves", {"machine": harness.machine(), "args": vars(args), "results": results}
    )


if __name__ == "__main__":
    main()
