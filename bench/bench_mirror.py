"""A Stripe site's mirror, measured: decisions over 100,000 mirrored subscriptions, and the
rate Stripe webhooks are taken in.

1. ``personalized_offers`` at one connection (wrk -c1) on a site whose billing provider is
   Stripe (pointed at the fake Stripe of tests/fakes, which decisions never call: every
   subscription is in the mirror), with 100,000 mirrored customers and subscriptions and the
   bench_personalize catalog (1,000 offers, every expression evaluated). The rows are written
   in bulk SQL with ``mirrored_at`` set, as a sync leaves them: decisioning reads the same
   tables for every provider, so what is measured is that a remote provider adds nothing to
   the decision (the on-demand fetch only runs on a miss).
2. Webhook ingest: ``--events`` distinct ``customer.updated`` events, signed as Stripe signs
   them, POSTed to ``/webhooks/stripe/bench`` from 16 concurrent connections (httpx, in this
   process: the client shares the 2 cores with the server, so the figure is a floor). Each is
   verified with stripe-python's helper and queues its re-read; the worker is off, so this is
   the ingest alone (the re-reads are Stripe's speed, not offerd's).

    .venv/bin/python bench/bench_mirror.py [--subscriptions 100000] [--seconds 20] [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.stripe_api import FakeStripe  # noqa: E402
from tests.fakes.stripefake.webhooks import signed  # noqa: E402

from bench import harness  # noqa: E402
from bench.bench_personalize import offers  # noqa: E402

KEY = "sk_test_51BenchMirrorKey4242"
SECRET = "whsec_BenchMirrorSecret"


def mirrored_subscribers(db: harness.Database, count: int) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO customers (site_id, id, email, mirrored_at, created_at, updated_at)
            SELECT 'bench', 'cus_' || i, 'c' || i || '@example.com', now(), now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"n": count},
        )
        conn.execute(
            """
            INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status,
                current_term_start, current_term_end, mirrored_at, created_at, updated_at)
            SELECT 'bench', 'sub_' || i, 'cus_' || i, 'basic', 'active',
                now(), now() + interval '30 days', now(), now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"n": count},
        )
        conn.execute("ANALYZE customers; ANALYZE subscriptions")


def ingest(base: str, events: int) -> tuple[float, int]:
    bodies = []
    for i in range(events):
        event = {
            "id": f"evt_{i}",
            "object": "event",
            "type": "customer.updated",
            "data": {"object": {"id": f"cus_{i + 1}", "object": "customer"}},
        }
        bodies.append(signed(event, SECRET))

    async def run() -> tuple[float, int]:
        failures = 0
        slots = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def one(body: bytes, headers: dict[str, str]) -> None:
                nonlocal failures
                async with slots:
                    r = await client.post("/webhooks/stripe/bench", content=body, headers=headers)
                if r.status_code != 200:
                    failures += 1

            for body, headers in bodies[:200]:  # warm up
                await one(body, headers)
            start = time.perf_counter()
            await asyncio.gather(*(one(b, h) for b, h in bodies))
            return events / (time.perf_counter() - start), failures

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--offers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    with (
        FakeStripe() as fake,
        harness.database() as db,
        harness.offerd_server(db, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1") as base,
    ):
        fake.add_api_key(KEY)
        keys = harness.seed(base, offers(args.offers))
        provider = {"type": "stripe", "secret_key": KEY, "webhook_secret": SECRET}
        r = harness.admin(base).put("/billing_provider", json={**provider, "api_base": fake.url})
        assert r.status_code in (200, 201), r.text
        mirrored_subscribers(db, args.subscriptions)
        auth = "Basic " + base64.b64encode(f"{keys['publishable']}:".encode()).decode()
        env = {"BENCH_AUTH": auth, "BENCH_CUSTOMERS": str(args.subscriptions)}
        url = base + "/api/v2/personalized_offers"
        script = harness.BENCH / "personalize.lua"
        harness.wrk(url, script=script, connections=1, threads=1, seconds=3, env=env)
        w = harness.wrk(url, script=script, connections=1, threads=1, seconds=args.seconds, env=env)
        print(
            f"decisions, {args.subscriptions} mirrored subscriptions, 1 connection: "
            f"{w.requests_per_s:.0f} req/s, p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms, "
            f"non-2xx {w.non_2xx}"
        )
        rate, failures = ingest(base, args.events)
        print(f"webhook ingest: {rate:.0f} events/s ({args.events} events, {failures} not 200)")
        harness.write_json(
            "mirror",
            {
                "machine": harness.machine(),
                "args": vars(args),
                "decisions": {
                    "rps": w.requests_per_s,
                    "p50_ms": w.p50_ms,
                    "p99_ms": w.p99_ms,
                    "non_2xx": w.non_2xx,
                },
                "webhook_ingest_per_s": rate,
                "webhook_failures": failures,
            },
        )


if __name__ == "__main__":
    main()
