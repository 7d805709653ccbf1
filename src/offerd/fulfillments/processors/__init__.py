"""What happens to an accepted option, per processing type.

Each processor module may have ``ACCEPT_JOB`` (the job the accept enqueues, in its own write
statement), ``on_accept`` (more work in the accept transaction: a hosted page, or completing at
once; ``follows_up(site)`` says whether it has any for this site), ``on_existing`` (what a repeated accept of the same option returns besides the
fulfillment) and ``TASKS`` (the job handlers that carry it forward).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from psycopg.rows import DictRow

from offerd.db import Conn, transaction
from offerd.fulfillments import store
from offerd.fulfillments.transitions import stored_suppression
from offerd.notifications import dispatch
from offerd.queue import jobs
from offerd.sites.models import Site


@dataclass(frozen=True, slots=True)
class Accepting:
    conn: Conn
    site: Site
    fulfillment: DictRow
    option: Mapping[str, Any]
    personalized_offer: Mapping[str, Any]
    now: datetime
    base_url: str


@dataclass(slots=True)
class Outcome:
    fulfillment: DictRow
    extra: dict[str, Any] = field(default_factory=dict)


OnAccept = Callable[[Accepting], Awaitable[Outcome]]
OnExisting = Callable[[Conn, DictRow, str], Awaitable[dict[str, Any]]]


_MODULES: dict[str, ModuleType] = {}


def _modules() -> dict[str, ModuleType]:
    if _MODULES:
        return _MODULES
    from offerd.fulfillments.processors import (
        billing_update,
        checkout,
        email,
        url_redirect,
        webhook,
    )

    _MODULES.update(
        billing_update=billing_update,
        checkout=checkout,
        url_redirect=url_redirect,
        webhook=webhook,
        email=email,
    )
    return _MODULES


def follows_up(processing_type: str, site: Site) -> bool:
    """Whether the accept does more than its one write (then it takes a transaction)."""
    check: Callable[[Site], bool] | None = getattr(_modules()[processing_type], "follows_up", None)
    return check(site) if check else hasattr(_modules()[processing_type], "on_accept")


def accept_job(processing_type: str) -> str | None:
    job: str | None = getattr(_modules()[processing_type], "ACCEPT_JOB", None)
    return job


async def on_accept(accepting: Accepting) -> Outcome:
    handler: OnAccept | None = getattr(
        _modules()[accepting.fulfillment["processing_type"]], "on_accept", None
    )
    return await handler(accepting) if handler else Outcome(accepting.fulfillment)


async def on_existing(conn: Conn, row: DictRow, base_url: str) -> dict[str, Any]:
    handler: OnExisting | None = getattr(_modules()[row["processing_type"]], "on_existing", None)
    return await handler(conn, row, base_url) if handler else {}


def tasks() -> list[jobs.Task]:
    return [task for module in _modules().values() for task in getattr(module, "TASKS", [])]


EVENT_TYPE = "offer_fulfillment_requested"


@dataclass(frozen=True, slots=True)
class MerchantRequest:
    """How a ``webhook`` or ``email`` option asks the merchant to fulfil."""

    event_id: str
    destination: str
    payload: dict[str, Any]


BuildRequest = Callable[[Conn, DictRow, dict[str, Any], datetime, bool], Awaitable[MerchantRequest]]


def _skip_reason(row: Mapping[str, Any], channel: str) -> str | None:
    """The accept's suppression headers (the notifications' rule), then: only once, while the
    fulfillment is still in progress."""
    suppressed = stored_suppression(row).skip_reason(channel)
    if suppressed is not None:
        return suppressed
    if row["status"] != "in_progress":
        return f"the fulfillment is already {row['status']}"
    return None


async def ask_merchant(ctx: jobs.JobContext, channel: str, build: BuildRequest) -> None:
    """The job of a webhook or email option: record its one processing delivery (or why it was
    skipped) and queue its sending, once, whatever happens to the job."""
    svc = ctx.resources
    async with svc.db.connection() as conn, transaction(conn):
        row = await store.lock_with_option(conn, ctx.job.payload["fulfillment_id"])
        if row is None or await dispatch.processing_recorded(conn, row["id"]):
            await ctx.finish(conn)
            return
        now = ctx.now()
        skip = _skip_reason(row, channel)
        request = await build(conn, row, row["option"], now, skip is None)
        await dispatch.create(
            conn,
            site_id=row["site_id"],
            purpose="processing",
            event_id=request.event_id,
            event_type=EVENT_TYPE,
            payload=request.payload,
            targets=[dispatch.Target(channel, request.destination, skip_reason=skip)],
            now=now,
            fulfillment_id=row["id"],
        )
        await ctx.finish(conn)
