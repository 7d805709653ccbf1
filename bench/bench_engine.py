"""The fulfillment engine's two figures:

1. accept -> completed latency for billing_update at a steady (open-loop) 100 accepts/s, with the
   worker in the server process woken by NOTIFY; latency is completed_at - created_at of each
   fulfillment, both taken from the same clock.
2. the drain rate of one `offerd worker` process for a backlog of 10,000 billing_update jobs:
   fulfillments completed / (last completed_at - first completed_at).

    .venv/bin/python bench/bench_engine.py [--rate 100] [--seconds 30] [--backlog 10000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def clone_for_subscribers(
    db: harness.Database, template: str, prefix: str, count: int
) -> list[str]:
    """One personalized offer per subscriber cus_<i>/sub_<i> (each accept changes its own subscription)."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
                subscription_id, content, options, context, origin, created_at, expires_at)
            SELECT %(prefix)s || i, site_id, offer_id, offer_version, 'cus_' || i, 'sub_' || i,
                content, options, context, origin, now(), now() + interval '1 day'
            FROM personalized_offers, generate_series(1, %(n)s) i WHERE id = %(template)s
            """,
            {"prefix": prefix, "n": count, "template": template},
        )
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def latency(db: harness.Database, rate: float, seconds: int) -> dict[str, float]:
    count = int(rate * seconds)
    with harness.offerd_server(db, worker=True) as base:
        keys = harness.seed(base)
        harness.bulk_subscribers(db, count + 1)
        (template,) = harness.personalized_offers(base, keys["publishable"], 1)
        ids = clone_for_subscribers(db, template, "po_l", count)
        accepts = [
            ("/api/v2/offer_fulfillments", {"personalized_offer_id": po, "option_id": "discount"})
            for po in ids
        ]
        failures = harness.open_loop(base, keys["publishable"], accepts, rate, ok=202)
        harness.wait_until_none_left(
            db, "SELECT count(*) FROM offer_fulfillments WHERE status = 'in_progress'", 120
        )
        with psycopg.connect(db.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT status, extract(epoch FROM completed_at - created_at) * 1000 AS ms "
                "FROM offer_fulfillments WHERE personalized_offer_id LIKE 'po_l%%'"
            ).fetchall()
    done = [float(ms) for status, ms in rows if status == "completed"]
    return {
        "accepts": count,
        "http_failures": failures,
        "completed": len(done),
        **harness.latency_summary(done),
    }


def drain(db: harness.Database, backlog: int) -> dict[str, float]:
    with harness.offerd_server(db) as base:
        keys = harness.seed(base)
        harness.bulk_subscribers(db, backlog)
        (template,) = harness.personalized_offers(base, keys["publishable"], 1)
    ids = clone_for_subscribers(db, template, "po_d", backlog)
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
                processing_type, status, customer_id, subscription_id, origin, created_at, deadline_at)
            SELECT 'of_d' || substr(po.id, 5), po.site_id, po.id, po.offer_id, 'discount', 'billing_update',
                'in_progress', po.customer_id, po.subscription_id, '{}'::jsonb, now(), now() + interval '7 days'
            FROM personalized_offers po WHERE po.id LIKE %(pattern)s
            """,
            {"pattern": "po_d%"},
        )
        conn.execute(
            """
            INSERT INTO jobs (kind, payload, run_at, created_at)
            SELECT 'fulfillment.billing_update', jsonb_build_object('fulfillment_id', id), now(), now()
            FROM offer_fulfillments WHERE id LIKE %(pattern)s
            """,
            {"pattern": "of_d%"},
        )
    assert len(ids) == backlog
    with harness.offerd_worker(db):
        harness.wait_until_none_left(db, "SELECT count(*) FROM jobs", 600)
    with psycopg.connect(db.url, autocommit=True) as conn:
        first, last, n = conn.execute(
            "SELECT min(completed_at), max(completed_at), count(*) FROM offer_fulfillments "
            "WHERE id LIKE 'of_d%%' AND status = 'completed'"
        ).fetchone()  # type: ignore[misc]
    span = (last - first).total_seconds()
    return {
        "backlog": backlog,
        "completed": n,
        "seconds": span,
        "per_second": n / span if span else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--backlog", type=int, default=10_000)
    args = parser.parse_args()
    with harness.database() as db:
        lat = latency(db, args.rate, args.seconds)
    print("latency", lat)
    with harness.database() as db:
        rate = drain(db, args.backlog)
    print("drain", rate)
    harness.write_json(
        "engine", {"machine": harness.machine(), "args": vars(args), "latency": lat, "drain": rate}
    )


if __name__ == "__main__":
    main()
