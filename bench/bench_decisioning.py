"""POST /api/v2/personalized_offers with 1,000 offers, 100 of them in experiments (50
experiments of two variants and a 10% holdout), all with frequency guards, against customers
with a guard history. Two catalogs:

- worst: no expression is true until the lowest-priority offer: every request evaluates all;
- typical: an offer is eligible for a tenth of the customers (custom.bucket == its bucket), so
  the walk stops at the first eligible one in rank order.

For each: p50/p99 at 1 connection, and throughput at 8 connections next to the bare
same-stack endpoint (bench/bare_app.py: the same ledger, history and snapshot queries, no rule).

    .venv/bin/python bench/bench_decisioning.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.catalog import offer  # noqa: E402

from bench import harness  # noqa: E402

GUARDS = {
    "dismiss_cooldown_days": 7,
    "max_views": {"count": 5, "period_days": 30},
    "accept_cooldown_days": 30,
}


def catalog(kind: str, count: int = 1000) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(7)
    priorities = list(range(count - 1))
    rng.shuffle(priorities)
    out = []
    for i in range(count - 1):
        if kind == "worst":
            rule = f"subscription.status == 'active' && custom.viewcount > {100 + i % 50}"
        else:
            rule = f"subscription.status == 'active' && custom.bucket == {i % 10}"
        out.append(
            (f"offer_{i:04d}", offer(priority=10 + priorities[i], eligibility=rule, guards=GUARDS))
        )
    out.append(
        (
            "fallback",
            offer(priority=0, eligibility="subscription.status == 'active'", guards=GUARDS),
        )
    )
    return out


def experiments() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            f"exp_{e:02d}",
            {
                "name": f"Experiment {e}",
                "status": "running",
                "arms": [
                    {"id": "a", "offer_id": f"offer_{2 * e:04d}", "weight": 45},
                    {"id": "b", "offer_id": f"offer_{2 * e + 1:04d}", "weight": 45},
                    {"id": "holdout", "weight": 10},
                ],
            },
        )
        for e in range(50)
    ]


def history(db: harness.Database, customers: int) -> None:
    """Views and dismissals in the last 30 days for a third of the customers."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO offer_events (id, site_id, type, personalized_offer_id, offer_id,
                customer_id, origin, occurred_at)
            SELECT 'ev_h' || i || '_' || k, 'bench', CASE WHEN k %% 4 = 0 THEN 'dismissed' ELSE 'viewed' END,
                'po_h', 'offer_' || lpad(((i * 7 + k) %% 999)::text, 4, '0'), 'cus_' || i, '{}',
                now() - make_interval(days => k)
            FROM generate_series(1, %(n)s, 3) i, generate_series(1, 6) k
            """,
            {"n": customers},
        )


def run(kind: str, seconds: int, customers: int) -> dict[str, Any]:
    with harness.database() as db, harness.offerd_server(db) as base:
        keys = harness.seed(base, catalog(kind))
        admin = harness.admin(base)
        for exp_id, body in experiments():
            assert admin.put(f"/experiments/{exp_id}", json=body).status_code in (200, 201)
        harness.bulk_subscribers(db, customers)
        history(db, customers)
        auth = "Basic " + base64.b64encode(f"{keys['publishable']}:".encode()).decode()
        script = harness.BENCH / "decisioning.lua"
        env = {
            "BENCH_AUTH": auth,
            "BENCH_CUSTOMERS": str(customers),
            "BENCH_PATH": "/api/v2/personalized_offers",
        }
        url = base + "/api/v2/personalized_offers"
        harness.wrk(url, script=script, connections=1, threads=1, seconds=3, env=env)
        one = harness.wrk(url, script=script, connections=1, threads=1, seconds=seconds, env=env)
        port = harness.free_port()
        cmd = harness.uvicorn_cmd("bench.bare_app:app", port)
        with harness.process(
            cmd, harness.env_for(db, PYTHONPATH=str(harness.ROOT)), harness.OUT / "bare.log"
        ):
            bare_url = f"http://127.0.0.1:{port}/bare/personalized_offers"
            harness.wait_http(f"http://127.0.0.1:{port}/docs")
            bare_env = {**env, "BENCH_PATH": "/bare/personalized_offers"}
            rounds = []
            for _ in range(2):
                o = harness.wrk(url, script=script, connections=8, seconds=seconds, env=env)
                b = harness.wrk(
                    bare_url, script=script, connections=8, seconds=seconds, env=bare_env
                )
                rounds.append((o.requests_per_s, b.requests_per_s))
    result = {
        "catalog": kind,
        "one_connection": {
            "rps": one.requests_per_s,
            "p50_ms": one.p50_ms,
            "p99_ms": one.p99_ms,
            "non_2xx": one.non_2xx,
        },
        "eight_connections": [{"offerd_rps": o, "bare_rps": b, "ratio": o / b} for o, b in rounds],
    }
    print(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    results = [run(kind, args.seconds, args.customers) for kind in ("typical", "worst")]
    harness.write_json(
        "decisioning", {"machine": harness.machine(), "args": vars(args), "results": results}
    )


if __name__ == "__main__":
    main()
