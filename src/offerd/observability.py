"""JSON logs with a request id, Prometheus metrics, and the edge every request passes through:
the request id, the 1 MiB body limit, the latency histogram, and the last-resort error body."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from offerd.db import Database
from offerd.edge.errors import APIError, InternalError, InvalidRequest, PayloadTooLarge

log = structlog.get_logger("offerd.http")

REQUEST_SECONDS = Histogram(
    "offerd_http_request_duration_seconds",
    "HTTP request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# --- the queue, deliveries and fulfillments ---------------------------------------------------
# (the queue's gauges are read from the jobs table when /metrics is scraped: see queue_gauges)

JOB_RUNS = Counter(
    "offerd_job_runs",
    "Job runs by kind and outcome: succeeded, retried, deferred, failed (kept as failed), "
    "lease_lost, released (the database went away mid-job)",
    ["kind", "outcome"],
)
SWEEP_FAILURES = Counter(
    "offerd_sweep_failures",
    "Periodic sweeps that raised (logged with their traceback; the worker goes on)",
    ["task"],
)
DELIVERIES = Counter(
    "offerd_deliveries",
    "Delivery attempts by channel type and outcome: succeeded, retry (another attempt is "
    "scheduled), failed (final)",
    ["channel_type", "outcome"],
)
FULFILLMENTS = Counter(
    "offerd_fulfillments",
    "Fulfillments by processing type and the status they reached: in_progress when accepted, "
    "then completed or failed",
    ["processing_type", "status"],
)
BILLING_PROVIDER_UNHEALTHY = Counter(
    "offerd_billing_provider_unhealthy",
    "Billing providers marked unhealthy: the provider refused the site's credentials (401)",
    ["site"],
)
RULE_BUDGET_EXCEEDED = Counter(
    "offerd_rule_budget_exceeded",
    "Eligibility rules not run (and their offers not eligible) because their estimated cost was"
    " over what was left of the request's evaluation budget",
)

_SECRET_PATHS = ("/hosted_pages/", "/fulfillment_actions/")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # below the level: dropped before any work
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO: Slack webhook URLs are secrets
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def metrics_payload() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


async def queue_gauges(db: Database) -> bytes:
    """``offerd_jobs_queued``, ``offerd_jobs_oldest_age_seconds`` and ``offerd_jobs_failed`` by
    kind, read from the jobs table at scrape time (``queue.jobs.stats``): the table is the truth,
    shared by every process, so a scrape of any process shows the whole queue. Without the
    database the scrape still answers, without these."""
    from offerd.queue import jobs

    try:
        async with asyncio.timeout(2.0), db.connection() as conn:
            rows = await jobs.stats(conn)
    except Exception as exc:
        log.warning("metrics.queue_unavailable", error=str(exc)[:200])
        return b""
    return _queue_families(rows)


def _queue_families(rows: Sequence[Mapping[str, Any]]) -> bytes:
    registry = CollectorRegistry()
    families = [
        GaugeMetricFamily(
            "offerd_jobs_queued", "Jobs waiting, scheduled or running, by kind", labels=["kind"]
        ),
        GaugeMetricFamily(
            "offerd_jobs_oldest_age_seconds",
            "How long the job longest past its run_at has waited for a worker, by kind",
            labels=["kind"],
        ),
        GaugeMetricFamily(
            "offerd_jobs_failed", "Failed jobs kept for an admin to retry, by kind", labels=["kind"]
        ),
    ]
    for row in rows:
        families[0].add_metric([row["kind"]], row["queued"])
        families[1].add_metric([row["kind"]], row["oldest_age_seconds"])
        families[2].add_metric([row["kind"]], row["failed"])

    class _Rows:
        def collect(self) -> list[GaugeMetricFamily]:
            return families

    registry.register(_Rows())
    return generate_latest(registry)


_ROOT = logging.getLogger()
CLIENT_CLOSED_REQUEST = 499  # what the metrics count a request its client gave up on as (nginx's)
_TIMERS: dict[tuple[str, str, int], Any] = {}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _timer(template: str, method: str, status: int) -> Any:
    """The histogram child of one route, method and status (``labels`` takes a lock and builds
    the key each time; routes, methods and statuses are few, so the children are kept). Any
    other method a client invents counts as ``other``: labels must stay a bounded set."""
    key = (template, method if method in _METHODS else "other", status)
    child = _TIMERS.get(key)
    if child is None:
        child = _TIMERS[key] = REQUEST_SECONDS.labels(key[0], key[1], str(status))
    return child


class Edge:
    """Pure ASGI middleware (no per-request task or body buffering)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._error(PayloadTooLarge(self._too_large_message()), send_wrapper)
            elif "\x00" in scope["path"]:
                await self._error(InvalidRequest("The path contains a NUL character"), send_wrapper)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        except ClientDisconnect:
            # the client left before its request was read: nothing was done, nobody to answer
            status = CLIENT_CLOSED_REQUEST
            log.info("request.client_disconnected")
        except Exception as exc:
            with contextlib.suppress(Exception):  # logging must never keep the 500 from going out
                log.error(
                    "request.failed_after_response_started"
                    if response_started
                    else "request.unhandled",
                    exc_info=exc,
                )
            if not response_started:
                await self._error(
                    InternalError("An unexpected error occurred; nothing was changed"),
                    send_wrapper,
                )
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            _timer(template, scope["method"], status).observe(elapsed)
            if _ROOT.isEnabledFor(logging.INFO):  # a request line is most of a request's logging
                state = scope.get("state") or {}
                log.info(
                    "request",
                    method=scope["method"],
                    # a hosted page's or an email link's path is its credential: log the template
                    path=template if template.startswith(_SECRET_PATHS) else scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    site=state.get("site_id"),
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def _too_large_message(self) -> str:
        return f"The request body is larger than the limit of {self.max_body_bytes} bytes"

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(self._too_large_message())
            return message

        return wrapped

    @staticmethod
    async def _error(error: APIError, send: Send) -> None:
        from offerd.edge.wire import JSONResponse

        response = JSONResponse(error.body(), status_code=error.status)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# --- the database pool gauge --------------------------------------------------------------------

DB_POOL_CONNECTIONS = Gauge(
    "offerd_db_pool_connections",
    "The API process's database pool: connections idle and in use, requests waiting for one, "
    "and the pool's maximum (summed over live server processes)",
    ["state"],
    multiprocess_mode="livesum",
)
_POOL_STATES = {
    state: DB_POOL_CONNECTIONS.labels(state) for state in ("idle", "in_use", "waiting", "max")
}
POOL_SAMPLE_SECONDS = 5.0


def observe_pool(pool: Any) -> None:
    """Set the gauge from ``psycopg_pool``'s own counters (cheap: no I/O). Called at scrape time
    in the process that serves the scrape, and every few seconds in every server process (with
    several processes, a scrape reaches one of them but the gauge sums them all)."""
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    idle = stats.get("pool_available", 0)
    _POOL_STATES["idle"].set(idle)
    _POOL_STATES["in_use"].set(max(0, size - idle))
    _POOL_STATES["waiting"].set(stats.get("requests_waiting", 0))
    _POOL_STATES["max"].set(stats.get("pool_max", 0))


async def sample_pool(pool: Any) -> None:
    """The lifespan's background refresh of the pool gauge (see ``observe_pool``)."""
    import asyncio

    while True:
        with contextlib.suppress(Exception):
            observe_pool(pool)
        await asyncio.sleep(POOL_SAMPLE_SECONDS)
