"""checkout: a hosted page where the subscriber confirms the change (see ``offerd.checkout``).
The job runs when the page expires and abandons the checkout if nobody answered."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow

from offerd.checkout import service as checkout
from offerd.db import Conn
from offerd.fulfillments.processors import Accepting, Outcome, Processor
from offerd.queue import jobs
from offerd.sites.models import Site

KIND = "fulfillment.checkout"


async def _on_accept(a: Accepting) -> Outcome:
    page = await checkout.create(a.conn, fulfillment=a.fulfillment, option=a.option, now=a.now)
    await jobs.enqueue(
        a.conn, KIND, {"fulfillment_id": a.fulfillment["id"]}, now=a.now, run_at=page["expires_at"]
    )
    return Outcome(a.fulfillment, {"hosted_page": checkout.resource(page, a.base_url)})


async def _on_existing(conn: Conn, row: DictRow, base_url: str) -> dict[str, Any]:
    page = await checkout.page_of(conn, row["id"])
    return {"hosted_page": checkout.resource(page, base_url)} if page else {}


async def handle(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    now = ctx.now()
    async with svc.db.connection() as conn:
        outcome = await checkout.abandon_if_open(conn, ctx.job.payload["fulfillment_id"], now)
    if outcome == "not_yet":  # this worker's clock is behind the one that scheduled the job
        raise jobs.Retry("the page has not expired yet", delay=5.0)


TASKS = [jobs.Task(KIND, handle)]


class Checkout(Processor):
    """The hosted page is made in the accept's transaction; its expiry job with it."""

    tasks = TASKS

    def follows_up(self, site: Site) -> bool:  # noqa: ARG002 (every site)
        return True

    async def on_accept(self, accepting: Accepting) -> Outcome:
        return await _on_accept(accepting)

    async def on_existing(self, conn: Conn, row: DictRow, base_url: str) -> dict[str, Any]:
        return await _on_existing(conn, row, base_url)


PROCESSOR = Checkout()
