"""POST /api/v2/offer_fulfillments throughput and latency with wrk at 32 connections, side by side
with the bare endpoint (bench/bare_app.py) on the same stack and the same number of server
processes. Every request accepts a different personalized offer (a new fulfillment each time).

    .venv/bin/python bench/bench_accept.py [--seconds 20] [--processes 1] [--rounds 2]
        [--in-experiment]
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def clone_personalized_offers(
    db: harness.Database, template: str, prefix: str, count: int, experiment: str | None = None
) -> list[str]:
    """``count`` copies of one personalized offer (fast setup for many distinct accepts);
    ``experiment``: as if decided in that experiment's control arm (its events then carry it)."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
                subscription_id, business_entity_id, brand_id, content, options, context, origin,
                created_at, expires_at, experiment_id, experiment_arm)
            SELECT %(prefix)s || i, site_id, offer_id, offer_version, customer_id, subscription_id,
                business_entity_id, brand_id, content, options, context, origin, created_at,
                expires_at + interval '1 day', %(experiment)s,
                CASE WHEN %(experiment)s::text IS NOT NULL THEN 'control' END
            FROM personalized_offers, generate_series(1, %(n)s) i WHERE id = %(template)s
            """,
            {"prefix": prefix, "n": count, "template": template, "experiment": experiment},
        )
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def id_file(name: str, ids: list[str]) -> Path:
    """A file of ids for one wrk run (each run gets its own slice: no id is accepted twice)."""
    harness.OUT.mkdir(exist_ok=True)
    path = harness.OUT / f"{name}.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ids", type=int, default=200_000)
    parser.add_argument(
        "--in-experiment",
        action="store_true",
        help="the accepted offers were decided in an experiment (their events carry it)",
    )
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {"offerd": [], "bare": []}
    with harness.database() as db, harness.offerd_server(db, workers=args.processes) as base:
        keys = harness.seed(base)
        harness.bulk_subscribers(db, 1)
        (template,) = harness.personalized_offers(base, keys["publishable"], 1)
        ids = {
            "offerd": clone_personalized_offers(
                db, template, "po_o", args.ids, "exp_bench" if args.in_experiment else None
            ),
            "bare": clone_personalized_offers(db, template, "po_b", args.ids),
        }
        auth = "Basic " + base64.b64encode(f"{keys['publishable']}:".encode()).decode()
        bare_port = harness.free_port()
        bare_cmd = harness.uvicorn_cmd(
            "bench.bare_app:app", bare_port, "--workers", str(args.processes)
        )
        env = harness.env_for(db, PYTHONPATH=str(harness.ROOT))
        with harness.process(bare_cmd, env, harness.OUT / "bare.log"):
            bare = f"http://127.0.0.1:{bare_port}"
            harness.wait_http(bare + "/docs")
            targets = {
                "offerd": base + "/api/v2/offer_fulfillments",
                "bare": bare + "/bare/offer_fulfillments",
            }
            runs = 1 + args.rounds  # a warm-up, then the measured rounds
            per_run = args.ids // runs
            for run in range(runs):
                for name, url in targets.items():
                    chunk = ids[name][run * per_run : (run + 1) * per_run]
                    env = {"BENCH_IDS": str(id_file(f"{name}-{run}", chunk)), "BENCH_AUTH": auth}
                    r = harness.wrk(
                        url,
                        script=harness.BENCH / "accept.lua",
                        connections=8 if run == 0 else args.connections,
                        seconds=3 if run == 0 else args.seconds,
                        env=env,
                    )
                    if run == 0:
                        continue
                    results[name].append(
                        {
                            "rps": r.requests_per_s,
                            "p50_ms": r.p50_ms,
                            "p99_ms": r.p99_ms,
                            "non_2xx": r.non_2xx,
                        }
                    )
                    print(
                        f"{name:6} {r.requests_per_s:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  non-2xx {r.non_2xx}"
                    )
    best = {name: max(x["rps"] for x in runs) for name, runs in results.items()}
    ratio = best["offerd"] / best["bare"]
    rounds = [o["rps"] / b["rps"] for o, b in zip(results["offerd"], results["bare"], strict=True)]
    median = sorted(rounds)[len(rounds) // 2]
    print(
        f"ratio offerd/bare: best of {args.rounds} {ratio:.2f}; per round {[round(r, 2) for r in rounds]}, median {median:.2f}"
    )
    harness.write_json(
        "accept",
        {
            "machine": harness.machine(),
            "args": vars(args),
            "results": results,
            "ratio": ratio,
            "round_ratios": rounds,
        },
    )


if __name__ == "__main__":
    main()
