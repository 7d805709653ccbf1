"""Wiring for worker processes: which job kinds exist and which sweeps run periodically."""

from __future__ import annotations

from offerd import jobs
from offerd.deps import Services
from offerd.worker import Periodic, Worker, purge_idempotency_keys


def build_registry() -> jobs.Registry:
    from offerd.fulfillments import processors
    from offerd.notifications import dispatch

    registry = jobs.Registry()
    for task in [*processors.tasks(), *dispatch.TASKS]:
        registry.add(task)
    return registry


def periodic_tasks() -> list[Periodic]:
    from offerd.fulfillments.sweeps import expire_overdue

    return [
        Periodic("purge_idempotency_keys", 60.0, purge_idempotency_keys),
        Periodic("expire_fulfillments", 30.0, expire_overdue),
    ]


def build_worker(services: Services) -> Worker:
    settings = services.settings
    return Worker(
        services.db,
        build_registry(),
        services.clock,
        resources=services,
        concurrency=settings.worker_concurrency,
        lease=settings.job_lease_seconds,
        idle_poll=settings.job_idle_poll_seconds,
        periodic=periodic_tasks(),
    )
