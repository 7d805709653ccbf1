"""email: offerd emails the option's ``email_to`` with the offer, customer and subscription and
two one-time links, "Mark fulfilled" and "Mark failed", which perform the update.
``chargebee-event-email`` or ``chargebee-event-actions: all-disabled`` on the accept suppress it."""

from __future__ import annotations

from offerd import jobs
from offerd.db import transaction
from offerd.fulfillments import links, store
from offerd.fulfillments.processors import Accepting, Outcome, enqueue_for
from offerd.fulfillments.processors.billing_update import option_of
from offerd.ids import new_id
from offerd.notifications import dispatch, payloads
from offerd.notifications import store as deliveries
from offerd.templating import render

KIND = "fulfillment.email"
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
        skip = None
        if row["suppress_actions"] or row["suppress_email"]:
            skip = "chargebee-event-" + ("actions" if row["suppress_actions"] else "email")
        elif row["status"] != "in_progress":
            skip = f"the fulfillment is already {row['status']}"
        urls = {"complete": "", "fail": ""}
        if skip is None:
            urls = await links.issue(conn, row, base_url=svc.settings.base_url, now=now)
        content = await payloads.fulfillment_content(conn, row)
        context = {**content, "links": urls, "option": option}
        title = content["personalized_offer"]["content"]["title"]
        payload = {
            "to": option["email_to"],
            "subject": f"Offer accepted — please fulfil: {title}"[:200],
            "text": render("offerd.fulfillments", "request_email.txt", **context),
            "html": render("offerd.fulfillments", "request_email.html", **context),
        }
        await dispatch.create(
            conn,
            site_id=row["site_id"],
            purpose="processing",
            channel="email",
            event_id=new_id("ev"),
            event_type=EVENT_TYPE,
            destination=", ".join(option["email_to"]),
            payload=payload,
            now=now,
            fulfillment_id=row["id"],
            skip_reason=skip,
        )
        await ctx.finish(conn)


TASKS = [jobs.Task(KIND, handle)]
