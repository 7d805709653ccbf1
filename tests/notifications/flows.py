"""What the notification tests share: channels through the admin API, the public calls that make
offer events (view, dismiss, accept, the merchant's update), running the worker on the injected
clock, and reading deliveries, their attempts and their send jobs."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from offerd.queue.runtime import build_worker
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer
from tests.support.receiver import Receiver, _Handler, _Server
from tests.support.smtp import MailSink

SITE = "acme"
FULFILLMENTS = "/api/v2/offer_fulfillments"
EVENTS = "/api/v2/offer_events"

ALL_TYPES = [
    "offer_fulfillment_completed",
    "offer_fulfillment_failed",
    "offer_accepted",
    "offer_viewed",
    "offer_dismissed",
]

# Chargebee's webhook retry schedule (spec §8.1), in seconds after each failed attempt.
SCHEDULE = [120, 360, 1800, 3600, 5 * 3600, 86400, 2 * 86400]
JITTER = 0.1

ACTIONS_OFF = {"chargebee-event-actions": "all-disabled"}
WEBHOOK_OFF = {"chargebee-event-webhook": "all-disabled"}
EMAIL_OFF = {"chargebee-event-email": "all-disabled"}


@pytest.fixture
def mail() -> Iterator[MailSink]:
    """A running SMTP sink (aiosmtpd) for one test."""
    with MailSink() as sink:
        yield sink


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def verified(secret: str, request: Any, now: datetime | None = None) -> dict[str, Any]:
    """The event, after checking its Standard Webhooks signature with ``standardwebhooks``.

    The receiver's "now" is the app clock's: when a test has moved that clock far ahead of real
    time, the timestamp is checked against it (the library can only check it against real time)
    and the signature with the library's own ``sign``."""
    headers = request.headers
    timestamp = int(headers["webhook-timestamp"])
    if abs(timestamp - time.time()) < 240:
        event: dict[str, Any] = Webhook(secret).verify(request.body, headers)
        return event
    assert now is not None, "the webhook timestamp is far from real time: pass the app clock"
    assert abs(timestamp - now.timestamp()) <= 300, (timestamp, now)
    expected = Webhook(secret).sign(
        headers["webhook-id"], datetime.fromtimestamp(timestamp, UTC), request.body.decode()
    )
    assert expected in headers["webhook-signature"].split(" "), "no matching signature"
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


# --- channels ----------------------------------------------------------------------------------


async def put_channel(
    app: TestApp, channel_id: str, body: dict[str, Any], *, site: str = SITE
) -> dict[str, Any]:
    r = await app.admin("PUT", f"/sites/{site}/notification_channels/{channel_id}", body)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


async def get_channel(app: TestApp, channel_id: str, *, site: str = SITE) -> dict[str, Any]:
    r = await app.admin("GET", f"/sites/{site}/notification_channels/{channel_id}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


# --- the public calls that make events ---------------------------------------------------------


async def accept(
    app: TestApp,
    keys: dict[str, str],
    option: str = "talk",
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Accept ``option`` of a fresh personalized offer; returns the fulfillment."""
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": option},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    fulfillment: dict[str, Any] = r.json()["offer_fulfillment"]
    return fulfillment


async def update(
    app: TestApp,
    keys: dict[str, str],
    fulfillment_id: str,
    status: str = "completed",
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The merchant's ``POST /api/v2/offer_fulfillments/{id}``."""
    body: dict[str, Any] = {"id": fulfillment_id, "status": status}
    if status == "failed":
        body["failure_reason"] = "the customer changed their mind"
    r = await app.post(
        f"{FULFILLMENTS}/{fulfillment_id}", keys["full_access"], json=body, headers=headers
    )
    assert r.status_code == 200, r.text
    fulfillment: dict[str, Any] = r.json()["offer_fulfillment"]
    return fulfillment


async def report(
    app: TestApp,
    keys: dict[str, str],
    event_type: str,
    *,
    headers: dict[str, str] | None = None,
) -> str:
    """A fresh personalized offer, then a ``viewed``/``dismissed`` event for it; returns its id."""
    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        EVENTS,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "type": event_type},
        headers=headers,
    )
    assert r.status_code in (200, 204), r.text
    po_id: str = po["id"]
    return po_id


# --- the worker, on the injected clock ---------------------------------------------------------


async def work(app: TestApp) -> int:
    """Run every job due at the app clock's now; returns how many ran."""
    return await build_worker(app.services).run_once()


def advance_to(app: TestApp, when: datetime, extra: float = 1.0) -> None:
    """Move the app clock to just after ``when``."""
    delta = when - app.clock.now() + timedelta(seconds=extra)
    if delta > timedelta():
        app.clock.advance(delta)


# --- reading the outcome -----------------------------------------------------------------------


async def notifications(app: TestApp, **where: Any) -> list[dict[str, Any]]:
    """Notification deliveries (not processing ones), oldest first; ``where`` filters on columns."""
    sql = "SELECT * FROM deliveries WHERE purpose = 'notification'"
    params: list[Any] = []
    for column, value in where.items():
        sql += f" AND {column} = %s"
        params.append(value)
    return await app.fetch(sql + " ORDER BY created_at, id", *params)


async def delivery(app: TestApp, delivery_id: str) -> dict[str, Any]:
    (row,) = await app.fetch("SELECT * FROM deliveries WHERE id = %s", delivery_id)
    return row


async def attempts_of(app: TestApp, delivery_id: str) -> list[dict[str, Any]]:
    return await app.fetch(
        "SELECT * FROM delivery_attempts WHERE delivery_id = %s ORDER BY id", delivery_id
    )


async def send_job(app: TestApp, delivery_id: str) -> dict[str, Any] | None:
    rows = await app.fetch(
        "SELECT * FROM jobs WHERE kind = 'delivery.send' AND payload->>'delivery_id' = %s",
        delivery_id,
    )
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


async def send_jobs(app: TestApp) -> list[dict[str, Any]]:
    return await app.fetch("SELECT * FROM jobs WHERE kind = 'delivery.send' ORDER BY id")


async def event_id(app: TestApp, fulfillment_id: str, event_type: str) -> str:
    (row,) = await app.fetch(
        "SELECT id FROM offer_events WHERE fulfillment_id = %s AND type = %s",
        fulfillment_id,
        event_type,
    )
    found: str = row["id"]
    return found


async def gap_to_next_attempt(app: TestApp, delivery_id: str) -> float:
    """Seconds between the delivery's last attempt and when its send job is due again."""
    job = await send_job(app, delivery_id)
    assert job is not None, "no send job: the delivery will not be tried again"
    last = (await attempts_of(app, delivery_id))[-1]
    gap: float = (job["run_at"] - last["attempted_at"]).total_seconds()
    return gap


def within_jitter(gap: float, base: float, slack: float = 2.0) -> bool:
    """``gap`` is ``base`` ± 10% (and a little for the time from recording to rescheduling)."""
    return base * (1 - JITTER) - slack <= gap <= base * (1 + JITTER) + slack


# --- a receiver that can go away and come back on the same port --------------------------------


class _PinnedServer(_Server):
    """The receiver's server on a given port, remembering its connections so that stopping it
    really cuts them (a client's pooled keep-alive connection must not outlive the server)."""

    def __init__(self, owner: Receiver, port: int) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.connections.add(conn)
        return conn, address

    def cut(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.connections.clear()


class PinnedReceiver(Receiver):
    """A ``Receiver`` on a given port: ``stop()`` it (its connections are cut and new ones are
    refused), ``start()`` it again later at the same address; it keeps what it recorded."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.pinned = port

    def start(self) -> PinnedReceiver:
        self._server = _PinnedServer(self, self.pinned)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if isinstance(self._server, _PinnedServer):
            self._server.cut()
        super().stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
