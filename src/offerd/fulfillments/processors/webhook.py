"""webhook: offerd asks the merchant to fulfil with a signed ``offer_fulfillment_requested``
event POSTed to the option's ``webhook_url``; the merchant reports back with an update.
``chargebee-event-webhook`` or ``chargebee-event-actions: all-disabled`` on the accept suppress
the request (recorded as a skipped delivery)."""

from __future__ import annotations

from offerd import jobs
from offerd.db import transaction
from offerd.fulfillments import store
from offerd.fulfillments.processors import Accepting, Outcome, enqueue_for
from offerd.fulfillments.processors.billing_update import option_of
from offerd.ids import new_id
from offerd.notifications import dispatch, payloads
from offerd.notifications import store as deliveries
from offerd.sites import store as sites

KIND = "fulfillment.webhook"
EVENT_TYPE = "offer_fulfillment_requested"


async def on_accept(a: Accepting) -> Outcome:
    return await enqueue_for(a, KIND)


async def handle(ctx: jobs.JobContext) -> None:
    svc = ctx.resources
    async with svc.db.connection() as conn, transaction(conn):
        row = await store.lock(conn, ctx.job.payload["fulfillment_id"])
        if row is None or await deliveries.processing_for(conn, row["id"]) is not None:
            await ctx.finish(conn)
            return
        now = ctx.now()
        option = await option_of(conn, row)
        event_id = new_id("ev")
        payload = payloads.chargebee_event(
            event_id=event_id,
            event_type=EVENT_TYPE,
            occurred_at=now,
            content=await payloads.fulfillment_content(conn, row),
            source="api",
        )
        skip = None
        if row["suppress_actions"] or row["suppress_webhook"]:
            skip = "chargebee-event-" + ("actions" if row["suppress_actions"] else "webhook")
        elif row["status"] != "in_progress":
            skip = f"the fulfillment is already {row['status']}"
        else:
            await sites.ensure_webhook_secret(conn, row["site_id"])
        await dispatch.create(
            conn,
            site_id=row["site_id"],
            purpose="processing",
            channel="webhook",
            event_id=event_id,
            event_type=EVENT_TYPE,
            destination=option["webhook_url"],
            payload=payload,
            now=now,
            fulfillment_id=row["id"],
            skip_reason=skip,
        )
        await ctx.finish(conn)


TASKS = [jobs.Task(KIND, handle)]
