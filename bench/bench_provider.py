"""accept -> completed for billing_update on a Stripe site, at a steady (open-loop) 100 accepts/s,
against the fake Stripe of tests/fakes (a real HTTP server in a process of its own,
bench/stripe_fake_server.py, driven by the unmodified stripe-python SDK in offerd's worker),
with the fake's own time subtracted.

Each fulfillment makes two calls to Stripe through ``billing.remote``: the subscription read and
the update (the price and coupon the target is computed from come from the mirror). The fake's
own time per call is measured first, in this process, by timing the same calls through the SDK
with offerd not involved (``--calibrate`` subscriptions, a read and an update each; the median).
offerd's figure is completed_at - created_at of each fulfillment (one clock, the database's),
less twice the fake's median call: what offerd adds around a provider that answers instantly.
The price and coupon are mirrored first, as an import would. The fake shares
the 2 cores with offerd and PostgreSQL, so both are upper bounds.

    .venv/bin/python bench/bench_provider.py [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import stripe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.bench_engine import clone_for_subscribers  # noqa: E402

KEY = "sk_test_51BenchProviderKey42"
CALLS_PER_FULFILLMENT = 2


@contextlib.contextmanager
def fake_stripe(count: int) -> Iterator[str]:
    args = [sys.executable, str(harness.BENCH / "stripe_fake_server.py"), "--count", str(count)]
    proc = subprocess.Popen([*args, "--key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def calibrate(url: str, n: int, first: int) -> float:
    """The fake's median time for one call, over the two kinds a fulfillment makes (ms), on
    subscriptions ``first``.. that the benchmark does not touch."""
    client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)
    timings: list[float] = []
    for i in range(first, first + n):
        sub = f"sub_{i}"
        for call in (
            lambda s=sub: client.raw_request("get", f"/v1/subscriptions/{s}", expand=["discounts"]),
            lambda s=sub: client.raw_request(
                "post", f"/v1/subscriptions/{s}", metadata={"bench": "1"}, expand=["discounts"]
            ),
        ):
            start = time.perf_counter()
            call()
            timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--calibrate", type=int, default=200)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with fake_stripe(count + args.calibrate + 1) as url, harness.database() as db:
        per_call = calibrate(url, args.calibrate, count + 2)
        with harness.offerd_server(db, worker=True, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1") as base:
            keys = harness.seed(base)
            harness.bulk_subscribers(db, count + 1)
            (template,) = harness.personalized_offers(base, keys["publishable"], 1)
            provider = {"type": "stripe", "secret_key": KEY, "webhook_secret": "whsec_BenchProv"}
            r = harness.admin(base).put("/billing_provider", json={**provider, "api_base": url})
            assert r.status_code in (200, 201), r.text
            ids = clone_for_subscribers(db, template, "po_p", count)
            accepts = [
                (
                    "/api/v2/offer_fulfillments",
                    {"personalized_offer_id": po, "option_id": "discount"},
                )
                for po in ids
            ]
            failures = harness.open_loop(base, keys["publishable"], accepts, args.rate, ok=202)
            harness.wait_until_none_left(
                db, "SELECT count(*) FROM offer_fulfillments WHERE status = 'in_progress'", 300
            )
        with psycopg.connect(db.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT status, extract(epoch FROM completed_at - created_at) * 1000 AS ms "
                "FROM offer_fulfillments WHERE personalized_offer_id LIKE 'po_p%%'"
            ).fetchall()
            (changed,) = conn.execute(
                "SELECT count(*) FROM provider_calls WHERE state = 'applied'"
            ).fetchone()  # type: ignore[misc]
    done = [float(ms) for status, ms in rows if status == "completed"]
    fake_ms = CALLS_PER_FULFILLMENT * per_call
    offerd = [max(0.0, ms - fake_ms) for ms in done]
    result = {
        "accepts": count,
        "http_failures": failures,
        "completed": len(done),
        "stripe_changes_applied": changed,
        "fake_ms_per_call_median": per_call,
        "raw": harness.latency_summary(done),
        "offerd": harness.latency_summary(offerd),
    }
    print(result)
    harness.write_json("provider", {"machine": harness.machine(), "args": vars(args), **result})


if __name__ == "__main__":
    main()
