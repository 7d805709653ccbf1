"""The delivery log: ``GET /admin/v1/sites/{site}/deliveries`` (filters, cursor paging), one
delivery with its payload and every attempt, ``POST .../deliveries/{id}/retry``, and the same from
the command line (``offerd deliveries list|retry``, run as a real subprocess)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.notifications.flows import (
    SITE,
    WEBHOOK_OFF,
    accept,
    attempts_of,
    delivery,
    notifications,
    put_channel,
    report,
    send_job,
    update,
    verified,
    work,
)
from tests.support.app import TestApp
from tests.support.catalog import seed
from tests.support.cli import run_offerd as offerd
from tests.support.receiver import Receiver, Recorded, Reply

LOG = f"/sites/{SITE}/deliveries"
GONE_BODY = "this endpoint was removed. " * 400  # ~10 KB


@dataclass
class Scenario:
    """Seven deliveries in every state, by name (channel-event-fulfillment)."""

    ids: dict[str, str]
    f1: str
    ok_secret: str

    def names(self, ids: list[str]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


def replies(request: Recorded) -> Reply:
    if request.path == "/gone":
        return Reply(410, {"content-type": "text/plain"}, GONE_BODY)
    return Reply(200, body="ok")


async def scenario(app: TestApp, receiver: Receiver) -> Scenario:
    keys = await seed(app)
    receiver.always(replies)
    ok = await put_channel(
        app,
        "ok",
        {
            "type": "webhook",
            "url": receiver.url_for("/ok"),
            "event_types": ["offer_accepted", "offer_fulfillment_completed"],
        },
    )
    await put_channel(app, "gone", {"type": "webhook", "url": receiver.url_for("/gone")})
    await put_channel(
        app,
        "sl",
        {
            "type": "slack",
            "webhook_url": receiver.url_for("/sl"),
            "event_types": ["offer_accepted", "offer_viewed"],
        },
    )
    f1 = await accept(app, keys)
    await update(app, keys, f1["id"])
    f2 = await accept(app, keys, headers=WEBHOOK_OFF)
    await work(app)
    await report(app, keys, "viewed")  # left pending

    ids: dict[str, str] = {}
    short = {"offer_accepted": "accepted", "offer_fulfillment_completed": "completed"}
    for d in await notifications(app):
        which = {f1["id"]: "-1", f2["id"]: "-2", None: ""}[d["fulfillment_id"]]
        name = f"{d['channel_id']}-{short.get(d['event_type'], 'viewed')}{which}"
        ids[name] = d["id"]
    assert sorted(ids) == sorted(
        [
            "ok-accepted-1",
            "sl-accepted-1",
            "ok-completed-1",
            "gone-completed-1",
            "ok-accepted-2",
            "sl-accepted-2",
            "sl-viewed",
        ]
    )
    return Scenario(ids, f1["id"], ok["secret"])


async def listing(app: TestApp, query: str = "") -> dict[str, Any]:
    r = await app.admin("GET", f"{LOG}?{query}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- the list ----------------------------------------------------------------------------------

STATES = {
    "ok-accepted-1": "succeeded",
    "sl-accepted-1": "succeeded",
    "ok-completed-1": "succeeded",
    "gone-completed-1": "failed",
    "ok-accepted-2": "skipped",
    "sl-accepted-2": "succeeded",
    "sl-viewed": "pending",
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", set(STATES)),
        ("status=succeeded", {k for k, v in STATES.items() if v == "succeeded"}),
        ("status=failed", {"gone-completed-1"}),
        ("status=skipped", {"ok-accepted-2"}),
        ("status=pending", {"sl-viewed"}),
        ("channel=slack", {"sl-accepted-1", "sl-accepted-2", "sl-viewed"}),
        (
            "channel=webhook",
            {"ok-accepted-1", "ok-completed-1", "gone-completed-1", "ok-accepted-2"},
        ),
        ("channel=email", set()),
        (
            "event_type=offer_accepted",
            {"ok-accepted-1", "sl-accepted-1", "ok-accepted-2", "sl-accepted-2"},
        ),
        ("event_type=offer_viewed", {"sl-viewed"}),
        ("event_type=offer_fulfillment_completed", {"ok-completed-1", "gone-completed-1"}),
        ("status=succeeded&channel=webhook", {"ok-accepted-1", "ok-completed-1"}),
        ("status=failed&event_type=offer_accepted", set()),
        (
            "fulfillment_id={f1}",
            {"ok-accepted-1", "sl-accepted-1", "ok-completed-1", "gone-completed-1"},
        ),
    ],
)
async def test_filters(app: TestApp, receiver: Receiver, query: str, expected: set[str]) -> None:
    s = await scenario(app, receiver)
    body = await listing(app, query.format(f1=s.f1))
    ids = [d["id"] for d in body["deliveries"]]
    assert s.names(ids) == expected
    assert len(ids) == len(expected)
    assert ids == sorted(ids, reverse=True)  # newest first
    assert "next_cursor" not in body
    for d in body["deliveries"]:
        name = s.names([d["id"]]).pop()
        assert d["object"] == "delivery"
        assert d["status"] == STATES[name]
        assert d["channel_id"] == name.split("-")[0]


async def test_the_listed_delivery(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    shown = {d["id"]: d for d in (await listing(app))["deliveries"]}
    ok = shown[s.ids["ok-completed-1"]]
    assert ok["channel"] == "webhook"
    assert ok["event_type"] == "offer_fulfillment_completed"
    assert ok["fulfillment_id"] == s.f1
    assert ok["event_id"].startswith("ev_")
    assert ok["destination"] == receiver.url_for("/ok")
    assert (ok["attempts"], ok["last_status_code"], ok["last_error"]) == (1, 200, None)
    assert ok["skip_reason"] is None
    assert isinstance(ok["created_at"], int) and isinstance(ok["delivered_at"], int)
    assert ok["delivered_at"] >= ok["created_at"]

    gone = shown[s.ids["gone-completed-1"]]
    assert (gone["status"], gone["attempts"], gone["last_status_code"]) == ("failed", 1, 410)
    assert gone["last_error"] == "HTTP 410"
    assert gone["delivered_at"] is None

    skipped = shown[s.ids["ok-accepted-2"]]
    assert skipped["skip_reason"] == "chargebee-event-webhook: all-disabled"
    assert (skipped["attempts"], skipped["delivered_at"]) == (0, None)

    pending = shown[s.ids["sl-viewed"]]
    assert (pending["status"], pending["attempts"]) == ("pending", 0)
    # a Slack webhook URL is a credential: the log does not show it
    for d in shown.values():
        if d["channel"] == "slack":
            assert receiver.url_for("/sl") not in d["destination"]


@pytest.mark.parametrize(("query", "total"), [("", 7), ("channel=webhook", 4)])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_paging(app: TestApp, receiver: Receiver, query: str, total: int, limit: int) -> None:
    await scenario(app, receiver)
    everything = [d["id"] for d in (await listing(app, query))["deliveries"]]
    assert len(everything) == total
    pages: list[list[str]] = []
    cursor = None
    while True:
        q = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = await listing(app, q)
        pages.append([d["id"] for d in body["deliveries"]])
        cursor = body.get("next_cursor")
        if cursor is None:
            break
        assert cursor == pages[-1][-1]
        assert len(pages) <= total, "paging does not end"
    assert [i for page in pages for i in page] == everything
    assert all(len(p) == limit for p in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=lost", "status"),
        ("channel=pigeon", "channel"),
        ("event_type=offer_exploded", "event_type"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
    ],
)
async def test_bad_filters(app: TestApp, query: str, param: str) -> None:
    await seed(app)
    r = await app.admin("GET", f"{LOG}?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param
    assert r.json()["api_error_code"] == "param_wrong_value"


# --- one delivery ------------------------------------------------------------------------------


async def test_detail_with_the_attempt_log(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    gone_id = s.ids["gone-completed-1"]
    r = await app.admin("GET", f"{LOG}/{gone_id}")
    assert r.status_code == 200, r.text
    detail = r.json()
    listed = next(d for d in (await listing(app))["deliveries"] if d["id"] == gone_id)
    assert {k: v for k, v in detail.items() if k not in ("payload", "attempt_log")} == listed
    assert detail["payload"]["id"] == detail["event_id"]
    assert detail["payload"]["object"] == "event"
    assert detail["payload"]["event_type"] == "offer_fulfillment_completed"
    assert detail["payload"]["content"]["offer_fulfillment"]["id"] == s.f1

    (attempt,) = detail["attempt_log"]
    assert attempt["status_code"] == 410
    assert attempt["error"] == "HTTP 410"
    assert isinstance(attempt["attempted_at"], int)
    assert attempt["attempted_at"] >= detail["created_at"]
    assert isinstance(attempt["latency_ms"], int) and attempt["latency_ms"] >= 0
    excerpt = attempt["response_excerpt"]
    assert excerpt and GONE_BODY.startswith(excerpt)
    assert len(excerpt) <= 1000 < len(GONE_BODY)  # bounded

    skipped = (await app.admin("GET", f"{LOG}/{s.ids['ok-accepted-2']}")).json()
    assert skipped["attempt_log"] == []
    assert skipped["payload"]["event_type"] == "offer_accepted"


async def test_unknown_and_other_sites_deliveries(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    await seed(app, "other")
    for path in (
        f"{LOG}/dl_nope",
        f"/sites/other/deliveries/{s.ids['ok-accepted-1']}",
    ):
        r = await app.admin("GET", path)
        assert r.status_code == 404, r.text
        assert r.json()["api_error_code"] == "resource_not_found"
        r = await app.admin("POST", f"{path}/retry")
        assert r.status_code == 404, r.text
    assert (await app.admin("GET", "/sites/other/deliveries")).json() == {"deliveries": []}


# --- retry -------------------------------------------------------------------------------------


async def retry(app: TestApp, delivery_id: str) -> dict[str, Any]:
    r = await app.admin("POST", f"{LOG}/{delivery_id}/retry")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_retry_a_failed_delivery(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    gone_id = s.ids["gone-completed-1"]
    again = await retry(app, gone_id)
    assert (again["id"], again["status"]) == (gone_id, "pending")
    assert await send_job(app, gone_id) is not None
    before = len(receiver.received("POST", "/gone"))
    await work(app)
    assert len(receiver.received("POST", "/gone")) == before + 1
    detail = (await app.admin("GET", f"{LOG}/{gone_id}")).json()
    assert (detail["status"], detail["attempts"]) == ("failed", 2)
    assert [a["status_code"] for a in detail["attempt_log"]] == [410, 410]


async def test_retry_a_skipped_delivery_sends_it(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    skipped_id = s.ids["ok-accepted-2"]
    again = await retry(app, skipped_id)
    assert (again["status"], again["skip_reason"]) == ("pending", None)
    receiver.clear()
    await work(app)
    request = receiver.only("POST", "/ok")
    event = verified(s.ok_secret, request)
    assert event["id"] == again["event_id"] == request.headers["webhook-id"]
    d = await delivery(app, skipped_id)
    assert (d["status"], d["attempts"]) == ("succeeded", 1)


async def test_retry_a_delivered_one_sends_the_same_event(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    done_id = s.ids["ok-accepted-1"]
    (first,) = [
        r for r in receiver.received("POST", "/ok") if r.json()["event_type"] == "offer_accepted"
    ]
    await retry(app, done_id)
    receiver.clear()
    await work(app)
    second = receiver.only("POST", "/ok")
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert verified(s.ok_secret, second) == verified(s.ok_secret, first)
    d = await delivery(app, done_id)
    assert (d["status"], d["attempts"]) == ("succeeded", 2)
    assert len(await attempts_of(app, done_id)) == 2


async def test_a_pending_delivery_is_not_retried(app: TestApp, receiver: Receiver) -> None:
    s = await scenario(app, receiver)
    r = await app.admin("POST", f"{LOG}/{s.ids['sl-viewed']}/retry")
    assert r.status_code == 409, r.text
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    jobs = await app.fetch(
        "SELECT 1 FROM jobs WHERE payload->>'delivery_id' = %s", s.ids["sl-viewed"]
    )
    assert len(jobs) == 1  # still exactly its own job


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], set(STATES)),
        (["--status", "failed"], {"gone-completed-1"}),
        (["--status", "skipped"], {"ok-accepted-2"}),
        (["--channel", "slack"], {"sl-accepted-1", "sl-accepted-2", "sl-viewed"}),
        (["--event-type", "offer_viewed"], {"sl-viewed"}),
        (["--channel", "email"], set()),
    ],
)
async def test_cli_list(
    app: TestApp,
    receiver: Receiver,
    db_url: str,
    tmp_path: Path,
    options: list[str],
    expected: set[str],
) -> None:
    s = await scenario(app, receiver)
    done = offerd(db_url, tmp_path, "deliveries", "list", "--site", SITE, *options)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = {name for name, i in s.ids.items() if i in done.stdout}
    assert shown == expected, done.stdout
    for name in expected:
        line = next(x for x in done.stdout.splitlines() if s.ids[name] in x)
        assert STATES[name] in line
    if "gone-completed-1" in expected:
        assert "HTTP 410" in done.stdout
    if "ok-accepted-2" in expected:
        assert "chargebee-event-webhook" in done.stdout


async def test_cli_retry(app: TestApp, receiver: Receiver, db_url: str, tmp_path: Path) -> None:
    s = await scenario(app, receiver)
    gone_id = s.ids["gone-completed-1"]
    for args, message in [
        ((s.ids["sl-viewed"], "--site", SITE), "already waiting"),
        (("dl_nope", "--site", SITE), "not found"),
        ((gone_id, "--site", "other"), "not found"),
    ]:
        refused = offerd(db_url, tmp_path, "deliveries", "retry", *args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert message in refused.stdout + refused.stderr
    assert (await delivery(app, gone_id))["status"] == "failed"

    done = offerd(db_url, tmp_path, "deliveries", "retry", gone_id, "--site", SITE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert gone_id in done.stdout + done.stderr
    assert (await delivery(app, gone_id))["status"] == "pending"
    assert await send_job(app, gone_id) is not None
    before = len(receiver.received("POST", "/gone"))
    await work(app)
    assert len(receiver.received("POST", "/gone")) == before + 1
    d = await delivery(app, gone_id)
    assert (d["status"], d["attempts"]) == ("failed", 2)


async def test_cli_list_shows_full_ids_on_a_narrow_terminal_and_as_json(
    app: TestApp, receiver: Receiver, db_url: str, tmp_path: Path
) -> None:
    s = await scenario(app, receiver)
    narrow = offerd(db_url, tmp_path, "deliveries", "list", "--site", SITE, env={"COLUMNS": "40"})
    assert narrow.returncode == 0, narrow.stdout + narrow.stderr
    for delivery_id in s.ids.values():
        assert delivery_id in narrow.stdout, narrow.stdout

    done = offerd(db_url, tmp_path, "deliveries", "list", "--site", SITE, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["id"] for r in rows} == set(s.ids.values())
    assert all(r["object"] == "delivery" for r in rows)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--site", "nosuchsite"], "unknown --site 'nosuchsite'"),
        (["--site", SITE, "--status", "faild"], "unknown --status 'faild'"),
        (["--site", SITE, "--channel", "sms"], "unknown --channel 'sms'"),
    ],
)
async def test_cli_list_refuses_unknown_filters(
    app: TestApp, db_url: str, tmp_path: Path, options: list[str], message: str
) -> None:
    await app.create_site(SITE)
    done = offerd(db_url, tmp_path, "deliveries", "list", *options)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_version(db_url: str, tmp_path: Path) -> None:
    from offerd import __version__

    done = offerd(db_url, tmp_path, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"offerd {__version__}")
