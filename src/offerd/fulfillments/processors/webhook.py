"""webhook: offerd asks the merchant to fulfil with a signed ``offer_fulfillment_requested``
event POSTed to the option's ``webhook_url``; the merchant reports back with an update.
``chargebee-event-webhook`` or ``chargebee-event-actions: all-disabled`` on the accept suppress
the request (recorded as a skipped delivery)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.common.ids import new_id
from offerd.common.secrets import SecretBox, box_for
from offerd.db import Conn
from offerd.fulfillments import requests
from offerd.fulfillments.processors import (
    EVENT_TYPE,
    BuildRequest,
    MerchantRequest,
    Processor,
    ask_merchant,
)
from offerd.notifications import payloads
from offerd.queue import jobs
from offerd.sites import service as sites

ACCEPT_JOB = KIND = "fulfillment.webhook"


def _request(box: SecretBox) -> BuildRequest:
    return lambda conn, row, option, now, sending: request(conn, row, option, now, sending, box)


async def request(
    conn: Conn,
    row: DictRow,
    option: dict[str, Any],
    now: datetime,
    sending: bool,
    box: SecretBox,
) -> MerchantRequest:
    event_id = new_id("ev")
    if sending:  # the delivery is signed with the site's secret: make it on first use
        await sites.ensure_webhook_secret(conn, row["site_id"], box)
    payload = payloads.chargebee_event(
        event_id=event_id,
        event_type=EVENT_TYPE,
        occurred_at=now,
        content=await requests.content(conn, row),
        source="api",
    )
    return MerchantRequest(event_id, option["webhook_url"], payload)


async def handle(ctx: jobs.JobContext) -> None:
    await ask_merchant(ctx, "webhook", _request(box_for(ctx.resources.settings)))


TASKS = [jobs.Task(KIND, handle)]


class Webhook(Processor):
    """The job asks the merchant to fulfil; the merchant reports back."""

    accept_job = KIND
    tasks = TASKS


PROCESSOR = Webhook()
