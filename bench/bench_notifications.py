"""Notifications:

1. completion -> webhook received: url_redirect fulfillments completed by the merchant's update
   at a steady (open-loop) 100 per second; a webhook channel on offer_fulfillment_completed points
   at a fast local receiver (bench/receiver_app.py). Latency is the receiver's clock at arrival
   minus the fulfillment's completed_at (one machine, one clock).
2. deliveries per second of one `offerd worker` process, for a backlog of pending deliveries
   to the same receiver.

    .venv/bin/python bench/bench_notifications.py [--rate 100] [--seconds 30] [--backlog 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

PENDING = "SELECT count(*) FROM deliveries WHERE status = 'pending'"


def fulfillments(db: harness.Database, template: str, prefix: str, count: int) -> list[str]:
    """``count`` in-progress url_redirect fulfillments, each on its own personalized offer."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
                subscription_id, content, options, context, origin, created_at, expires_at)
            SELECT %(po)s || i, site_id, offer_id, offer_version, customer_id, subscription_id,
                content, options, context, origin, now(), now() + interval '1 day'
            FROM personalized_offers, generate_series(1, %(n)s) i WHERE id = %(template)s
            """,
            {"po": f"po_{prefix}", "of": f"of_{prefix}", "n": count, "template": template},
        )
        conn.execute(
            """
            INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
                processing_type, status, customer_id, subscription_id, origin, created_at, deadline_at)
            SELECT %(of)s || i, 'bench', %(po)s || i, 'stay', 'talk', 'url_redirect', 'in_progress',
                'cus_1', 'sub_1', '{}'::jsonb, now(), now() + interval '7 days'
            FROM generate_series(1, %(n)s) i
            """,
            {"po": f"po_{prefix}", "of": f"of_{prefix}", "n": count},
        )
    return [f"of_{prefix}{i}" for i in range(1, count + 1)]


def complete(base: str, key: str, ids: list[str], rate: float) -> int:
    """The merchant's update, completed, for each fulfillment: open-loop at ``rate``."""
    updates = [(f"/api/v2/offer_fulfillments/{f}", {"id": f, "status": "completed"}) for f in ids]
    return harness.open_loop(base, key, updates, rate, ok=200)


def received(path: Path) -> dict[str, float]:
    first: dict[str, float] = {}
    for line in path.read_text().splitlines():
        at, webhook_id = line.split(" ", 1)
        first.setdefault(webhook_id, float(at))
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--backlog", type=int, default=5000)
    args = parser.parse_args()
    harness.OUT.mkdir(exist_ok=True)
    got = harness.OUT / "received.txt"
    got.write_text("")
    port = harness.free_port()
    receiver_cmd = harness.uvicorn_cmd("bench.receiver_app:app", port)
    hook = f"http://127.0.0.1:{port}/hook"
    results: dict[str, object] = {}
    with harness.process(
        receiver_cmd,
        {**os.environ, "BENCH_RECEIVED": str(got), "PYTHONPATH": str(harness.ROOT)},
        harness.OUT / "receiver.log",
    ):
        # 1. latency at a steady rate, worker in the server process
        with harness.database() as db:
            # the receiver is on 127.0.0.1
            with harness.offerd_server(
                db, worker=True, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1"
            ) as base:
                keys = harness.seed(base)
                harness.admin(base).put(
                    "/notification_channels/hook", json={"type": "webhook", "url": hook}
                )
                harness.bulk_subscribers(db, 1)
                (template,) = harness.personalized_offers(base, keys["publishable"], 1)
                ids = fulfillments(db, template, "l", int(args.rate * args.seconds))
                failures = complete(base, keys["full_access"], ids, args.rate)
                harness.wait_until_none_left(db, PENDING, 120)
                with psycopg.connect(db.url, autocommit=True) as conn:
                    rows = conn.execute(
                        "SELECT e.id, extract(epoch FROM f.completed_at) FROM offer_events e "
                        "JOIN offer_fulfillments f ON f.id = e.fulfillment_id WHERE e.type = 'fulfilled'"
                    ).fetchall()
            arrivals = received(got)
            latencies = [1000 * (arrivals[ev] - float(done)) for ev, done in rows if ev in arrivals]
            results["latency"] = {
                "completions": len(rows),
                "http_failures": failures,
                "delivered": len(latencies),
                **harness.latency_summary(latencies),
            }
            print("latency", results["latency"])
        # 2. a backlog drained by one worker process
        got.write_text("")
        with harness.database() as db:
            with harness.offerd_server(db, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1") as base:
                keys = harness.seed(base)
                harness.admin(base).put(
                    "/notification_channels/hook", json={"type": "webhook", "url": hook}
                )
                harness.bulk_subscribers(db, 1)
                (template,) = harness.personalized_offers(base, keys["publishable"], 1)
                ids = fulfillments(db, template, "d", args.backlog)
                lost = complete(base, keys["full_access"], ids, rate=10_000)
            with harness.offerd_worker(db, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1"):
                harness.wait_until_none_left(db, PENDING, 600)
            with psycopg.connect(db.url, autocommit=True) as conn:
                first, last, n = conn.execute(
                    "SELECT min(delivered_at), max(delivered_at), count(*) FROM deliveries WHERE status = 'succeeded'"
                ).fetchone()  # type: ignore[misc]
            span = (last - first).total_seconds()
            results["throughput"] = {
                "backlog": args.backlog,
                "updates_failed": lost,  # a failed update has no delivery to make
                "delivered": n,
                "seconds": span,
                "per_second": n / span,
            }
            print("throughput", results["throughput"])
    harness.write_json(
        "notifications", {"machine": harness.machine(), "args": vars(args), **results}
    )


if __name__ == "__main__":
    main()
