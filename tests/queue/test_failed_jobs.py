"""Jobs that failed for good: kept, listed by the admin API and ``offerd jobs list --failed``,
retried by ``POST /admin/v1/jobs/{id}/retry`` and ``offerd jobs retry ID``; and the queue's
gauges on /metrics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from offerd.common.clock import unix
from offerd.queue import jobs
from tests.support.app import TestApp
from tests.support.cli import run_offerd

KIND = "test.kind"


async def failed_job(app: TestApp, error: str = "Permanent: no such plan", **payload: Any) -> int:
    """A job given up by a worker, as the worker keeps it."""
    now = app.clock.now()
    async with app.services.db.connection() as conn:
        job_id = await jobs.enqueue(conn, KIND, payload, now=now)
        (job,) = await jobs.claim(conn, me="w", kinds=[KIND], limit=1, now=now, lease=10)
        await jobs.fail(conn, job, me="w", now=now, error=error)
    return job_id


async def test_failed_jobs_are_listed_newest_first_in_pages(app: TestApp) -> None:
    ids = [await failed_job(app, fulfillment_id=f"of_{n}") for n in range(2)]
    before = unix(app.clock.now())  # the clock moves with real time: the last one's failure
    ids.append(await failed_job(app, fulfillment_id="of_2"))  # is read between these two
    after = unix(app.clock.now())
    async with app.services.db.connection() as conn:
        await jobs.enqueue(conn, KIND, {"queued": True}, now=app.clock.now())  # not listed

    r = await app.admin("GET", "/jobs?status=failed&limit=2")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [j["id"] for j in body["jobs"]] == [ids[2], ids[1]]
    first = body["jobs"][0]
    assert first == {
        "id": ids[2],
        "object": "job",
        "kind": KIND,
        "status": "failed",
        "payload": {"fulfillment_id": "of_2"},
        "attempts": 1,
        "last_error": "Permanent: no such plan",
        "run_at": first["run_at"],
        "failed_at": first["failed_at"],
        "created_at": first["created_at"],
    }
    assert before is not None and after is not None and before <= first["failed_at"] <= after
    r = await app.admin("GET", f"/jobs?limit=2&cursor={body['next_cursor']}")
    assert r.status_code == 200, r.text
    assert [j["id"] for j in r.json()["jobs"]] == [ids[0]]
    assert "next_cursor" not in r.json()

    r = await app.admin("GET", "/jobs?status=queued")
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "status"
    r = await app.admin("GET", "/jobs?cursor=nope")
    assert (r.status_code, r.json()["param"]) == (400, "cursor")
    r = await app.client.get("/admin/v1/jobs")
    assert r.status_code == 401


async def test_a_failed_job_retried_through_the_admin_api_runs_again(app: TestApp) -> None:
    job_id = await failed_job(app)
    r = await app.admin("POST", f"/jobs/{job_id}/retry")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"], r.json()["failed_at"]) == ("queued", 0, None)
    async with app.services.db.connection() as conn:
        (again,) = await jobs.claim(
            conn, me="w2", kinds=[KIND], limit=1, now=app.clock.now(), lease=10
        )
    assert (again.id, again.attempts) == (job_id, 1)

    r = await app.admin("POST", f"/jobs/{job_id}/retry")
    assert r.status_code == 409, r.text
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    r = await app.admin("POST", "/jobs/999999/retry")
    assert r.status_code == 404, r.text
    r = await app.admin("GET", f"/jobs/{job_id}")
    assert (r.status_code, r.json()["status"]) == (200, "queued")


async def test_offerd_jobs_list_failed_and_retry(app: TestApp, db_url: str, tmp_path: Path) -> None:
    job_id = await failed_job(app, "RuntimeError: upstream down", delivery_id="dl_abc")

    listed = run_offerd(db_url, tmp_path, "jobs", "list", "--failed")
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if f" {job_id} " in f" {ln} "]
    assert KIND in line and "delivery_id=dl_abc" in line and "upstream down" in line

    retried = run_offerd(db_url, tmp_path, "jobs", "retry", str(job_id))
    assert retried.returncode == 0, retried.stderr
    assert f"job {job_id} ({KIND}) is queued again" in retried.stderr
    (row,) = await app.fetch("SELECT status, attempts FROM jobs WHERE id = %s", job_id)
    assert row == {"status": "queued", "attempts": 0}

    again = run_offerd(db_url, tmp_path, "jobs", "retry", str(job_id))
    assert again.returncode == 1
    assert "has not failed" in again.stderr
    listed = run_offerd(db_url, tmp_path, "jobs", "list", "--failed")
    assert str(job_id) not in listed.stdout


async def test_the_queue_gauges_are_read_from_the_jobs_table(app: TestApp) -> None:
    await failed_job(app)
    async with app.services.db.connection() as conn:
        now = app.clock.now()
        await jobs.enqueue(conn, KIND, {}, now=now)
        await jobs.enqueue(conn, KIND, {}, now=now, run_at=now - timedelta(minutes=2))
    r = await app.client.get("/metrics")
    assert r.status_code == 200
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in r.text.splitlines()
        if line.startswith("offerd_jobs_")
    }
    assert samples[f'offerd_jobs_queued{{kind="{KIND}"}}'] == 2
    assert samples[f'offerd_jobs_failed{{kind="{KIND}"}}'] == 1
    assert samples[f'offerd_jobs_oldest_age_seconds{{kind="{KIND}"}}'] >= 120  # overdue
