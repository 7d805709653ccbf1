"""kill -9 the worker again and again while billing_update fulfillments are processed: every one
still ends ``completed``, its subscription change applied once, its ``fulfilled`` event written
once, and the queue ends empty.

A worker killed mid-job leaves its claimed jobs locked until their lease runs out; the next worker
takes them up again, so each job can run more than once. Exactly-once effects come from finishing
the job in the same transaction as the ledger write and the status change.

Size: 500 fulfillments (the issue's number) and at most 15 kills, both times OFFERD_FAULT_SCALE
(about a minute at 1 on two busy cores, mostly worker start-ups). The seed of the kill
schedule is printed and can be replayed with OFFERD_FAULT_SEED.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass

import pytest

from tests.fault.harness import (
    REPORT,
    Api,
    WorkerProcess,
    Workers,
    add_subscribers,
    assert_each_applied_exactly_once,
    connections_of,
    in_progress,
    scalar,
    scaled,
    timeout_mark,
    wait_until_final,
)
from tests.support.app import TestApp
from tests.support.catalog import seed

pytestmark = [pytest.mark.fault, timeout_mark(420)]

LEASE = 2.0
IDLE_POLL = 0.5
CONCURRENCY = 16


@dataclass(frozen=True)
class Kill:
    after: float  # seconds the worker had been running (since its worker.start)
    left: int  # fulfillments still in_progress just before the kill
    stranded: int  # jobs the dead worker still held: claimed, not finished


async def kill_and_count(app: TestApp, w: WorkerProcess) -> int:
    """SIGKILL, wait until PostgreSQL has dropped the dead worker's sessions (rolling back their
    open transactions), then count the jobs it left locked."""
    worker_id = w.worker_id
    w.kill()
    deadline = time.monotonic() + 60
    while await connections_of(app, w.app_name):
        assert time.monotonic() < deadline, "PostgreSQL kept the killed worker's sessions"
        await asyncio.sleep(0.02)
    n: int = await scalar(app, "SELECT count(*) FROM jobs WHERE locked_by = %s", worker_id)
    return n


async def test_kill_9_repeatedly_while_billing_updates_run(app: TestApp, workers: Workers) -> None:
    n = scaled(500)
    seed_value = int(os.environ.get("OFFERD_FAULT_SEED", random.randrange(1 << 32)))
    replay = f"OFFERD_FAULT_SEED={seed_value}"
    rng = random.Random(seed_value)

    keys = await seed(app)
    subscribers = await add_subscribers(app, "k", n)
    api = Api(app, keys["full_access"])
    fulfillment_ids = await api.accept_all(subscribers)
    assert await in_progress(app) == n

    # Kill phase: start a worker, let it run until it has completed a random number of
    # fulfillments or for a random while, whichever comes first (so a fast machine gets as many
    # kills as a slow one), kill -9, again. Bounded, so a slow machine ends up in the finishing
    # phase instead of looping.
    max_kills = scaled(15)  # plenty of evidence; more only costs worker start-ups (~2 s each)
    kill_phase_ends = time.monotonic() + 120 * max(1.0, n / 500)
    kills: list[Kill] = []
    while (
        (left := await in_progress(app)) > 0
        and len(kills) < max_kills
        and time.monotonic() < kill_phase_ends
    ):
        w = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
        await w.wait_started()
        started = time.monotonic()
        target = max(left - rng.randint(15, 90), 0)  # kill once no more than this is left...
        run_for = rng.uniform(0.1, 1.0)  # ...or after this long
        while time.monotonic() - started < run_for and await in_progress(app) > target:
            assert w.alive(), f"the worker died on its own\n{w.tail()}"
            await asyncio.sleep(0.01)
        assert w.alive(), f"the worker died on its own\n{w.tail()}"
        left = await in_progress(app)
        stranded = await kill_and_count(app, w)
        kills.append(Kill(round(time.monotonic() - started, 2), left, stranded))

    # Finishing phase: one worker left alone until everything is final.
    last = workers.start(lease=LEASE, idle_poll=IDLE_POLL, concurrency=CONCURRENCY)
    await last.wait_started()
    await wait_until_final(app, workers, timeout=180 * max(1.0, n / 500), alive=[last])
    assert await last.terminate() == 0, last.tail()

    with_work = [k for k in kills if k.left > 0]
    stranded = sum(k.stranded for k in kills)
    REPORT.append(
        f"kill -9: n={n}, {len(kills)} kills ({len(with_work)} with work left, {stranded} claimed "
        f"jobs stranded), {len(workers.started)} worker processes, {replay}"
    )
    await assert_each_applied_exactly_once(app, fulfillment_ids, [s for _, s in subscribers])
    # The crash path was really taken: kills landed while work remained, and some of them
    # took down jobs the worker had claimed but not finished.
    assert len(with_work) >= 3, (replay, kills)
    assert stranded > 0, (replay, kills)
