"""`GET /admin/v1/sites/{site}/experiments/{id}` over a generated history: N offer events (default
10 million) over two years, two in three of them in five experiments (bench_reports.py's
decisions: a control, a variant and a 10 % holdout each), written straight into `served` and
`offer_events` (the report triggers off: they are not what is measured), vacuumed and
checkpointed. Then the endpoint's read (the experiment and its per-arm counts, through the
offers service) is asked repeatedly for each experiment, and its p50/p95 printed.

    .venv/bin/python bench/bench_experiment_detail.py [--events 10000000] [--repeat 20]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.bench_reports import (  # noqa: E402
    EVENTS_PER_OFFER,
    SERVED_SQL,
    SITE,
    SPAN_SECONDS,
    START,
    history_arguments,
    insert_site,
    summary,
)

EXPERIMENTS = 5

# The events of the personalized offers in [lo, hi): as bench_reports.py's EVENTS_SQL, and
# carrying the experiment and arm its decision was served in (SERVED_SQL's, for two in three).
EVENTS_SQL = """
WITH s AS (
    SELECT i, %(start)s::timestamptz + (i::float8 / %(total)s * %(span)s) * interval '1 second' AS t,
           abs(hashint8(i)) %% 1000 AS r,
           CASE WHEN i %% 3 > 0 THEN 'exp_' || (i / 4 %% 5) END AS experiment,
           CASE WHEN i %% 3 = 0 THEN NULL
                WHEN abs(hashint8(i / 4)) %% 2 = 0 THEN 'control' ELSE 'variant' END AS arm
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i
    WHERE i %% 3 = 0 OR abs(hashint8(i / 4)) %% 10 <> 0  -- the holdout is shown nothing
), e AS (
    SELECT i, experiment, arm, CASE WHEN r %% 10 < 8 THEN 'viewed' ELSE 'dismissed' END AS type,
           t, NULL AS ful
    FROM s
    UNION ALL SELECT i, experiment, arm, 'accepted', t + interval '30 seconds', 'ful_' || i
    FROM s WHERE r < 300
    UNION ALL SELECT i, experiment, arm, CASE WHEN r < 270 THEN 'fulfilled' ELSE 'failed' END,
        t + interval '2 minutes', 'ful_' || i FROM s WHERE r < 300
)
INSERT INTO offer_events (id, site_id, type, personalized_offer_id, offer_id, option_id,
    fulfillment_id, customer_id, origin, occurred_at, experiment_id, experiment_arm)
SELECT 'ev_' || type || '_' || i, %(site)s, type, 'po_' || i, 'offer_' || (i %% %(offers)s),
    NULL, ful, 'cus_' || (i %% 100000), '{}', t, experiment, arm
FROM e
"""

EXPERIMENT_SQL = """
INSERT INTO experiments (site_id, id, name, status, arms, created_at, updated_at)
VALUES (%(site)s, %(id)s, %(id)s, 'running', %(arms)s, now(), now())
"""


def generate(url: str, *, events: int, offers: int, chunk: int) -> None:
    pos = int(events / EVENTS_PER_OFFER)
    params = {"site": SITE, "start": START, "span": SPAN_SECONDS, "total": pos, "offers": offers}
    with psycopg.connect(url, autocommit=True) as conn:
        insert_site(conn)
        arms = (
            '[{"id": "control", "offer_id": "offer_0", "weight": 45},'
            ' {"id": "variant", "offer_id": "offer_1", "weight": 45},'
            ' {"id": "holdout", "weight": 10, "holdout": true}]'
        )
        for n in range(EXPERIMENTS):
            conn.execute(EXPERIMENT_SQL, {"site": SITE, "id": f"exp_{n}", "arms": arms})
        conn.execute("ALTER TABLE offer_events DISABLE TRIGGER report_count_event")
        began = time.monotonic()
        for lo in range(0, pos, chunk):
            hi = min(lo + chunk, pos)
            with conn.transaction():
                conn.execute(SERVED_SQL, {**params, "lo": lo, "hi": hi})
                conn.execute(EVENTS_SQL, {**params, "lo": lo, "hi": hi})
            rate = hi / max(time.monotonic() - began, 1e-3)
            print(f"  {hi / pos:6.1%} of {pos} decisions ({rate:,.0f}/s)", flush=True)
        conn.execute("ALTER TABLE offer_events ENABLE TRIGGER report_count_event")
        conn.execute("UPDATE served SET folded = true")  # the sweep's steady state
        for table in ("served", "offer_events", "experiments"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
        found = conn.execute(
            "SELECT (SELECT count(*) FROM served), (SELECT count(*) FROM offer_events),"
            " (SELECT count(*) FROM offer_events WHERE experiment_id IS NOT NULL)"
        ).fetchone()
        assert found is not None
        print(f"generated: {found[0]} served, {found[1]} events ({found[2]} in experiments)")


async def measure(url: str, repeat: int) -> dict[str, float | int]:
    from offerd.db import Database
    from offerd.offers import service

    db = Database(url, min_size=1, max_size=2)
    await db.open()
    times: list[float] = []
    served = 0
    try:
        async with db.connection() as conn:
            for _ in range(repeat):
                for n in range(EXPERIMENTS):
                    began = time.perf_counter()
                    body = await service.experiment_detail(conn, SITE, f"exp_{n}")
                    times.append((time.perf_counter() - began) * 1000)
                    assert body is not None
                    served = sum(arm.get("served", 0) for arm in body["results"].values())
    finally:
        await db.close()
    result = {**summary(times), "served_per_experiment": served}
    print(
        f"experiment detail ({EXPERIMENTS} experiments x {repeat}): p50 {result['p50_ms']:.1f} ms,"
        f" p95 {result['p95_ms']:.1f} ms; {served} served in the last"
    )
    return result


def main() -> None:
    args = history_arguments(chunk=250_000, repeat=20).parse_args()
    with harness.database() as db:
        generate(db.url, events=args.events, offers=args.offers, chunk=args.chunk)
        result = asyncio.run(measure(db.url, args.repeat))
    harness.write_json(
        "experiment_detail", {"machine": harness.machine(), "args": vars(args), "result": result}
    )


if __name__ == "__main__":
    main()
