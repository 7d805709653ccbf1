"""What the rollup triggers add to the accept's statement, measured on the statement itself:
the accept (fulfillments.store.insert_accepted: fulfillment + accepted event + job, one
statement) on one connection, in interleaved rounds with the counting trigger enabled and
disabled. The HTTP benchmark (bench_accept.py) on a shared machine varies by more than the
difference; this isolates it. Relate the added microseconds to the accept request's cost.

    .venv/bin/python bench/bench_rollup_cost.py [--accepts 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def setup(url: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sites (id, name, settings, created_at, updated_at) "
            "VALUES ('acme', 'Acme', '{}', now(), now())"
        )
        conn.execute(
            """INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
                content, options, context, origin, created_at, expires_at)
            SELECT 'po_' || i, 'acme', 'stay', 1, 'cus_1', '{}', '[]', '{}', '{}', now(),
                now() + interval '1 day'
            FROM generate_series(0, %s - 1) i""",
            (count,),
        )


async def accepts(url: str, ids: list[str]) -> float:
    """Mean microseconds per accept statement."""
    from offerd.db import Database
    from offerd.fulfillments import store

    db = Database(url, min_size=1, max_size=1)
    await db.open()
    try:
        async with db.connection() as conn:
            now = datetime.now(UTC)
            began = time.perf_counter()
            for po in ids:
                await store.insert_accepted(
                    conn,
                    {
                        "id": "ful_" + po,
                        "site_id": "acme",
                        "personalized_offer_id": po,
                        "offer_id": "stay",
                        "option_id": "talk",
                        "processing_type": "url_redirect",
                        "status": "in_progress",
                        "redirect_url": None,
                        "customer_id": "cus_1",
                        "subscription_id": None,
                        "business_entity_id": None,
                        "suppress_actions": False,
                        "suppress_webhook": False,
                        "suppress_email": False,
                        "origin": {},
                        "created_at": now,
                        "completed_at": None,
                        "deadline_at": now + timedelta(days=7),
                        "experiment_id": None,
                        "experiment_arm": None,
                    },  # fmt: skip
                    event_id="ev_" + po,
                    event_origin={},
                    job_kind=None,
                )
            return (time.perf_counter() - began) / len(ids) * 1e6
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accepts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = args.accepts * args.rounds * 2 + args.accepts
    results: dict[str, list[float]] = {"with rollups": [], "without": []}
    with harness.database() as db:
        setup(db.url, total)
        ids = [f"po_{i}" for i in range(total)]
        asyncio.run(accepts(db.url, ids[: args.accepts]))  # warm-up
        at = args.accepts
        for _ in range(args.rounds):
            for name, enabled in (("without", False), ("with rollups", True)):
                with psycopg.connect(db.url, autocommit=True) as conn:
                    verb = "ENABLE" if enabled else "DISABLE"
                    conn.execute(f"ALTER TABLE offer_events {verb} TRIGGER report_count_event")
                results[name].append(asyncio.run(accepts(db.url, ids[at : at + args.accepts])))
                at += args.accepts
    for name, values in results.items():
        print(f"{name:13} accept statement: median {statistics.median(values):7.1f} us  "
              f"rounds {[round(v) for v in values]}")  # fmt: skip
    added = statistics.median(results["with rollups"]) - statistics.median(results["without"])
    print(f"added by the rollups: {added:.1f} us per accept")


if __name__ == "__main__":
    main()
