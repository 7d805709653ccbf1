"""What the fault tests share: ``offerd worker`` as a real child process (its JSON log in a file,
its connections named through ``PGAPPNAME``), bulk setup of subscribers, an API client that
retries the 503 the API answers while PostgreSQL is away, and the exactly-once checks.

Every wait here is a hang guard: it fails the test with the worker's log, it never measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.app import TestApp
from tests.support.pg import Cluster, shared_cluster

SITE = "acme"
ASK = "/api/v2/personalized_offers"
ACCEPT = "/api/v2/offer_fulfillments"
KIND = "fulfillment.billing_update"

# Generous hang guards: other test sessions share these two cores.
START_TIMEOUT = 90.0
EXIT_TIMEOUT = 90.0


# One line per fault test run, printed in pytest's terminal summary (see conftest.py).
REPORT: list[str] = []


def scale() -> float:
    """OFFERD_FAULT_SCALE multiplies the fault tests' sizes (1 = the CI default)."""
    raw = os.environ.get("OFFERD_FAULT_SCALE", "1")
    value = float(raw)
    if value <= 0:
        raise ValueError(f"OFFERD_FAULT_SCALE must be positive, got {raw!r}")
    return value


def scaled(n: int) -> int:
    return max(1, round(n * scale()))


def timeout_mark(seconds: float) -> pytest.MarkDecorator:
    """pytest-timeout's limit for a fault test, grown with its size."""
    return pytest.mark.timeout(round(seconds * max(1.0, scale())))


# --- the worker process ------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``python -m offerd worker`` child; its stdout and stderr go to ``log_path``."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    app_name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else, e.g. a traceback, is skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") in names]

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.log_path} (pid {self.pid}, rc {self.proc.poll()}) ---\n" + "\n".join(
            text[-lines:]
        )

    @property
    def worker_id(self) -> str:
        (start,) = self.events("worker.start")
        worker: str = start["worker"]
        return worker

    async def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.events("worker.start"):
            if not self.alive():
                raise AssertionError(f"the worker exited before starting\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start in {timeout}s\n{self.tail()}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, and reap the process."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=EXIT_TIMEOUT)

    async def terminate(self, timeout: float = EXIT_TIMEOUT) -> int:
        """SIGTERM; return the exit code (fails the test if the worker does not exit)."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while (rc := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not exit in {timeout}s\n{self.tail()}")
            await asyncio.sleep(0.05)
        return rc


@dataclass
class Workers:
    """Starts workers against one database; the fixture kills any still running at teardown."""

    db_url: str
    log_dir: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(
        self, *, lease: float = 2.0, idle_poll: float = 0.5, concurrency: int = 16
    ) -> WorkerProcess:
        n = len(self.started) + 1
        log_path = self.log_dir / f"worker-{n:03d}.log"
        # Connections carry the application name, so pg_stat_activity shows whose they are.
        app_name = f"offerd-fault-{n}-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "OFFERD_DATABASE_URL": self.db_url,
            "OFFERD_JOB_LEASE_SECONDS": str(lease),
            "OFFERD_JOB_IDLE_POLL_SECONDS": str(idle_poll),
            "OFFERD_WORKER_CONCURRENCY": str(concurrency),
            "OFFERD_LOG_LEVEL": "info",
            "OFFERD_LOG_FORMAT": "json",
            "PGAPPNAME": app_name,
            "PYTHONUNBUFFERED": "1",
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "offerd", "worker"],
                cwd=self.log_dir,  # no stray .env from the checkout
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log_path, app_name)
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for w in self.started:
            if w.alive():
                w.kill()

    def tails(self, last: int = 3) -> str:
        return "\n".join(w.tail() for w in self.started[-last:])


# --- setup and the public API ------------------------------------------------------------------


async def add_subscribers(app: TestApp, prefix: str, n: int) -> list[tuple[str, str]]:
    """``n`` customers with one active subscription each, on plan ``basic`` without coupons."""
    async with app.services.db.connection() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO customers (site_id, id, email, created_at, updated_at)
            SELECT %(site)s, %(p)s || '_cus_' || i, %(p)s || i || '@example.com', now(), now()
            FROM generate_series(1, %(n)s) AS i
            """,
            {"site": SITE, "p": prefix, "n": n},
        )
        await conn.execute(
            """
            INSERT INTO subscriptions (site_id, id, customer_id, plan_id, status,
                                       current_term_start, current_term_end, created_at, updated_at)
            SELECT %(site)s, %(p)s || '_sub_' || i, %(p)s || '_cus_' || i, 'basic', 'active',
                   now() - interval '1 day', now() + interval '29 days', now(), now()
            FROM generate_series(1, %(n)s) AS i
            """,
            {"site": SITE, "p": prefix, "n": n},
        )
    return [(f"{prefix}_cus_{i}", f"{prefix}_sub_{i}") for i in range(1, n + 1)]


@dataclass
class Api:
    """The public API as a client sees it, retrying what the API says is safe to retry: a 503
    ``db_connection_failure`` (PostgreSQL away; "nothing was changed")."""

    app: TestApp
    key: str
    retried: int = 0
    retry_deadline: float = 120.0

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        # One idempotency key per logical request: a retry can never make a second fulfillment.
        headers = {"chargebee-idempotency-key": uuid.uuid4().hex}
        deadline = time.monotonic() + self.retry_deadline
        while True:
            r = await self.app.post(path, self.key, json=body, headers=headers)
            if r.status_code != 503 or time.monotonic() > deadline:
                return r
            assert r.json().get("api_error_code") == "db_connection_failure", r.text
            self.retried += 1
            await asyncio.sleep(0.2)

    async def accept_discount(self, customer_id: str, subscription_id: str) -> str:
        r = await self.post(ASK, {"customer_id": customer_id, "subscription_id": subscription_id})
        assert r.status_code == 200, r.text
        offers = r.json()["personalized_offers"]
        assert [o["offer_id"] for o in offers] == ["stay"], r.text
        r = await self.post(
            ACCEPT, {"personalized_offer_id": offers[0]["id"], "option_id": "discount"}
        )
        assert r.status_code == 202, r.text
        fulfillment = r.json()["offer_fulfillment"]
        assert fulfillment["processing_type"] == "billing_update", r.text
        fulfillment_id: str = fulfillment["id"]
        return fulfillment_id

    async def accept_all(
        self, subscribers: Sequence[tuple[str, str]], *, parallel: int = 8
    ) -> list[str]:
        """One accepted ``discount`` per subscriber; ``parallel`` requests in flight."""
        gate = asyncio.Semaphore(parallel)

        async def one(customer_id: str, subscription_id: str) -> str:
            async with gate:
                return await self.accept_discount(customer_id, subscription_id)

        return list(await asyncio.gather(*(one(c, s) for c, s in subscribers)))


# --- reading the outcome -----------------------------------------------------------------------


async def fetch(app: TestApp, query: str, *params: Any) -> list[dict[str, Any]]:
    """The test's own reads, through the app's pool; they ride out a PostgreSQL restart too."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return await app.fetch(query, *params)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            with contextlib.suppress(Exception):
                await app.services.db.check()
            await asyncio.sleep(0.2)


async def scalar(app: TestApp, query: str, *params: Any) -> Any:
    (row,) = await fetch(app, query, *params)
    return next(iter(row.values()))


async def in_progress(app: TestApp) -> int:
    n: int = await scalar(
        app, "SELECT count(*) FROM offer_fulfillments WHERE status = 'in_progress'"
    )
    return n


async def wait_until_final(
    app: TestApp, workers: Workers, *, timeout: float, alive: Iterable[WorkerProcess] = ()
) -> None:
    """Until no fulfillment is ``in_progress``; fails if a worker that should run has died."""
    deadline = time.monotonic() + timeout
    must_run = list(alive)
    while (left := await in_progress(app)) > 0:
        for w in must_run:
            if not w.alive():
                raise AssertionError(f"the worker died with {left} left\n{w.tail()}")
        if time.monotonic() > deadline:
            jobs = await fetch(
                app,
                "SELECT id, attempts, locked_by, locked_until, run_at, last_error FROM jobs "
                "ORDER BY id LIMIT 10",
            )
            raise AssertionError(
                f"{left} fulfillments still in_progress after {timeout}s; jobs: {jobs}\n"
                + workers.tails()
            )
        await asyncio.sleep(0.1)


async def assert_each_applied_exactly_once(
    app: TestApp, fulfillment_ids: Sequence[str], subscription_ids: Sequence[str]
) -> None:
    """Every fulfillment completed, with one ledger change, one SAVE20 and one ``fulfilled``."""
    assert len(set(fulfillment_ids)) == len(fulfillment_ids) == len(subscription_ids)
    total = await scalar(app, "SELECT count(*) FROM offer_fulfillments")
    assert total == len(fulfillment_ids), "fulfillments nobody asked for"

    rows = await fetch(
        app, "SELECT id, status, error_code, error_message, subscription_id FROM offer_fulfillments"
    )
    not_completed = [r for r in rows if r["status"] != "completed"]
    assert not not_completed, f"{len(not_completed)} not completed, e.g. {not_completed[:5]}"
    assert {r["id"] for r in rows} == set(fulfillment_ids)
    assert {r["subscription_id"] for r in rows} == set(subscription_ids)

    changes = await fetch(
        app,
        "SELECT fulfillment_id, subscription_id, count(*) AS n FROM subscription_changes "
        "GROUP BY fulfillment_id, subscription_id",
    )
    by_fulfillment = {r["fulfillment_id"]: r for r in changes}
    wrong = [r for r in changes if r["n"] != 1]
    assert not wrong, f"changes applied more than once: {wrong[:5]}"
    assert set(by_fulfillment) == set(fulfillment_ids), "fulfillments without a ledger change"
    per_subscription = await fetch(
        app,
        "SELECT subscription_id, count(*) AS n FROM subscription_changes "
        "GROUP BY subscription_id HAVING count(*) <> 1",
    )
    assert not per_subscription, f"subscriptions changed twice: {per_subscription[:5]}"

    subscriptions = await fetch(
        app,
        "SELECT id, coupon_ids, version FROM subscriptions WHERE id = ANY(%s)",
        list(subscription_ids),
    )
    assert len(subscriptions) == len(subscription_ids)
    # version starts at 1 and every ledger write adds one: exactly one write each.
    wrong = [s for s in subscriptions if s["coupon_ids"] != ["SAVE20"] or s["version"] != 2]
    assert not wrong, f"{len(wrong)} subscriptions not changed exactly once: {wrong[:5]}"

    events = await fetch(
        app,
        "SELECT fulfillment_id, type, count(*) AS n FROM offer_events "
        "WHERE fulfillment_id IS NOT NULL GROUP BY fulfillment_id, type",
    )
    counts = {(r["fulfillment_id"], r["type"]): r["n"] for r in events}
    for fid in fulfillment_ids:
        assert counts.get((fid, "accepted")) == 1, (fid, counts.get((fid, "accepted")))
        assert counts.get((fid, "fulfilled")) == 1, (fid, counts.get((fid, "fulfilled")))
        assert (fid, "failed") not in counts, fid
    assert len(counts) == 2 * len(fulfillment_ids), "events of another type"

    left = await fetch(app, "SELECT id, kind, locked_by, attempts, last_error FROM jobs")
    assert left == [], f"jobs left in the queue: {left[:5]}"


async def connections_of(app: TestApp, app_name: str) -> list[dict[str, Any]]:
    return await fetch(
        app,
        "SELECT pid, state, query, backend_start FROM pg_stat_activity WHERE application_name = %s",
        app_name,
    )


def server_of_its_own(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Cluster]:
    """The body of a module's ``cluster`` fixture (overriding the session's, which ``db_url`` and
    ``app`` then use) for a module that restarts or stops PostgreSQL: doing that to the shared
    server would break whatever the other xdist workers run meanwhile."""
    if os.environ.get("OFFERD_TEST_DATABASE_URL"):
        pytest.skip("the test database is external (OFFERD_TEST_DATABASE_URL): can't stop it")
    with shared_cluster(tmp_path_factory.mktemp(name)) as own:
        yield own
