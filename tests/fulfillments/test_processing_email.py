"""processing_type=email: offerd mails the option's ``email_to`` (a real SMTP server, aiosmtpd, on
127.0.0.1) with the offer details and two one-time links that perform the merchant's update."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from offerd.queue import jobs
from tests.fulfillments.helpers import (
    PATH,
    accept_option,
    delivery_of,
    event_types,
    retrieve,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import offer, seed
from tests.support.smtp import MailSink, ReceivedMail

MERCHANT = "success@merchant.example"
SENDER = "offers@acme.example"


@pytest.fixture
def smtp() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


@pytest.fixture
async def mail_app(db_url: str, smtp: MailSink) -> AsyncIterator[TestApp]:
    async with running_app(
        db_url, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from=SENDER
    ) as app:
        yield app


async def accept(
    app: TestApp, keys: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    return await accept_option(app, keys, "call", headers=headers)


def paths(mail: ReceivedMail) -> tuple[str, str]:
    """The paths of the "Mark fulfilled" and "Mark failed" links (the app is driven in-process)."""
    complete, fail = mail.link("Mark fulfilled"), mail.link("Mark failed")
    return urlsplit(complete).path, urlsplit(fail).path


async def requested(
    app: TestApp, smtp: MailSink
) -> tuple[dict[str, str], dict[str, Any], str, str]:
    """Seed, accept ``call``, run the worker: (keys, fulfillment, complete path, fail path)."""
    keys = await seed(app)
    _, f = await accept(app, keys)
    await work(app)
    (mail,) = smtp.messages
    assert f["id"] in mail.text
    complete, fail = paths(mail)
    return keys, f, complete, fail


# --- the email -----------------------------------------------------------------------------------


async def test_accept_sends_one_email_with_details_and_two_links(
    mail_app: TestApp, smtp: MailSink
) -> None:
    app = mail_app
    keys = await seed(app)
    _, f = await accept(app, keys)
    assert smtp.messages == []
    await work(app)

    (mail,) = smtp.messages
    assert mail.rcpt_tos == [MERCHANT]
    assert mail["To"] == MERCHANT
    assert mail.mail_from == SENDER
    assert mail["From"] == SENDER
    assert "Before you go" in mail["Subject"]
    delivery = await delivery_of(app, f["id"])
    assert delivery["channel"] == "email"
    assert delivery["purpose"] == "processing"
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["destination"] == MERCHANT
    assert mail["Message-ID"] == f"<{delivery['id']}@acme.example>"
    (attempt,) = await app.fetch(
        "SELECT * FROM delivery_attempts WHERE delivery_id = %s", delivery["id"]
    )
    assert attempt["error"] is None

    assert mail.message.get_content_type() == "multipart/alternative"
    for part in (mail.text, mail.html):
        assert "Before you go" in part
        assert "A gift" not in part and "Call me" in part  # the option accepted
        assert "cus_1" in part
        assert "ada@example.com" in part
        assert "sub_1" in part
        assert f["id"] in part

    # two different links, the same in both parts, to this app's action pages
    complete, fail = mail.link("Mark fulfilled"), mail.link("Mark failed")
    assert complete != fail
    api_url = f"{urlsplit(complete).scheme}://{urlsplit(complete).netloc}{PATH}/{f['id']}"
    assert mail.text_urls == [complete, fail, api_url, api_url]
    for link in (complete, fail):
        url = urlsplit(link)
        assert url.path.startswith("/fulfillment_actions/")
        assert f"{url.scheme}://{url.netloc}" == app.services.settings.base_url
    # only hashes of the tokens are stored
    rows = await app.fetch("SELECT * FROM action_links WHERE fulfillment_id = %s", f["id"])
    assert sorted(r["action"] for r in rows) == ["complete", "fail"]
    for link in (complete, fail):
        token = urlsplit(link).path.rsplit("/", 1)[1]
        assert len(token) >= 32
        assert token not in repr(rows)

    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"


async def test_mark_fulfilled(mail_app: TestApp, smtp: MailSink) -> None:
    app = mail_app
    keys, f, complete, fail = await requested(app, smtp)

    # opening the link shows what it will do and changes nothing (mail scanners prefetch links)
    for _ in range(2):
        r = await app.client.get(complete)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "Mark fulfilled" in r.text
        assert "<form" in r.text
        assert "Before you go" in r.text and "cus_1" in r.text and "sub_1" in r.text
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
    assert await event_types(app, f["id"]) == ["accepted"]
    links = await app.fetch("SELECT used_at FROM action_links")
    assert [link["used_at"] for link in links] == [None, None]

    r = await app.client.post(complete)
    assert r.status_code == 303
    assert r.headers["location"] == complete
    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "completed"
    assert isinstance(done["completed_at"], int)
    assert "error" not in done
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]

    # where the redirect goes: it is done
    r = await app.client.get(complete)
    assert r.status_code == 200
    assert "Done" in r.text and "<form" not in r.text
    # the other link is spent too and says so
    r = await app.client.get(fail)
    assert r.status_code == 200
    assert "<form" not in r.text
    assert "Done" in r.text or "already" in r.text

    # submitting either link again changes nothing
    for link in (complete, fail):
        r = await app.client.post(link, data={"reason": "Out of stock"})
        assert r.status_code == 303
    assert await retrieve(app, keys, f["id"]) == done
    assert await event_types(app, f["id"]) == ["accepted", "fulfilled"]


async def test_spent_link_page_names_the_outcome(mail_app: TestApp, smtp: MailSink) -> None:
    """The page behind a spent link tells which way the fulfillment went."""
    app = mail_app
    _, _, complete, fail = await requested(app, smtp)
    r = await app.client.post(complete)
    assert r.status_code == 303
    r = await app.client.get(fail)
    assert r.status_code == 200
    assert "completed" in r.text, r.text


async def test_mark_failed_needs_a_reason(mail_app: TestApp, smtp: MailSink) -> None:
    app = mail_app
    keys, f, complete, fail = await requested(app, smtp)

    r = await app.client.get(fail)
    assert r.status_code == 200
    assert "Mark failed" in r.text
    assert 'name="reason"' in r.text

    for form in ({}, {"reason": ""}, {"reason": "   "}):
        r = await app.client.post(fail, data=form)
        assert r.status_code == 400, form
        assert "reason" in r.text
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
    assert await event_types(app, f["id"]) == ["accepted"]
    # still usable
    assert "<form" in (await app.client.get(fail)).text

    r = await app.client.post(fail, data={"reason": "Out of stock"})
    assert r.status_code == 303
    done = await retrieve(app, keys, f["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"code": "external_fulfillment_failed", "message": "Out of stock"}
    assert isinstance(done["failed_at"], int)
    assert await event_types(app, f["id"]) == ["accepted", "failed"]

    # the "Mark fulfilled" link can no longer complete it
    r = await app.client.get(complete)
    assert r.status_code == 200 and "<form" not in r.text
    r = await app.client.post(complete)
    assert r.status_code == 303
    assert await retrieve(app, keys, f["id"]) == done
    assert await event_types(app, f["id"]) == ["accepted", "failed"]


async def test_links_expire_with_the_fulfillment(mail_app: TestApp, smtp: MailSink) -> None:
    app = mail_app
    keys, f, complete, fail = await requested(app, smtp)

    app.clock.advance(timedelta(days=6))
    assert "<form" in (await app.client.get(complete)).text

    app.clock.advance(timedelta(days=1, minutes=1))
    for link in (complete, fail):
        r = await app.client.get(link)
        assert r.status_code == 410
        assert "expired" in r.text
        assert "<form" not in r.text
    r = await app.client.post(complete)
    assert r.status_code in (303, 410)
    r = await app.client.post(fail, data={"reason": "late"})
    assert r.status_code in (303, 410)
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
    assert await event_types(app, f["id"]) == ["accepted"]


@pytest.mark.parametrize("token", ["act_doesnotexist0123456789", "x" * 40])
async def test_unknown_link(mail_app: TestApp, token: str) -> None:
    r = await mail_app.client.get(f"/fulfillment_actions/{token}")
    assert r.status_code == 404
    r = await mail_app.client.post(f"/fulfillment_actions/{token}", data={"reason": "x"})
    assert r.status_code == 404


# --- delivery ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "suppressed"),
    [
        ("chargebee-event-email", True),
        ("chargebee-event-actions", True),
        # webhook suppression is about webhooks, not this email
        ("chargebee-event-webhook", False),
    ],
)
async def test_suppression_headers(
    mail_app: TestApp, smtp: MailSink, header: str, suppressed: bool
) -> None:
    app = mail_app
    keys = await seed(app)
    _, f = await accept(app, keys, headers={header: "all-disabled"})
    await work(app)
    delivery = await delivery_of(app, f["id"])
    if suppressed:
        assert smtp.messages == []
        assert delivery["status"] == "skipped"
        assert header in delivery["skip_reason"]
        assert await app.fetch("SELECT * FROM action_links") == []
    else:
        assert len(smtp.messages) == 1
        assert delivery["status"] == "succeeded"
    assert await app.fetch("SELECT * FROM jobs") == []
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"


async def test_without_smtp_the_delivery_fails_and_the_api_still_works(app: TestApp) -> None:
    assert app.services.settings.smtp_host is None
    keys = await seed(app)
    _, f = await accept(app, keys)
    await work(app)
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "failed"
    assert "OFFERD_SMTP_HOST" in delivery["last_error"]
    assert await app.fetch("SELECT * FROM jobs") == []  # no point retrying
    assert (await retrieve(app, keys, f["id"]))["status"] == "in_progress"
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["offer_fulfillment"]["status"] == "completed"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("451 4.3.0 Try again later", "pending"),
        ("554 5.7.1 Rejected", "failed"),
    ],
)
async def test_smtp_refusal(mail_app: TestApp, smtp: MailSink, reply: str, status: str) -> None:
    app = mail_app
    keys = await seed(app)
    _, f = await accept(app, keys)
    smtp.respond_with(reply)
    await work(app)
    assert smtp.messages == []
    ((_, refused),) = smtp.refused
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == status
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == int(reply[:3])

    app.clock.advance(timedelta(minutes=3))
    await work(app)
    if status == "pending":  # a temporary refusal is retried: the same message, the same links
        (mail,) = smtp.messages
        assert mail["Message-ID"] == refused["Message-ID"] == f"<{delivery['id']}@acme.example>"
        assert mail.text == refused.text
        assert (await delivery_of(app, f["id"]))["status"] == "succeeded"
        assert (await delivery_of(app, f["id"]))["attempts"] == 2
    else:
        assert smtp.messages == []
        assert len(smtp.refused) == 1
    assert await app.fetch("SELECT * FROM jobs") == []


async def test_running_the_fulfillment_job_twice_sends_once(
    mail_app: TestApp, smtp: MailSink
) -> None:
    app = mail_app
    keys = await seed(app)
    _, f = await accept(app, keys)
    await work(app)
    delivery = await delivery_of(app, f["id"])
    async with app.services.db.connection() as conn:
        now = app.clock.now()
        await jobs.enqueue(conn, "fulfillment.email", {"fulfillment_id": f["id"]}, now=now)
        await jobs.enqueue(conn, "delivery.send", {"delivery_id": delivery["id"]}, now=now)
    assert await work(app) == 2
    assert len(smtp.messages) == 1
    assert len(await app.fetch("SELECT * FROM action_links")) == 2


@pytest.mark.parametrize(
    "title",
    [
        "Before you go\nBcc: attacker@evil.example",
        "Before you go\r\nX-Injected: 1",
        "Before\tyou go",
    ],
)
async def test_offer_title_cannot_break_the_headers(
    mail_app: TestApp, smtp: MailSink, title: str
) -> None:
    app = mail_app
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(content={"title": title, "description": "d"}))
    _, f = await accept(app, keys)
    await work(app)
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "succeeded", delivery["last_error"]
    (mail,) = smtp.messages
    assert mail.rcpt_tos == [MERCHANT]
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
    assert "Before" in mail["Subject"]


async def test_html_part_escapes_merchant_and_customer_data(
    mail_app: TestApp, smtp: MailSink
) -> None:
    app = mail_app
    keys = await seed(app)
    await app.put(
        "acme",
        "offers/stay",
        offer(content={"title": "<b>Bold</b> & <script>x()</script>", "description": "d"}),
    )
    await app.put("acme", "customers/cus_1", {"email": "ada@example.com", "first_name": "<i>A"})
    await accept(app, keys)
    await work(app)
    (mail,) = smtp.messages
    assert "<script>" not in mail.html and "<b>Bold" not in mail.html and "<i>A" not in mail.html
    assert "&lt;script&gt;" in mail.html and "&lt;i&gt;A" in mail.html
    assert "<b>Bold</b> & <script>x()</script>" in mail.text


async def test_every_address_in_email_to_gets_the_mail(mail_app: TestApp, smtp: MailSink) -> None:
    app = mail_app
    keys = await seed(app)
    body = offer()
    assert body["options"][4]["id"] == "call"
    body["options"][4]["email_to"] = [MERCHANT, "ops@merchant.example"]
    await app.put("acme", "offers/stay", body)
    _, f = await accept(app, keys)
    await work(app)
    (mail,) = smtp.messages
    assert sorted(mail.rcpt_tos) == ["ops@merchant.example", MERCHANT]
    assert (await delivery_of(app, f["id"]))["status"] == "succeeded"


async def test_the_email_shows_the_api_request_with_the_id_in_the_body(
    mail_app: TestApp, smtp: MailSink
) -> None:
    """The spec requires ``id`` in the update's body as well as its path; the email's request
    must carry it, and sent as written it must complete the fulfillment."""
    keys, f, _, _ = await requested(mail_app, smtp)
    (mail,) = smtp.messages
    for part in (mail.text, mail.html):
        assert f"{PATH}/{f['id']} -d id={f['id']} -d status=completed" in part
        assert f"-d id={f['id']} -d status=failed -d 'failure_reason=" in part
    line = next(x for x in mail.text.splitlines() if "status=completed" in x)
    form = dict(arg.split("=", 1) for arg in line.split(" -d ")[1:])
    r = await mail_app.post(f"{PATH}/{f['id']}", keys["full_access"], data=form)
    assert r.status_code == 200, r.text
    assert r.json()["offer_fulfillment"]["status"] == "completed"
