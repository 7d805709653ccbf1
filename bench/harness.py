"""Shared pieces of the benchmarks: a PostgreSQL (the embedded one in a scratch folder, or
OFFERD_BENCH_DATABASE_URL), a migrated database per run, a seeded site, servers and workers as
real processes, wrk runs, and percentile arithmetic.

Nothing here is a test: benchmarks are run by hand and their numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
ADMIN = "bench-admin-token"


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.platform()}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Database:
    url: str
    admin_url: str
    name: str


@contextlib.contextmanager
def database() -> Iterator[Database]:
    """A fresh, migrated database for one benchmark run."""
    admin_url = os.environ.get("OFFERD_BENCH_DATABASE_URL")
    scratch = None
    if not admin_url:
        from pgserver import get_server  # type: ignore[attr-defined]

        scratch = Path(tempfile.mkdtemp(prefix="offerd-bench-"))
        server = get_server(scratch / "pgdata", cleanup_mode="delete")
        admin_url = server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 300")
            conn.execute("ALTER SYSTEM SET shared_buffers = '512MB'")
        from pgserver import _commands

        _commands.pg_ctl(
            ["-w", "-m", "fast", "restart"], pgdata=scratch / "pgdata", user=server.system_user
        )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    from offerd import migrate

    migrate.upgrade(url)
    try:
        yield Database(url, admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def env_for(db: Database, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OFFERD_DATABASE_URL": db.url,
        "OFFERD_ADMIN_TOKEN": ADMIN,
        "OFFERD_LOG_LEVEL": "warning",
        "OFFERD_AUTH_CACHE_SECONDS": "5",
        # an external database needs a key for stored secrets (a fixed one: bench data only)
        "OFFERD_SECRET_KEY": os.environ.get(
            "OFFERD_SECRET_KEY", "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="
        ),
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    OUT.mkdir(exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=sink, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def offerd_server(
    db: Database, *, workers: int = 1, worker: bool = False, **settings: str
) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "offerd", "serve", "--port", str(port), "--workers", str(workers)]
    args.append("--worker" if worker else "--no-worker")
    with process(args, env_for(db, OFFERD_PORT=str(port), **settings), OUT / f"offerd-{port}.log"):
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        yield base


@contextlib.contextmanager
def offerd_worker(db: Database, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "offerd", "worker"]
    with process(args, env_for(db, **settings), OUT / "worker.log") as proc:
        yield proc


def seed(base: str, offers: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, str]:
    """Site ``bench`` with plans, a coupon, the admin keys, and the given offers."""
    sys.path.insert(0, str(ROOT))
    from tests.support.catalog import offer

    h = httpx.Client(
        base_url=base + "/admin/v1/sites",
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=60,
    )
    assert h.put("/bench", json={"name": "Bench"}).status_code in (200, 201)
    h.put(
        "/bench/plans/basic",
        json={"name": "Basic", "price": 1500, "currency": "USD", "period_unit": "month"},
    )
    h.put(
        "/bench/plans/pro",
        json={"name": "Pro", "price": 4900, "currency": "USD", "period_unit": "month"},
    )
    h.put(
        "/bench/coupons/SAVE20",
        json={
            "name": "20%",
            "discount_type": "percentage",
            "discount_percentage": 20,
            "duration_type": "forever",
        },
    )
    for offer_id, definition in offers or [("stay", offer())]:
        r = h.put(f"/bench/offers/{offer_id}", json=definition)
        assert r.status_code in (200, 201), r.text
    keys = {}
    for kind in ("full_access", "publishable"):
        keys[kind] = h.post("/bench/api_keys", json={"kind": kind, "name": kind}).json()["key"]
    return keys


def bulk_subscribers(db: Database, count: int) -> None:
    """``count`` customers ``cus_<i>``, each with an active subscription ``sub_<i>`` on basic."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO customers (site_id, id, email, created_at, updated_at)
            SELECT 'bench', 'cus_' || i, 'c' || i || '@example.com', now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"n": count},
        )
        conn.execute(
            """
            INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status,
                current_term_start, current_term_end, created_at, updated_at)
            SELECT 'bench', 'sub_' || i, 'cus_' || i, 'basic', 'active',
                now(), now() + interval '30 days', now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"n": count},
        )


def personalized_offers(base: str, key: str, count: int, *, concurrency: int = 16) -> list[str]:
    """Ask for ``count`` personalized offers (one per subscriber) through the public API."""
    import asyncio

    async def run() -> list[str]:
        out: list[str] = []
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=base, auth=(key, ""), timeout=60) as client:

            async def one(i: int) -> None:
                async with sem:
                    r = await client.post(
                        "/api/v2/personalized_offers",
                        json={"customer_id": f"cus_{i}", "subscription_id": f"sub_{i}"},
                    )
                    out.append(r.json()["personalized_offers"][0]["id"])

            await asyncio.gather(*(one(i) for i in range(1, count + 1)))
        return out

    return asyncio.run(run())


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int
    raw: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    seconds: int,
    threads: int = 2,
    env: dict[str, str] | None = None,
) -> WrkResult:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # the "Latency Distribution" lines are the only ones that are just "  50%  1.23ms"
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return WrkResult(rps, p50, p99, int(non.group(1)) if non else 0, total, out)


def uvicorn_cmd(target: str, port: int, *extra: str) -> list[str]:
    """A bare ASGI app from bench/ on the same uvicorn settings offerd serves with."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--port",
        str(port),
        *extra,
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def open_loop(
    base: str, key: str, requests: list[tuple[str, dict[str, Any]]], rate: float, ok: int
) -> int:
    """POST ``requests`` (path, JSON body) open-loop: request i is sent at start + i/rate,
    whatever the earlier ones are doing (at most 64 in flight). Returns how many did not answer
    ``ok`` (or did not get an answer)."""

    async def run() -> int:
        failures = 0
        # requests queue for a connection here, not in httpx's pool, which is slow with
        # thousands of waiters and would time them out
        slots = asyncio.Semaphore(64)
        async with httpx.AsyncClient(
            base_url=base,
            auth=(key, ""),
            timeout=30,
            # idle connections go before uvicorn's 5 s keep-alive closes them under a request
            limits=httpx.Limits(max_connections=64, keepalive_expiry=2.0),
        ) as client:
            start = time.perf_counter()

            async def one(i: int, path: str, body: dict[str, Any]) -> None:
                nonlocal failures
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with slots:
                    try:
                        r = await client.post(path, json=body)
                    except httpx.TransportError:  # e.g. a kept-alive connection the server closed
                        failures += 1
                        return
                if r.status_code != ok:
                    failures += 1

            await asyncio.gather(*(one(i, *request) for i, request in enumerate(requests)))
        return failures

    return asyncio.run(run())


def admin(base: str, site: str = "bench") -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/admin/v1/sites/{site}", headers={"authorization": f"Bearer {ADMIN}"}
    )


def wait_until_none_left(db: Database, count_sql: LiteralString, timeout: float) -> None:
    """Poll ``count_sql`` (a SELECT count(*)) every half second until it says 0."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(db.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            left = conn.execute(count_sql).fetchone()
            if left and left[0] == 0:
                return
            time.sleep(0.5)
    raise TimeoutError(f"still not done after {timeout} s: {count_sql}")


def latency_summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else float("nan"),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_json(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
