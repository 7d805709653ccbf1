"""processing_type=webhook: offerd POSTs a signed ``offer_fulfillment_requested`` event to the
option's ``webhook_url`` (a real HTTP receiver on 127.0.0.1) and retries on failure."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from offerd.queue import jobs
from tests.fulfillments.helpers import (
    PATH,
    accept_option,
    delivery_of,
    fulfillment_status,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import offer, seed
from tests.support.receiver import Receiver, Reply

SITE = "acme"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


async def setup(app: TestApp, webhook_url: str, **site_settings: Any) -> tuple[dict[str, str], str]:
    """Create the site (capturing its webhook secret, shown once), seed it, and point the
    ``gift`` option at ``webhook_url``. Returns the API keys and the secret."""
    r = await app.admin("PUT", f"/sites/{SITE}", {"name": "Acme", "settings": site_settings})
    assert r.status_code == 201, r.text
    secret: str = r.json()["webhook_secret"]
    assert secret.startswith("whsec_")
    keys = await seed(app, SITE, **site_settings)
    body = offer()
    assert body["options"][3]["id"] == "gift"
    body["options"][3]["webhook_url"] = webhook_url
    await app.put(SITE, "offers/stay", body)
    return keys, secret


async def accept(
    app: TestApp, keys: dict[str, str], option: str = "gift", headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accept ``option`` of a fresh personalized offer: (the personalized offer, the fulfillment)."""
    return await accept_option(app, keys, option, headers=headers)


async def attempts_of(app: TestApp, delivery_id: str) -> list[dict[str, Any]]:
    return await app.fetch(
        "SELECT * FROM delivery_attempts WHERE delivery_id = %s ORDER BY id", delivery_id
    )


async def send_jobs(app: TestApp) -> list[dict[str, Any]]:
    return await app.fetch("SELECT * FROM jobs WHERE kind = 'delivery.send'")


def signed_at(webhook: Webhook, request: Any) -> bool:
    """Whether ``request`` carries a valid v1 signature for its own id and timestamp (without
    standardwebhooks' check of the timestamp against the real wall clock)."""
    ts = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = webhook.sign(request.headers["webhook-id"], ts, request.text)
    return expected in request.headers["webhook-signature"].split(" ")


# --- the request -------------------------------------------------------------------------------


async def test_accept_sends_one_signed_chargebee_event(app: TestApp, receiver: Receiver) -> None:
    keys, secret = await setup(app, receiver.url_for("/hook"))
    po, f = await accept(app, keys)
    assert receiver.requests == []  # nothing goes out before the worker runs

    await work(app)

    request = receiver.only()
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    # Standard Webhooks: verifies with the merchant's own library and the secret shown at creation
    event = Webhook(secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body + b" ", request.headers)
    assert event["object"] == "event"
    assert event["api_version"] == "v2"
    assert event["event_type"] == "offer_fulfillment_requested"
    assert event["id"] == request.headers["webhook-id"]
    assert isinstance(event["occurred_at"], int)
    content = event["content"]
    # the fulfillment as the API shows it at the time of the request
    r = await app.get(f"{PATH}/{f['id']}", keys["full_access"])
    assert content["offer_fulfillment"] == r.json()["offer_fulfillment"]
    assert content["offer_fulfillment"]["id"] == f["id"]
    assert content["offer_fulfillment"]["processing_type"] == "webhook"
    assert content["offer_fulfillment"]["status"] == "in_progress"
    assert content["personalized_offer"]["id"] == po["id"]
    assert content["personalized_offer"]["content"]["title"] == "Before you go"
    assert content["customer"]["id"] == "cus_1"
    assert content["customer"]["email"] == "ada@example.com"
    assert content["subscription"]["id"] == "sub_1"
    assert content["subscription"]["customer_id"] == "cus_1"

    delivery = await delivery_of(app, f["id"])
    assert delivery["purpose"] == "processing"
    assert delivery["channel"] == "webhook"
    assert delivery["destination"] == receiver.url_for("/hook")
    assert delivery["event_id"] == event["id"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["delivered_at"] is not None
    (attempt,) = await attempts_of(app, delivery["id"])
    assert attempt["status_code"] == 200
    assert isinstance(attempt["latency_ms"], int) and attempt["latency_ms"] >= 0
    assert attempt["error"] is None
    assert attempt["response_excerpt"] == "ok"
    assert await send_jobs(app) == []

    # the merchant fulfils and says so; until then the fulfillment waits
    assert await fulfillment_status(app, keys, f["id"]) == "in_progress"
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["offer_fulfillment"]["status"] == "completed"


async def test_rotated_secret_signs_the_next_requests(app: TestApp, receiver: Receiver) -> None:
    keys, old = await setup(app, receiver.url_for("/hook"))
    r = await app.admin("POST", f"/sites/{SITE}/webhook_secret")
    assert r.status_code == 200, r.text
    new = r.json()["webhook_secret"]
    assert new.startswith("whsec_") and new != old
    await accept(app, keys)
    await work(app)
    request = receiver.only()
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


# --- retries -------------------------------------------------------------------------------------


async def test_failed_request_is_retried_on_schedule_with_the_same_id(
    app: TestApp, receiver: Receiver
) -> None:
    keys, secret = await setup(app, receiver.url_for("/hook"))
    receiver.respond_with(Reply(500, body="boom"), 200)
    _, f = await accept(app, keys)

    await work(app)
    assert len(receiver.requests) == 1
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 500
    assert delivery["delivered_at"] is None
    (first_attempt,) = await attempts_of(app, delivery["id"])
    assert first_attempt["status_code"] == 500
    assert first_attempt["response_excerpt"] == "boom"

    # the first retry is due 2 minutes (±10%) after the failure: not before
    app.clock.advance(timedelta(seconds=100))
    assert await work(app) == 0
    assert len(receiver.requests) == 1
    assert (await delivery_of(app, f["id"]))["status"] == "pending"

    app.clock.advance(timedelta(seconds=40))
    await work(app)
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    # webhook-timestamp is each attempt's own time
    t1, t2 = int(first.headers["webhook-timestamp"]), int(second.headers["webhook-timestamp"])
    assert 108 <= t2 - t1 <= 200
    webhook = Webhook(secret)
    assert signed_at(webhook, first) and signed_at(webhook, second)
    webhook.verify(second.body, second.headers)

    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 2
    assert delivery["last_status_code"] == 200
    assert [a["status_code"] for a in await attempts_of(app, delivery["id"])] == [500, 200]
    assert await send_jobs(app) == []
    assert await fulfillment_status(app, keys, f["id"]) == "in_progress"


@pytest.mark.parametrize(
    ("reply", "status", "retried"),
    [
        (Reply(200), "succeeded", False),
        (Reply(204), "succeeded", False),
        (Reply(500), "pending", True),
        (Reply(503), "pending", True),
        (Reply(404), "pending", True),
        (Reply(401), "pending", True),
        # a 410 Gone means the endpoint is gone for good: no retries
        (Reply(410), "failed", False),
        # 3xx counts as a failure and is not followed
        (Reply(301, {"location": "/elsewhere"}), "pending", True),
        (Reply(302, {"location": "/elsewhere"}), "pending", True),
        (Reply(307, {"location": "/elsewhere"}), "pending", True),
        (Reply(308, {"location": "/elsewhere"}), "pending", True),
    ],
)
async def test_response_status_decides(
    app: TestApp, receiver: Receiver, reply: Reply, status: str, retried: bool
) -> None:
    keys, _ = await setup(app, receiver.url_for("/hook"))
    receiver.always(reply)
    _, f = await accept(app, keys)
    await work(app)

    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == status
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == reply.status
    (attempt,) = await attempts_of(app, delivery["id"])
    assert attempt["status_code"] == reply.status
    if 300 <= reply.status < 400:
        assert "redirect" in attempt["error"]
    assert [r.path for r in receiver.requests] == ["/hook"]  # never /elsewhere
    assert len(await send_jobs(app)) == (1 if retried else 0)

    # much later, only a retried delivery has been tried again
    app.clock.advance(timedelta(minutes=10))
    await work(app)
    assert len(receiver.requests) == (2 if retried else 1)
    assert [r.path for r in receiver.requests] == ["/hook"] * len(receiver.requests)
    assert await fulfillment_status(app, keys, f["id"]) == "in_progress"


async def test_retries_give_up_after_the_schedule(app: TestApp, receiver: Receiver) -> None:
    keys, _ = await setup(app, receiver.url_for("/hook"))
    receiver.always(500)
    _, f = await accept(app, keys)
    await work(app)
    # 2 m, 6 m, 30 m, 1 h, 5 h, 1 d, 2 d (each ±10%): 8 attempts in all
    for _ in range(12):
        app.clock.advance(timedelta(days=3))
        await work(app)
    assert len(receiver.requests) == 8
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 8
    assert len(await attempts_of(app, delivery["id"])) == 8
    # its send job is kept as failed, for an admin
    assert [(j["status"], j["locked_by"]) for j in await send_jobs(app)] == [("failed", None)]


# --- suppression ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "suppressed"),
    [
        ("chargebee-event-webhook", True),
        ("chargebee-event-actions", True),
        # email suppression is about emails, not this webhook
        ("chargebee-event-email", False),
    ],
)
async def test_suppression_headers(
    app: TestApp, receiver: Receiver, header: str, suppressed: bool
) -> None:
    keys, _ = await setup(app, receiver.url_for("/hook"))
    _, f = await accept(app, keys, headers={header: "all-disabled"})
    await work(app)

    delivery = await delivery_of(app, f["id"])
    if suppressed:
        assert receiver.requests == []
        assert delivery["status"] == "skipped"
        assert header in delivery["skip_reason"]
        assert delivery["attempts"] == 0
        assert await attempts_of(app, delivery["id"]) == []
    else:
        assert len(receiver.requests) == 1
        assert delivery["status"] == "succeeded"
        assert delivery["skip_reason"] is None
    assert await send_jobs(app) == []
    assert await fulfillment_status(app, keys, f["id"]) == "in_progress"


# --- outbound safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("test_mode", [True, False])
async def test_loopback_destination_refused_without_allow_private(
    db_url: str, receiver: Receiver, test_mode: bool
) -> None:
    async with running_app(db_url, allow_private_destinations=False) as app:
        # a name (a literal 127.0.0.1 is refused on save already)
        url = receiver.url_for("/hook").replace("127.0.0.1", "localhost")
        keys, _ = await setup(app, url, test_mode=test_mode)
        _, f = await accept(app, keys)
        await work(app)

        assert receiver.requests == []
        delivery = await delivery_of(app, f["id"])
        assert delivery["status"] == "failed"
        (attempt,) = await attempts_of(app, delivery["id"])
        assert attempt["status_code"] is None
        error = delivery["last_error"]
        assert error == attempt["error"]
        if test_mode:  # plain http is allowed in test mode: the address is what is refused
            assert "loopback" in error and "private" in error
            assert "OFFERD_ALLOW_PRIVATE_DESTINATIONS" in error
        else:
            assert "test_mode" in error
        assert await send_jobs(app) == []  # refusing is final
        assert await fulfillment_status(app, keys, f["id"]) == "in_progress"


@pytest.mark.parametrize(
    "address",
    [
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the cloud metadata address
    ],
)
async def test_a_name_resolving_to_ipv4_inside_ipv6_is_refused_at_delivery(
    db_url: str, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """A name is checked where it is resolved: here the resolver answers with an IPv6 address
    carrying a loopback or metadata IPv4 (as a DNS64 resolver or a hostile zone would)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.merchant.test":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    async with running_app(db_url, allow_private_destinations=False) as app:
        keys, _ = await setup(app, "http://hooks.merchant.test:8080/hook", test_mode=True)
        _, f = await accept(app, keys)
        await work(app)

        delivery = await delivery_of(app, f["id"])
        assert delivery["status"] == "failed"
        error = delivery["last_error"]
        assert "hooks.merchant.test" in error and "private" in error, error
        assert "OFFERD_ALLOW_PRIVATE_DESTINATIONS" in error
        (attempt,) = await attempts_of(app, delivery["id"])
        assert attempt["status_code"] is None
        assert await send_jobs(app) == []  # refusing is final


@pytest.mark.parametrize(
    "url",
    [
        "https://[::127.0.0.1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://[2002:a9fe:a9fe::]/latest/meta-data/",
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
        "https://127.0.0.1/hook",
    ],
)
async def test_a_private_literal_webhook_url_is_refused_on_save(db_url: str, url: str) -> None:
    async with running_app(db_url, allow_private_destinations=False) as app:
        await seed(app, SITE)
        body = offer()
        body["options"][3]["webhook_url"] = url
        r = await app.admin("PUT", f"/sites/{SITE}/offers/stay", body)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["api_error_code"] == "param_wrong_value"
        assert error["param"] == "options[3][webhook_url]"
        assert "private" in error["message"]
        # allowed with a public address, and (see the test settings) with the flag
        body["options"][3]["webhook_url"] = "https://[64:ff9b::808:808]/hook"
        await app.put(SITE, "offers/stay", body)
    async with running_app(db_url) as app:
        body["options"][3]["webhook_url"] = url
        await app.put(SITE, "offers/stay", body)


async def test_plain_http_destination_needs_test_mode(db_url: str) -> None:
    async with running_app(db_url, allow_private_destinations=False) as app:
        keys, _ = await setup(app, "http://merchant.example/hook")
        _, f = await accept(app, keys)
        await work(app)
        delivery = await delivery_of(app, f["id"])
        assert delivery["status"] == "failed"
        assert "http" in delivery["last_error"] and "test_mode" in delivery["last_error"]
        (attempt,) = await attempts_of(app, delivery["id"])
        assert attempt["status_code"] is None
        assert await send_jobs(app) == []


# --- at most one request per fulfillment ---------------------------------------------------------


async def test_running_the_fulfillment_job_twice_sends_once(
    app: TestApp, receiver: Receiver
) -> None:
    keys, _ = await setup(app, receiver.url_for("/hook"))
    _, f = await accept(app, keys)
    await work(app)
    # the same job again (at-least-once delivery of jobs), and again the delivery job
    delivery = await delivery_of(app, f["id"])
    async with app.services.db.connection() as conn:
        now = app.clock.now()
        await jobs.enqueue(conn, "fulfillment.webhook", {"fulfillment_id": f["id"]}, now=now)
        await jobs.enqueue(conn, "delivery.send", {"delivery_id": delivery["id"]}, now=now)
    assert await work(app) == 2
    assert len(receiver.requests) == 1
    assert len(await app.fetch("SELECT id FROM deliveries")) == 1
    assert (await delivery_of(app, f["id"]))["attempts"] == 1


async def test_fulfillment_already_final_is_not_requested(app: TestApp, receiver: Receiver) -> None:
    keys, _ = await setup(app, receiver.url_for("/hook"))
    _, f = await accept(app, keys)
    # the merchant reports before the worker got to it
    r = await app.post(
        f"{PATH}/{f['id']}", keys["full_access"], json={"id": f["id"], "status": "completed"}
    )
    assert r.status_code == 200, r.text
    await work(app)
    assert receiver.requests == []
    delivery = await delivery_of(app, f["id"])
    assert delivery["status"] == "skipped"
    assert "completed" in delivery["skip_reason"]
