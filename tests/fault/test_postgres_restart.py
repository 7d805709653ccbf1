"""PostgreSQL restarts in the middle of a run: the worker process rides it out without being
restarted (its pool, its LISTEN connection and its in-flight jobs all recover), the API answers
503 ``db_connection_failure`` at worst and then serves again, and every billing_update still
completes exactly once.

This restarts PostgreSQL, so the module runs on a server of its own (the ``cluster`` fixture below):
the other tests of the run, on other pytest-xdist workers, share the session's server and never see
it go. Against an external server (OFFERD_TEST_DATABASE_URL) it skips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import psycopg
import pytest

from tests.fault.harness import (
    REPORT,
    Api,
    Workers,
    add_subscribers,
    assert_each_applied_exactly_once,
    connections_of,
    fetch,
    in_progress,
    scalar,
    scaled,
    server_of_its_own,
    timeout_mark,
    wait_until_final,
)
from tests.support.app import TestApp
from tests.support.catalog import seed
from tests.support.pg import Cluster

pytestmark = [pytest.mark.fault, timeout_mark(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from server_of_its_own(tmp_path_factory, "pg-restarted")


# What the worker logs when it notices the database is gone.
OUTAGE_EVENTS = (
    "worker.db_unavailable",
    "worker.listen_failed",
    "worker.heartbeat_failed",
    "job.db_unavailable",
)


async def listening(app: TestApp, app_name: str, since: datetime | None = None) -> bool:
    """Whether the worker has a session, opened after ``since``, that LISTENs for new jobs."""
    return any(
        c["query"] == "LISTEN offerd_jobs" and (since is None or c["backend_start"] > since)
        for c in await connections_of(app, app_name)
    )


def restart(cluster: Cluster) -> None:
    cluster.restart()


def stop_a_while_then_start(cluster: Cluster) -> None:
    """A longer outage (a failover, a slow restart): requests and reconnects fail meanwhile."""
    cluster.stop()
    try:
        time.sleep(3)
    finally:
        start_as_pgserver_does(cluster)


def start_as_pgserver_does(cluster: Cluster) -> None:
    """``Cluster.start()`` runs a bare ``pg_ctl start``, which loses the options pgserver started
    the server with (no TCP; the socket in its own folder), so nobody would find it again. Start
    it with pgserver's options instead (``pg_ctl restart`` keeps them by itself)."""
    assert cluster.pgdata is not None
    socket_dir = psycopg.conninfo.conninfo_to_dict(cluster.admin_url)["host"]
    cluster.pg_ctl(
        "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(cluster.pgdata / "log"), "start"
    )


@pytest.mark.parametrize("outage", [restart, stop_a_while_then_start], ids=lambda f: f.__name__)
async def test_worker_recovers_from_a_postgres_restart_without_being_restarted(
    app: TestApp, workers: Workers, cluster: Cluster, outage: Callable[[Cluster], None]
) -> None:
    if not cluster.restartable:
        pytest.skip("the test database is external (OFFERD_TEST_DATABASE_URL): can't restart it")
    keys = await seed(app)
    backlog = await add_subscribers(app, "a", scaled(300))
    during = await add_subscribers(app, "b", scaled(100))
    after = await add_subscribers(app, "c", scaled(50))
    api = Api(app, keys["full_access"])
    ids = await api.accept_all(backlog)

    w = workers.start(lease=2.0, idle_poll=0.5, concurrency=8)
    await w.wait_started()
    deadline = time.monotonic() + 120
    while await in_progress(app) == len(backlog):  # the worker is under way
        assert w.alive() and time.monotonic() < deadline, w.tail()
        await asyncio.sleep(0.02)
    while not await listening(app, w.app_name):  # so that "listening again" below means something
        assert w.alive() and time.monotonic() < deadline, w.tail()
        await asyncio.sleep(0.02)

    # Accepts keep arriving while the server goes down and comes back.
    producer = asyncio.create_task(api.accept_all(during, parallel=4))
    await asyncio.sleep(0.05)
    left_at_restart = await in_progress(app)
    held_at_restart = await scalar(app, "SELECT count(*) FROM jobs WHERE locked_by IS NOT NULL")
    await asyncio.to_thread(outage, cluster)
    restarted_at = await scalar(app, "SELECT pg_postmaster_start_time()")

    # Accepted only after the restart: only the surviving worker can do these.
    ids += await api.accept_all(after)
    ids += await producer
    await wait_until_final(app, workers, timeout=180, alive=[w])

    assert w.alive(), w.tail()
    assert len(workers.started) == 1  # nobody else could have done the work
    noticed = w.events(*OUTAGE_EVENTS)
    assert noticed, f"the worker never noticed the restart\n{w.tail()}"
    # Its LISTEN connection is back: a session opened after the restart, listening again.
    deadline = time.monotonic() + 60
    while not await listening(app, w.app_name, since=restarted_at):
        assert time.monotonic() < deadline, (
            f"the worker is not listening again: {await connections_of(app, w.app_name)}\n"
            + w.tail()
        )
        await asyncio.sleep(0.1)
    applied_after = await scalar(
        app, "SELECT count(*) FROM subscription_changes WHERE created_at > %s", restarted_at
    )
    assert applied_after >= len(after), "the work accepted after the restart was not done"

    REPORT.append(
        f"postgres {outage.__name__}: n={len(ids)}, {left_at_restart} in progress and "
        f"{held_at_restart} jobs held at the outage, worker log: "
        + ", ".join(f"{e}×{len(w.events(e))}" for e in OUTAGE_EVENTS if w.events(e))
        + f"; {api.retried} API requests retried after 503"
    )
    subscriptions = [s for _, s in backlog + after + during]
    by_fulfillment = {
        r["id"]: r["subscription_id"]
        for r in await fetch(app, "SELECT id, subscription_id FROM offer_fulfillments")
    }
    assert sorted(by_fulfillment[i] for i in ids) == sorted(subscriptions)
    await assert_each_applied_exactly_once(app, ids, [by_fulfillment[i] for i in ids])
    assert await w.terminate() == 0, w.tail()
