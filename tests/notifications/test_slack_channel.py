"""Slack channels against a real HTTP receiver standing in for Slack's incoming webhooks: the Block
Kit message, a 429 honouring Retry-After, and a 404 or 410 (the webhook or its Slack channel is
gone) disabling the channel."""

from __future__ import annotations

from typing import Any

import pytest

from tests.notifications.flows import (
    SITE,
    accept,
    advance_to,
    attempts_of,
    delivery,
    gap_to_next_attempt,
    get_channel,
    notifications,
    put_channel,
    report,
    send_job,
    send_jobs,
    update,
    within_jitter,
    work,
)
from tests.support.app import TestApp
from tests.support.catalog import offer, seed
from tests.support.receiver import Receiver, Reply


async def slack(
    app: TestApp, receiver: Receiver, event_types: list[str], **site_settings: Any
) -> dict[str, str]:
    keys = await seed(app, **site_settings)
    await put_channel(
        app,
        "ops",
        {
            "type": "slack",
            "webhook_url": receiver.url_for("/services/T1/B2/tok"),
            "event_types": event_types,
        },
    )
    return keys


def fields(message: dict[str, Any]) -> dict[str, str]:
    """The section's fields as {label: value} ("*Offer*\\nBefore you go" -> Offer: ...)."""
    (section,) = [b for b in message["blocks"] if b["type"] == "section"]
    out = {}
    for f in section["fields"]:
        assert f["type"] == "mrkdwn"
        label, value = f["text"].split("\n", 1)
        out[label.strip("*")] = value
    return out


@pytest.mark.parametrize(
    ("outcome", "title", "status"),
    [
        ("completed", "Offer fulfilled", "completed"),
        ("failed", "Offer fulfillment failed", "failed"),
    ],
)
async def test_the_block_kit_message(
    app: TestApp, receiver: Receiver, outcome: str, title: str, status: str
) -> None:
    keys = await slack(app, receiver, ["offer_fulfillment_completed", "offer_fulfillment_failed"])
    f = await accept(app, keys)
    await update(app, keys, f["id"], outcome)
    assert await work(app) == 1

    request = receiver.only("POST", "/services/T1/B2/tok")
    assert request.headers["content-type"] == "application/json"
    message = request.json()
    assert "cus_1" in message["text"] and "Before you go" in message["text"]
    header = message["blocks"][0]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": title}}
    shown = fields(message)
    assert shown["Offer"] == "Before you go"
    assert shown["Option"] == "Talk to us"
    assert "cus_1" in shown["Customer"]
    assert shown["Status"].startswith(status)
    if outcome == "failed":
        assert "the customer changed their mind" in shown["Status"]

    # where to see the delivery: its id and a link to it in the admin API
    (d,) = await notifications(app)
    (context,) = [b for b in message["blocks"] if b["type"] == "context"]
    text = " ".join(e["text"] for e in context["elements"])
    assert d["id"] in text
    assert f"/console/sites/{SITE}/deliveries/{d['id']}" in text
    assert f["id"] in text
    assert (d["status"], d["attempts"]) == ("succeeded", 1)


async def test_viewed_has_no_fulfillment(app: TestApp, receiver: Receiver) -> None:
    keys = await slack(app, receiver, ["offer_viewed"])
    await report(app, keys, "viewed")
    await work(app)
    message = receiver.only().json()
    assert message["blocks"][0]["text"]["text"] == "Offer viewed"
    assert fields(message)["Offer"] == "Before you go"


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        # Slack's mrkdwn needs &, < and > escaped, or they are read as markup
        ("Fish & Chips <3", "Fish &amp; Chips &lt;3"),
        ("&lt;https://evil.example|Claim your refund&gt;", None),
    ],
)
async def test_offer_text_cannot_make_slack_markup(
    app: TestApp, receiver: Receiver, title: str, shown: str | None
) -> None:
    keys = await slack(app, receiver, ["offer_viewed"])
    await app.put(SITE, "offers/stay", offer(content={"title": title, "description": ""}))
    await report(app, keys, "viewed")
    await work(app)
    message = receiver.only().json()
    value = fields(message)["Offer"]
    if shown is not None:
        assert value == shown
    # no link (or other control sequence) made out of the offer's text, in the blocks or in the
    # notification's fallback text
    for text in (value, message["text"]):
        assert "<https://" not in text and "<http://" not in text
    for char in "<>":
        assert char not in value


async def test_429_waits_for_retry_after(app: TestApp, receiver: Receiver) -> None:
    keys = await slack(app, receiver, ["offer_viewed"])
    receiver.respond_with(Reply(429, {"retry-after": "30"}, "rate_limited"))
    await report(app, keys, "viewed")
    assert await work(app) == 1
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"]) == ("pending", 429)
    gap = await gap_to_next_attempt(app, d["id"])
    assert 30 <= gap <= 35, gap  # Retry-After, not the 2-minute schedule

    app.clock.advance(25)
    assert await work(app) == 0
    app.clock.advance(11)
    assert await work(app) == 1
    d = await delivery(app, d["id"])
    assert (d["status"], d["attempts"]) == ("succeeded", 2)
    assert len(receiver.requests) == 2
    assert (await get_channel(app, "ops"))["enabled"] is True


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_disables_the_channel(app: TestApp, receiver: Receiver, status: int) -> None:
    keys = await slack(app, receiver, ["offer_viewed"])
    receiver.always(Reply(status, body="no_service"))
    # two events waiting; the first answer tells the webhook is gone
    await report(app, keys, "viewed")
    await report(app, keys, "viewed")
    await work(app)
    channel = await get_channel(app, "ops")
    assert channel["enabled"] is False
    assert str(status) in channel["disabled_reason"]

    deliveries = await notifications(app)
    assert [d["status"] for d in deliveries] == ["failed", "failed"]
    assert await send_jobs(app) == []
    assert 1 <= len(receiver.requests) <= 2
    for d in deliveries:
        for a in await attempts_of(app, d["id"]):
            assert a["status_code"] in (status, None)

    # nothing more for it until it is PUT again
    await report(app, keys, "viewed")
    app.clock.advance(3600)
    assert await work(app) == 0
    assert len(await notifications(app)) == 2


@pytest.mark.parametrize(("status", "retried"), [(500, True), (503, True), (400, False)])
async def test_other_failures(app: TestApp, receiver: Receiver, status: int, retried: bool) -> None:
    keys = await slack(app, receiver, ["offer_viewed"])
    receiver.respond_with(status)
    await report(app, keys, "viewed")
    await work(app)
    (d,) = await notifications(app)
    assert (await get_channel(app, "ops"))["enabled"] is True
    if retried:
        assert d["status"] == "pending"
        assert within_jitter(await gap_to_next_attempt(app, d["id"]), 120)
        advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
        await work(app)
        assert (await delivery(app, d["id"]))["status"] == "succeeded"
    else:  # Slack's invalid_payload: sending it again won't help
        assert d["status"] == "failed"
        assert await send_job(app, d["id"]) is None
