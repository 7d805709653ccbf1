"""Job handlers that carry each processing type forward."""

from __future__ import annotations

from offerd import jobs
from offerd.fulfillments.service import JOB_KIND


async def _taken(ctx: jobs.JobContext) -> None:
    """Foundation only: the job leaves the queue. The processors arrive with the engine."""


def tasks() -> list[jobs.Task]:
    return [jobs.Task(kind, _taken) for kind in JOB_KIND.values()]
