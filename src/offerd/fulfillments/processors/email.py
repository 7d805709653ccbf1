"""email: offerd emails the option's ``email_to`` with the offer, customer and subscription and
two one-time links, "Mark fulfilled" and "Mark failed", which perform the update.
``chargebee-event-email`` or ``chargebee-event-actions: all-disabled`` on the accept suppress it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.common.templating import render
from offerd.db import Conn
from offerd.fulfillments import links, requests
from offerd.fulfillments.processors import (
    BuildRequest,
    MerchantRequest,
    Processor,
    ask_merchant,
)
from offerd.queue import jobs

ACCEPT_JOB = KIND = "fulfillment.email"


def _request_email(base_url: str) -> BuildRequest:
    async def request(
        conn: Conn, row: DictRow, option: dict[str, Any], now: datetime, sending: bool
    ) -> MerchantRequest:
        urls = {"complete": "", "fail": ""}
        if sending:
            urls = await links.issue(conn, row, base_url=base_url, now=now)
        content = await requests.content(conn, row)
        # The exact request a merchant may send instead of the links: the spec requires the id
        # in the body too, and a reader copying "POST .../{id}" would leave it out.
        api_url = f"{base_url}/api/v2/offer_fulfillments/{row['id']}"
        context = {**content, "links": urls, "option": option, "api_url": api_url}
        title = content["personalized_offer"]["content"]["title"]
        payload = {
            "to": option["email_to"],
            "subject": f"Offer accepted — please fulfil: {title}"[:200],
            "text": render("offerd.fulfillments", "request_email.txt", **context),
            "html": render("offerd.fulfillments", "request_email.html", **context),
        }
        return MerchantRequest(new_id("ev"), ", ".join(option["email_to"]), payload)

    return request


async def handle(ctx: jobs.JobContext) -> None:
    await ask_merchant(ctx, "email", _request_email(ctx.resources.settings.base_url))


TASKS = [jobs.Task(KIND, handle)]


class Email(Processor):
    """The job asks the merchant to fulfil; the merchant reports back."""

    accept_job = KIND
    tasks = TASKS


PROCESSOR = Email()
