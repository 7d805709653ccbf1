"""CPU per POST /api/v2/personalized_offers inside one process: offerd's app and the bare
endpoint (bench/bare_app.py) called through ASGI directly (no sockets, no wrk, no uvicorn), in
alternating rounds, each request timed with time.process_time(). PostgreSQL runs in its own
processes, so this is the Python side alone, and far steadier than req/s on a shared VM. The
decisioning catalog of bench_decisioning.py (typical or worst) is seeded first.

    .venv/bin/python bench/cpu_per_request.py [--catalog typical] [--requests 1000] [--rounds 5]
    .venv/bin/python bench/cpu_per_request.py --profile      # cProfile of offerd, CPU time
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.asgi import http_scope  # noqa: E402

from bench import harness  # noqa: E402
from bench.bench_decisioning import catalog, experiments, history  # noqa: E402

CUSTOMERS = 1000


async def call(app: Any, path: str, auth: str, i: int) -> None:
    n = i % CUSTOMERS + 1
    body = orjson.dumps(
        {
            "customer_id": f"cus_{n}",
            "subscription_id": f"sub_{n}",
            "custom": {"viewCount": i % 10, "bucket": n % 10},
        }
    )
    scope = http_scope(
        "POST",
        path,
        [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", auth.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{path} answered {sent[0]['status']}: {sent}")


async def cpu_per_request(app: Any, path: str, auth: str, count: int) -> float:
    """Microseconds of this process' CPU per request, after a warm-up."""
    for i in range(50):
        await call(app, path, auth, i)
    started = time.process_time()
    for i in range(count):
        await call(app, path, auth, i)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", choices=("typical", "worst"), default="typical")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with harness.database() as db:
        with harness.offerd_server(db) as base:
            keys = harness.seed(base, catalog(args.catalog))
            admin = harness.admin(base)
            for exp_id, body in experiments():
                admin.put(f"/experiments/{exp_id}", json=body)
            harness.bulk_subscribers(db, CUSTOMERS)
            history(db, CUSTOMERS)
        auth = "Basic " + base64.b64encode(f"{keys['publishable']}:".encode()).decode()
        os.environ.update(harness.env_for(db))

        import uvloop

        from bench import bare_app
        from offerd.app import create_app
        from offerd.observability import configure_logging
        from offerd.settings import get_settings

        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)

        async def run() -> None:
            app = create_app(settings)
            async with (
                app.router.lifespan_context(app),
                bare_app.app.router.lifespan_context(bare_app.app),
            ):
                if args.profile:
                    profile = cProfile.Profile(time.process_time)
                    profile.enable()
                    await cpu_per_request(app, "/api/v2/personalized_offers", auth, args.requests)
                    profile.disable()
                    pstats.Stats(profile).sort_stats("tottime").print_stats(40)
                    return
                offerd, bare = [], []
                for _ in range(args.rounds):
                    offerd.append(
                        await cpu_per_request(
                            app, "/api/v2/personalized_offers", auth, args.requests
                        )
                    )
                    bare.append(
                        await cpu_per_request(
                            bare_app.app, "/bare/personalized_offers", auth, args.requests
                        )
                    )
                o, b = statistics.median(offerd), statistics.median(bare)
                print(
                    f"offerd ({args.catalog}): {o:.0f} us/request, rounds {[round(x) for x in offerd]}"
                )
                print(f"bare: {b:.0f} us/request, rounds {[round(x) for x in bare]}")
                print(f"offerd / bare: {o / b:.2f}")
                harness.write_json(
                    f"cpu_{args.catalog}",
                    {
                        "machine": harness.machine(),
                        "args": vars(args),
                        "offerd_us": offerd,
                        "bare_us": bare,
                        "ratio": o / b,
                    },
                )

        uvloop.run(run())


if __name__ == "__main__":
    main()
