"""POST /api/v2/personalized_offers with 1,000 active offers with eligibility expressions, at one
connection (wrk -c1). The offers are built so that only the lowest-priority one is eligible:
every request evaluates all 1,000 expressions (the worst case for decisioning).

    .venv/bin/python bench/bench_personalize.py [--offers 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.catalog import offer  # noqa: E402

from bench import harness  # noqa: E402


def offers(count: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(count - 1):
        expression = (
            f"subscription.status == 'active' && custom.viewcount > {100 + i % 50}"
            f" && context.locale != 'xx-{i}'"
        )
        out.append((f"offer_{i:04d}", offer(priority=1000 + i, eligibility=expression)))
    out.append(("fallback", offer(priority=0, eligibility="subscription.status == 'active'")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    with harness.database() as db, harness.offerd_server(db) as base:
        keys = harness.seed(base, offers(args.offers))
        harness.bulk_subscribers(db, args.customers)
        auth = "Basic " + base64.b64encode(f"{keys['publishable']}:".encode()).decode()
        env = {"BENCH_AUTH": auth, "BENCH_CUSTOMERS": str(args.customers)}
        url = base + "/api/v2/personalized_offers"
        harness.wrk(
            url,
            script=harness.BENCH / "personalize.lua",
            connections=1,
            threads=1,
            seconds=3,
            env=env,
        )
        r = harness.wrk(
            url,
            script=harness.BENCH / "personalize.lua",
            connections=1,
            threads=1,
            seconds=args.seconds,
            env=env,
        )
        print(r.raw)
        print(
            f"1 connection: {r.requests_per_s:.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, non-2xx {r.non_2xx}"
        )
        harness.write_json(
            "personalize",
            {
                "machine": harness.machine(),
                "args": vars(args),
                "rps": r.requests_per_s,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "non_2xx": r.non_2xx,
            },
        )


if __name__ == "__main__":
    main()
