"""What a per-site rate limit costs a request: ``RateLimiter.check`` (a pooled connection and one
UPSERT ... RETURNING on the site's counter row) next to a bare round trip (``SELECT 1``), one
request at a time and 16 at once on the same site (all on one hot row).

    .venv/bin/python -m bench.ratelimit_upsert [iterations]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from bench.harness import database, latency_summary, machine
from offerd.db import Database
from offerd.edge.ratelimit import RateLimiter

LIMIT = 10**9  # never reached: every call does its UPSERT


async def timed(n: int, parallel: int, op: Callable[[], Awaitable[None]]) -> list[float]:
    out: list[float] = []

    async def lane(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await op()
            out.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(lane(n // parallel) for _ in range(parallel)))
    return out


async def run(url: str, n: int) -> None:
    db = Database(url, min_size=16, max_size=16)
    await db.open()
    limiter = RateLimiter()

    async def bare() -> None:
        async with db.connection() as conn:
            await conn.execute("SELECT 1")

    async def limited() -> None:
        async with db.connection() as conn:
            await limiter.check(conn, "bench", LIMIT)

    try:
        await timed(200, 1, bare)  # warm up both
        await timed(200, 1, limited)
        for parallel in (1, 16):
            for name, op in (("SELECT 1", bare), ("rate limit UPSERT", limited)):
                s = latency_summary(await timed(n, parallel, op))
                print(  # noqa: T201
                    f"{name:>18}, {parallel:>2} at once: p50 {s['p50_ms']:.3f} ms, "
                    f"p90 {s['p90_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms"
                )
    finally:
        await db.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    print(machine())  # noqa: T201
    with database() as db:
        asyncio.run(run(db.url, n))


if __name__ == "__main__":
    main()
