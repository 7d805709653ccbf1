"""What happens to an accepted option, per processing type.

Each processing type is a ``Processor`` (one per module beside this one), registered by its
processing type in ``registry()``: the job the accept enqueues in its own write statement
(``accept_job``), whether the accept does more in its transaction for a site (``follows_up``)
and what (``on_accept``: a hosted page, or completing at once), what a repeated accept of the
same option returns besides the fulfillment (``on_existing``), and the job handlers that carry it
forward (``tasks``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


class Processor:
    """The contract of a processing type; the defaults are a type that only enqueues its job."""

    accept_job: str | None = None
    tasks: Sequence[jobs.Task] = ()

    def follows_up(self, site: Site) -> bool:  # noqa: ARG002 (a default)
        """Whether the accept does more than its one write (then it takes a transaction)."""
        return False

    async def on_accept(self, accepting: Accepting) -> Outcome:
        return Outcome(accepting.fulfillment)

    async def on_existing(self, conn: Conn, row: DictRow, base_url: str) -> dict[str, Any]:  # noqa: ARG002
        return {}


_REGISTRY: dict[str, Processor] = {}


def registry() -> dict[str, Processor]:
    """The processors by processing type (imported on first use: they import this module)."""
    if not _REGISTRY:
        from offerd.fulfillments.processors import (
            billing_update,
            checkout,
            email,
            url_redirect,
            webhook,
        )

        _REGISTRY.update(
            billing_update=billing_update.PROCESSOR,
            checkout=checkout.PROCESSOR,
            url_redirect=url_redirect.PROCESSOR,
            webhook=webhook.PROCESSOR,
            email=email.PROCESSOR,
        )
    return _REGISTRY


def of(processing_type: str) -> Processor:
    return registry()[processing_type]


def tasks() -> list[jobs.Task]:
    return [task for processor in registry().values() for task in processor.tasks]


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
