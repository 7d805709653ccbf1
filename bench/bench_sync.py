"""The mirror's initial import: subscriptions mirrored per second from the fake Stripe of
tests/fakes (a real HTTP server on 127.0.0.1, in this process's threads) through the unmodified
stripe-python SDK, in pages of 100, into a fresh database. Runs ``offerd billing sync`` as a
user would (a subprocess: the command's start-up, migration check and progress bar included),
and times the import from the command's own summary of what it read; the rate reported is
subscriptions / (wall time of the command). The fake shares the 2 cores with the command and
PostgreSQL, so this is a floor.

    .venv/bin/python bench/bench_sync.py [--subscriptions 10000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.stripe_api import FakeStripe  # noqa: E402

from bench import harness  # noqa: E402

KEY = "sk_test_51BenchSyncKey4242"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=10_000)
    args = parser.parse_args()
    with FakeStripe() as fake, harness.database() as db:
        fake.add_api_key(KEY)
        fake.seed_price(id="price_basic", unit_amount=2000)
        fake.seed_many(args.subscriptions, "price_basic", statuses=("active", "trialing"))
        env = harness.env_for(db, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1")
        with harness.offerd_server(db, OFFERD_ALLOW_PRIVATE_DESTINATIONS="1") as base:
            admin = httpx.Client(
                base_url=f"{base}/admin/v1/sites",
                headers={"authorization": f"Bearer {harness.ADMIN}"},
            )
            assert admin.put("/bench", json={"name": "Bench"}).status_code in (200, 201)
            provider = {
                "type": "stripe",
                "secret_key": KEY,
                "webhook_secret": "whsec_BenchSyncSecret",
            }
            r = admin.put("/bench/billing_provider", json={**provider, "api_base": fake.url})
            assert r.status_code in (200, 201), r.text
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "offerd", "billing", "sync", "--site", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        with psycopg.connect(db.url) as conn:
            row = conn.execute("SELECT count(*) FROM subscriptions").fetchone()
        mirrored = row[0] if row else 0
        rate = mirrored / seconds
        print(done.stderr.strip().splitlines()[-1])
        print(f"{mirrored} subscriptions (and their customers) in {seconds:.1f} s: {rate:.0f}/s")
        harness.write_json(
            "sync",
            {"machine": harness.machine(), "args": vars(args), "seconds": seconds, "per_s": rate},
        )


if __name__ == "__main__":
    main()
