"""What happens to an accepted option, per processing type.

Each processor module has ``on_accept`` (runs in the accept transaction: enqueue a job, create a
hosted page, or complete at once), ``on_existing`` (what a repeated accept of the same option
returns besides the fulfillment) and ``TASKS`` (the job handlers that carry it forward).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from psycopg.rows import DictRow

from offerd import jobs
from offerd.db import Conn
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


def _modules() -> dict[str, ModuleType]:
    from offerd.fulfillments.processors import (
        billing_update,
        checkout,
        email,
        url_redirect,
        webhook,
    )

    return {
        "billing_update": billing_update,
        "checkout": checkout,
        "url_redirect": url_redirect,
        "webhook": webhook,
        "email": email,
    }


async def on_accept(accepting: Accepting) -> Outcome:
    handler: OnAccept = _modules()[accepting.fulfillment["processing_type"]].on_accept
    return await handler(accepting)


async def on_existing(conn: Conn, row: DictRow, base_url: str) -> dict[str, Any]:
    handler: OnExisting | None = getattr(_modules()[row["processing_type"]], "on_existing", None)
    return await handler(conn, row, base_url) if handler else {}


def tasks() -> list[jobs.Task]:
    return [task for module in _modules().values() for task in getattr(module, "TASKS", [])]


async def enqueue_for(accepting: Accepting, kind: str) -> Outcome:
    """The common on_accept: the job that carries this fulfillment forward."""
    await jobs.enqueue(
        accepting.conn, kind, {"fulfillment_id": accepting.fulfillment["id"]}, now=accepting.now
    )
    return Outcome(accepting.fulfillment)
