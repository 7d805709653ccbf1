"""Email channels through SMTP to a real aiosmtpd server on 127.0.0.1: the plain-text and HTML
parts rendered from the Jinja2 templates, the recipients, and a Message-ID stable per delivery
(the same across a retried send, so a mail client recognises the duplicate)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.notifications.flows import (
    SITE,
    accept,
    advance_to,
    attempts_of,
    delivery,
    mail,  # noqa: F401
    notifications,
    put_channel,
    report,
    send_job,
    update,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import offer, seed
from tests.support.smtp import MailSink

TO = ["ops@acme.example", "success@acme.example"]
SENDER = "offers@acme.example"


@pytest.fixture
async def app(db_url: str, mail: MailSink) -> AsyncIterator[TestApp]:  # noqa: F811
    """The app, sending mail to the test's SMTP sink."""
    async with running_app(db_url, **mail.settings(SENDER)) as test_app:
        yield test_app


async def emailing(app: TestApp, event_types: list[str]) -> dict[str, str]:
    keys = await seed(app)
    await put_channel(app, "team", {"type": "email", "to": TO, "event_types": event_types})
    return keys


def message_id(d: dict[str, object]) -> str:
    return f"<{d['id']}@acme.example>"


@pytest.mark.parametrize(
    ("outcome", "title", "status"),
    [
        ("completed", "Offer fulfilled", "completed"),
        ("failed", "Offer fulfillment failed", "failed"),
    ],
)
async def test_text_and_html(
    app: TestApp,
    mail: MailSink,  # noqa: F811
    outcome: str,
    title: str,
    status: str,
) -> None:
    keys = await emailing(app, ["offer_fulfillment_completed", "offer_fulfillment_failed"])
    f = await accept(app, keys)
    await update(app, keys, f["id"], outcome)
    assert await work(app) == 1

    (sent,) = mail.messages
    (d,) = await notifications(app)
    assert sorted(sent.rcpt_tos) == sorted(TO)
    assert sent["From"] == SENDER
    assert sent["Subject"] == f"{title}: Before you go"
    assert sent["Message-ID"] == message_id(d)
    assert re.fullmatch(r"<dl_[0-9A-Za-z]+@acme\.example>", sent["Message-ID"])
    link = f"/console/sites/{SITE}/deliveries/{d['id']}"
    for part in (sent.text, sent.html):
        assert part, "both a text/plain and a text/html part"
        for fact in ("Before you go", "cus_1", "sub_1", "Talk to us", f["id"], status):
            assert fact in part, (fact, part)
    if outcome == "failed":
        assert "the customer changed their mind" in sent.text
    assert any(url.endswith(link) for url in sent.text_urls), sent.text
    assert sent.link("See this delivery in the offerd console").endswith(link)
    assert "<" not in sent.text  # the text part is not HTML
    assert (d["status"], d["attempts"]) == ("succeeded", 1)


async def test_html_is_escaped(app: TestApp, mail: MailSink) -> None:  # noqa: F811
    keys = await emailing(app, ["offer_viewed"])
    await app.put(
        SITE, "offers/stay", offer(content={"title": "Fish & Chips <3", "description": ""})
    )
    await report(app, keys, "viewed")
    await work(app)
    (sent,) = mail.messages
    assert "Fish & Chips <3" in sent.text
    assert "Fish &amp; Chips &lt;3" in sent.html
    assert "Chips <3" not in sent.html


async def test_the_message_id_is_the_same_when_sent_again(
    app: TestApp,
    mail: MailSink,  # noqa: F811
) -> None:
    keys = await emailing(app, ["offer_accepted"])
    mail.respond_with("451 4.3.0 try again later")
    await accept(app, keys)
    assert await work(app) == 1
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"]) == ("pending", 451)
    ((reply, refused),) = mail.refused
    assert reply.startswith("451")

    # the automatic retry
    advance_to(app, (await send_job(app, d["id"]) or {})["run_at"])
    assert await work(app) == 1
    (retried,) = mail.messages
    assert retried["Message-ID"] == refused["Message-ID"] == message_id(d)
    assert retried.text == refused.text

    # and an admin's replay
    r = await app.admin("POST", f"/sites/{SITE}/deliveries/{d['id']}/retry")
    assert r.status_code == 200, r.text
    assert await work(app) == 1
    assert [m["Message-ID"] for m in mail.messages] == [message_id(d)] * 2
    d = await delivery(app, d["id"])
    assert (d["status"], d["attempts"]) == ("succeeded", 3)
    assert [a["status_code"] for a in await attempts_of(app, d["id"])] == [451, None, None]


async def test_a_permanent_refusal_is_not_retried(
    app: TestApp,
    mail: MailSink,  # noqa: F811
) -> None:
    keys = await emailing(app, ["offer_viewed"])
    mail.respond_with("550 5.1.1 mailbox unavailable")
    await report(app, keys, "viewed")
    await work(app)
    (d,) = await notifications(app)
    assert (d["status"], d["last_status_code"]) == ("failed", 550)
    assert "mailbox unavailable" in d["last_error"]
    assert await send_job(app, d["id"]) is None
    assert mail.messages == []


async def test_without_smtp_settings_it_fails_with_a_reason(db_url: str) -> None:
    async with running_app(db_url) as plain:
        keys = await emailing(plain, ["offer_viewed"])
        await report(plain, keys, "viewed")
        await work(plain)
        (d,) = await notifications(plain)
        assert d["status"] == "failed"
        assert "OFFERD_SMTP_HOST" in d["last_error"]
