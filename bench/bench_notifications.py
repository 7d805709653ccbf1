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
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


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


async def complete(base: str, key: str, ids: list[str], rate: float) -> int:
    failures = 0
    async with httpx.AsyncClient(
        base_url=base, auth=(key, ""), timeout=30, limits=httpx.Limits(max_connections=64)
    ) as client:
        start = time.perf_counter()
        # requests wait for a connection here, not in httpx's pool, which is slow with thousands
        # of waiters and would time them out
        slots = asyncio.Semaphore(64)

        async def one(i: int, fid: str) -> None:
            nonlocal failures
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with slots:
                r = await client.post(
                    f"/api/v2/offer_fulfillments/{fid}", json={"id": fid, "status": "completed"}
                )
            if r.status_code != 200:
                failures += 1

        await asyncio.gather(*(one(i, fid) for i, fid in enumerate(ids)))
    return failures


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
    receiver_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.receiver_app:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    hook = f"http://127.0.0.1:{port}/hook"
    results: dict[str, object] = {}
    with harness.process(
        receiver_cmd,
        {**os.environ, "BENCH_RECEIVED": str(got), "PYTHONPATH": str(harness.ROOT)},
        harness.OUT / "receiver.log",
    ):
        # 1. latency at a steady rate, worker in the server process
        with harness.database() as db:
            settings = {"OFFERD_ALLOW_PRIVATE_DESTINATIONS": "1"}
            with harness.offerd_server(db, worker=True, **settings) as base:
                keys = harness.seed(base)
                admin = httpx.Client(
                    base_url=base + "/admin/v1/sites/bench",
                    headers={"authorization": f"Bearer {harness.ADMIN}"},
                )
                admin.put("/notification_channels/hook", json={"type": "webhook", "url": hook})
                harness.bulk_subscribers(db, 1)
                (template,) = harness.personalized_offers(base, keys["publishable"], 1)
                ids = fulfillments(db, template, "l", int(args.rate * args.seconds))
                failures = asyncio.run(complete(base, keys["full_access"], ids, args.rate))
                deadline = time.monotonic() + 120
                with psycopg.connect(db.url, autocommit=True) as conn:
                    while time.monotonic() < deadline:
                        left = conn.execute(
                            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                        ).fetchone()
                        if left and left[0] == 0:
                            break
                        time.sleep(0.5)
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
                "p50_ms": harness.percentile(latencies, 50),
                "p90_ms": harness.percentile(latencies, 90),
                "p99_ms": harness.percentile(latencies, 99),
                "max_ms": max(latencies) if latencies else float("nan"),
            }
            print("latency", results["latency"])
        # 2. a backlog drained by one worker process
        got.write_text("")
        with harness.database() as db:
            with harness.offerd_server(db, **settings) as base:
                keys = harness.seed(base)
                admin = httpx.Client(
                    base_url=base + "/admin/v1/sites/bench",
                    headers={"authorization": f"Bearer {harness.ADMIN}"},
                )
                admin.put("/notification_channels/hook", json={"type": "webhook", "url": hook})
                harness.bulk_subscribers(db, 1)
                (template,) = harness.personalized_offers(base, keys["publishable"], 1)
                ids = fulfillments(db, template, "d", args.backlog)
                asyncio.run(complete(base, keys["full_access"], ids, rate=10_000))
            with (
                harness.offerd_worker(db, **settings),
                psycopg.connect(db.url, autocommit=True) as conn,
            ):
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    left = conn.execute(
                        "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                    ).fetchone()
                    if left and left[0] == 0:
                        break
                    time.sleep(0.5)
                first, last, n = conn.execute(
                    "SELECT min(delivered_at), max(delivered_at), count(*) FROM deliveries WHERE status = 'succeeded'"
                ).fetchone()  # type: ignore[misc]
            span = (last - first).total_seconds()
            results["throughput"] = {
                "backlog": args.backlog,
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
