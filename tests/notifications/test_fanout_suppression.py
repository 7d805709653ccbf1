"""Fan-out and suppression, end to end with all four channel types on real receivers.

Every recorded event a channel subscribes to makes one delivery (and one send job) per channel,
in the event's transaction. ``chargebee-event-actions: all-disabled`` on the request that causes
an event skips every channel; ``chargebee-event-webhook`` the webhook channels; ``chargebee-event-
email`` the email channels. On an accept, the header holds for the fulfillment's later
``offer_fulfillment_completed``/``failed`` event too, whoever causes it (the merchant's update,
the worker); on the merchant's update it holds for the event that update causes. Skipped
deliveries are recorded as ``skipped`` with the header as the reason, and never sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.notifications.flows import (
    ACTIONS_OFF,
    ALL_TYPES,
    EMAIL_OFF,
    FULFILLMENTS,
    WEBHOOK_OFF,
    accept,
    mail,  # noqa: F401
    notifications,
    put_channel,
    report,
    send_jobs,
    update,
    work,
)
from tests.support.app import TestApp, running_app
from tests.support.catalog import personalized_offer, seed
from tests.support.receiver import Receiver
from tests.support.smtp import MailSink

TYPES = ("webhook", "slack", "email", "segment")
PATHS = {"webhook": "/wh", "slack": "/sl", "segment": "/sg/v1/batch"}

# header on the request -> (the header's name, the channel types it turns off)
HEADERS: dict[str, tuple[dict[str, str], set[str]]] = {
    "none": ({}, set()),
    "actions": (ACTIONS_OFF, set(TYPES)),
    "webhook": (WEBHOOK_OFF, {"webhook"}),
    "email": (EMAIL_OFF, {"email"}),
}
SUPPRESSING = ["actions", "webhook", "email"]


@pytest.fixture
async def app(db_url: str, mail: MailSink) -> AsyncIterator[TestApp]:  # noqa: F811
    async with running_app(db_url, **mail.settings()) as test_app:
        yield test_app


async def every_type(app: TestApp, receiver: Receiver) -> dict[str, str]:
    """Seed the site with one channel of each type, each subscribed to every event type."""
    keys = await seed(app)
    channels: dict[str, dict[str, Any]] = {
        "webhook": {"type": "webhook", "url": receiver.url_for("/wh")},
        "slack": {"type": "slack", "webhook_url": receiver.url_for("/sl")},
        "email": {"type": "email", "to": ["ops@acme.example"]},
        "segment": {"type": "segment", "write_key": "wk", "endpoint": receiver.url_for("/sg")},
    }
    for kind, body in channels.items():
        await put_channel(app, f"{kind}-ch", {**body, "event_types": ALL_TYPES})
    return keys


async def by_channel(app: TestApp, **where: Any) -> dict[str, dict[str, Any]]:
    rows = await notifications(app, **where)
    out = {r["channel"]: r for r in rows}
    assert len(out) == len(rows), rows  # one per channel
    return out


def check(rows: dict[str, dict[str, Any]], header: str, *, sent: bool) -> None:
    """Each channel type's delivery: skipped with the header as the reason, or not."""
    names, off = HEADERS[header]
    assert set(rows) == set(TYPES)
    for kind, row in rows.items():
        if kind in off:
            assert row["status"] == "skipped", (kind, row["status"])
            (name,) = names
            assert row["skip_reason"] is not None and name in row["skip_reason"], row
            assert row["attempts"] == 0
        else:
            assert row["status"] == ("succeeded" if sent else "pending"), (kind, row)
            assert row["skip_reason"] is None


async def only_pending_have_jobs(app: TestApp) -> None:
    jobs = await send_jobs(app)
    pending = {d["id"] for d in await notifications(app, status="pending")}
    assert sorted(j["payload"]["delivery_id"] for j in jobs) == sorted(pending)


def received(receiver: Receiver, mail: MailSink) -> dict[str, int]:  # noqa: F811
    """How many events each channel type's receiver got."""
    counts = {kind: len(receiver.received("POST", path)) for kind, path in PATHS.items()}
    counts["segment"] = sum(
        len(r.json()["batch"]) for r in receiver.received("POST", PATHS["segment"])
    )
    counts["email"] = len(mail.messages)
    return counts


# --- on the accept, carried to the fulfillment's end -----------------------------------------


@pytest.mark.parametrize(
    ("option", "end", "end_type"),
    [
        ("talk", "completed", "offer_fulfillment_completed"),  # the merchant's update
        ("talk", "failed", "offer_fulfillment_failed"),  # the merchant's update
        ("discount", None, "offer_fulfillment_completed"),  # the worker's billing update
    ],
    ids=["merchant-completes", "merchant-fails", "worker-completes"],
)
@pytest.mark.parametrize("header", list(HEADERS))
async def test_a_header_on_the_accept_holds_for_the_later_event(
    app: TestApp,
    receiver: Receiver,
    mail: MailSink,  # noqa: F811
    header: str,
    option: str,
    end: str | None,
    end_type: str,
) -> None:
    keys = await every_type(app, receiver)
    f = await accept(app, keys, option, headers=HEADERS[header][0])
    check(await by_channel(app, event_type="offer_accepted"), header, sent=False)
    await only_pending_have_jobs(app)

    if end is not None:
        await update(app, keys, f["id"], end)  # no header on this request
    await work(app)

    r = await app.get(f"{FULFILLMENTS}/{f['id']}", keys["full_access"])
    assert r.json()["offer_fulfillment"]["status"] == (end or "completed")
    check(await by_channel(app, event_type="offer_accepted"), header, sent=True)
    later = await by_channel(app, event_type=end_type)
    check(later, header, sent=True)
    assert {d["fulfillment_id"] for d in later.values()} == {f["id"]}
    assert await send_jobs(app) == []

    off = HEADERS[header][1]
    assert received(receiver, mail) == {kind: 0 if kind in off else 2 for kind in TYPES}


# --- on the merchant's update ----------------------------------------------------------------


@pytest.mark.parametrize("end", ["completed", "failed"])
@pytest.mark.parametrize("header", SUPPRESSING)
async def test_a_header_on_the_merchants_update(
    app: TestApp,
    receiver: Receiver,
    mail: MailSink,  # noqa: F811
    header: str,
    end: str,
) -> None:
    keys = await every_type(app, receiver)
    f = await accept(app, keys)
    await update(app, keys, f["id"], end, headers=HEADERS[header][0])
    await work(app)
    check(await by_channel(app, event_type="offer_accepted"), "none", sent=True)
    check(await by_channel(app, event_type=f"offer_fulfillment_{end}"), header, sent=True)
    off = HEADERS[header][1]
    assert received(receiver, mail) == {kind: 1 if kind in off else 2 for kind in TYPES}


async def test_headers_on_different_requests_add_up(
    app: TestApp,
    receiver: Receiver,
    mail: MailSink,  # noqa: F811
) -> None:
    keys = await every_type(app, receiver)
    f = await accept(app, keys, headers=WEBHOOK_OFF)
    await update(app, keys, f["id"], headers=EMAIL_OFF)
    later = await by_channel(app, event_type="offer_fulfillment_completed")
    assert {k: d["status"] for k, d in later.items()} == {
        "webhook": "skipped",
        "email": "skipped",
        "slack": "pending",
        "segment": "pending",
    }


async def test_a_later_request_cannot_undo_the_accepts_header(
    app: TestApp,
    receiver: Receiver,
    mail: MailSink,  # noqa: F811
) -> None:
    keys = await every_type(app, receiver)
    f = await accept(app, keys, headers=ACTIONS_OFF)
    # the merchant's update without any header: still nothing for the fulfillment
    await update(app, keys, f["id"])
    await work(app)
    assert {d["status"] for d in await notifications(app)} == {"skipped"}
    assert received(receiver, mail) == dict.fromkeys(TYPES, 0)


# --- viewed and dismissed --------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["viewed", "dismissed"])
@pytest.mark.parametrize("header", list(HEADERS))
async def test_viewed_and_dismissed(
    app: TestApp,
    receiver: Receiver,
    mail: MailSink,  # noqa: F811
    header: str,
    event_type: str,
) -> None:
    keys = await every_type(app, receiver)
    await report(app, keys, event_type, headers=HEADERS[header][0])
    check(await by_channel(app, event_type=f"offer_{event_type}"), header, sent=False)
    await only_pending_have_jobs(app)
    await work(app)
    check(await by_channel(app), header, sent=True)
    off = HEADERS[header][1]
    assert received(receiver, mail) == {kind: 0 if kind in off else 1 for kind in TYPES}


# --- who gets what ---------------------------------------------------------------------------


async def test_each_channel_gets_the_event_types_it_subscribes_to(
    app: TestApp, receiver: Receiver
) -> None:
    keys = await seed(app)
    await seed(app, "other")
    for name in ALL_TYPES:
        body = {"type": "webhook", "url": receiver.url_for(f"/{name}"), "event_types": [name]}
        await put_channel(app, name, body)
    await put_channel(app, "default", {"type": "webhook", "url": receiver.url_for("/default")})
    await put_channel(app, "gone", {"type": "webhook", "url": receiver.url_for("/gone")})
    r = await app.admin("DELETE", "/sites/acme/notification_channels/gone")
    assert r.status_code == 200
    # another site's channel hears nothing of this site
    body = {"type": "webhook", "url": receiver.url_for("/other"), "event_types": ALL_TYPES}
    await put_channel(app, "all", body, site="other")

    await report(app, keys, "viewed")
    await report(app, keys, "dismissed")
    done = await accept(app, keys)
    await update(app, keys, done["id"], "completed")
    lost = await accept(app, keys)
    await update(app, keys, lost["id"], "failed")
    await work(app)

    got = {
        path: sorted(r.json()["event_type"] for r in receiver.received("POST", path))
        for path in {r.path for r in receiver.requests}
    }
    assert got == {
        "/offer_viewed": ["offer_viewed"],
        "/offer_dismissed": ["offer_dismissed"],
        "/offer_accepted": ["offer_accepted", "offer_accepted"],
        "/offer_fulfillment_completed": ["offer_fulfillment_completed"],
        "/offer_fulfillment_failed": ["offer_fulfillment_failed"],
        "/default": ["offer_fulfillment_completed"],
    }
    # one delivery per (event, channel)
    rows = await notifications(app)
    assert len(rows) == len({(d["event_id"], d["channel_id"]) for d in rows}) == 7
    events = await app.fetch("SELECT id FROM offer_events")
    assert {d["event_id"] for d in rows} == {e["id"] for e in events}


async def test_fan_out_is_part_of_the_events_transaction(app: TestApp, receiver: Receiver) -> None:
    keys = await seed(app)
    body = {"type": "webhook", "url": receiver.url_for("/wh"), "event_types": ALL_TYPES}
    await put_channel(app, "wh", body)
    po = await personalized_offer(app, keys["publishable"])
    request = {"personalized_offer_id": po["id"], "option_id": "talk"}
    headers = {"chargebee-idempotency-key": "accept-once"}
    first = await app.post(FULFILLMENTS, keys["publishable"], json=request, headers=headers)
    assert first.status_code == 202, first.text
    # a replay (idempotency key) and a repeat of the same accept record no new event
    replay = await app.post(FULFILLMENTS, keys["publishable"], json=request, headers=headers)
    assert replay.json() == first.json()
    again = await app.post(FULFILLMENTS, keys["publishable"], json=request)
    assert again.status_code == 202
    # a refused request records nothing
    other = await app.post(FULFILLMENTS, keys["publishable"], json={**request, "option_id": "gift"})
    assert other.status_code == 409, other.text
    bad = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json=request,
        headers={"chargebee-event-webhook": "sometimes"},
    )
    assert bad.status_code == 400, bad.text
    (only,) = await notifications(app)
    assert only["event_type"] == "offer_accepted"
    await only_pending_have_jobs(app)
    assert len(await app.fetch("SELECT 1 FROM offer_events")) == 1
