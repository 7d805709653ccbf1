"""The fake Stripe of tests/fakes as a process of its own, for benchmarks (in the benchmark's own
process it would share one interpreter lock with the load generator). Seeds price ``basic``,
coupon ``SAVE20`` and ``--count`` customers ``cus_<i>`` each with subscription ``sub_<i>``,
prints its URL on one line, then serves until killed.

    .venv/bin/python bench/stripe_fake_server.py --count 2000 --key sk_test_...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.stripe_api import FakeStripe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    with FakeStripe() as fake:
        fake.add_api_key(args.key)
        fake.seed_price(id="basic", unit_amount=1500)
        fake.seed_coupon(id="SAVE20", percent_off=20, duration="forever")
        with fake.store.lock:
            for i in range(1, args.count + 1):
                fake.seed_subscription(fake.seed_customer(id=f"cus_{i}"), "basic", id=f"sub_{i}")
        print(fake.url, flush=True)  # noqa: T201 - the parent reads it
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
