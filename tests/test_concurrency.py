"""Many clients at once, over a real socket, against a real PostgreSQL.

Each scenario fires its requests from threads that wait on one barrier, so they reach the server
together and the database, not the test, has to decide who wins. Outcomes are checked in the
responses (never a 5xx, every error in Chargebee's shape) and in the rows left behind.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.app import basic
from tests.support.schemathesis_checks import parse_error_body
from tests.support.server import LiveServer, live_server
from tests.support.sync import seed

ACCEPT = "/api/v2/offer_fulfillments"
ASK = "/api/v2/personalized_offers"
IDEMPOTENCY_KEY = "chargebee-idempotency-key"
REPLAYED = "chargebee-idempotency-replayed"


@dataclass(frozen=True)
class Site:
    client: httpx.Client
    key: str
    db_url: str

    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.client.post(path, json=body, headers={**basic(self.key), **(headers or {})})

    def personalized_offer_id(self) -> str:
        r = self.post(ASK, {"customer_id": "cus_1", "subscription_id": "sub_1"})
        assert r.status_code == 200, r.text
        (po,) = r.json()["personalized_offers"]
        po_id: str = po["id"]
        return po_id

    def count(self, query: str, *params: Any) -> int:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        n: int = row[0]
        return n


@pytest.fixture
def patient_live(db_url: str) -> Iterator[LiveServer]:
    """The server in this test's process, waiting up to 30 s for a database connection (2 s by
    default): these scenarios are about exactly one winner among 50 racing requests, and on a
    loaded CI machine (the fault tests' worker processes on the other xdist worker) 50 requests
    queued for 20 connections could pass the 2 s and get 503 before racing at all. What the
    deadline does is tested where it is the subject (tests/fault/test_postgres_*)."""
    with live_server(db_url, db_acquire_timeout_seconds=30.0) as server:
        yield server


@pytest.fixture
def site(patient_live: LiveServer, db_url: str) -> Iterator[Site]:
    live = patient_live
    keys = seed(live.base_url)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    # Generous: a server that fails slowly should fail the assertions, not the transport.
    with httpx.Client(base_url=live.base_url, limits=limits, timeout=180) as client:
        yield Site(client, keys["full_access"], db_url)


def together(requests: Sequence[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every request on its own thread, all released at once; responses in request order."""
    barrier = threading.Barrier(len(requests))

    def run(request: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=60)
        return request()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(run, requests))


def describe(responses: Sequence[httpx.Response]) -> str:
    return "\n".join(
        f"{r.status_code} {REPLAYED}={r.headers.get(REPLAYED)} {r.text}" for r in responses
    )


def assert_no_server_error(responses: Sequence[httpx.Response]) -> None:
    failed = [r for r in responses if r.status_code >= 500]
    assert not failed, f"{len(failed)} of {len(responses)} failed:\n{describe(failed)}"


def assert_error(response: httpx.Response, status: int, api_error_code: str) -> None:
    assert response.status_code == status, response.text
    body = parse_error_body(response.status_code, response.text)
    assert body["api_error_code"] == api_error_code, response.text


def fulfillment_counts(site: Site, po_id: str) -> tuple[int, int]:
    fulfillments = site.count(
        "SELECT count(*) FROM offer_fulfillments WHERE personalized_offer_id = %s", po_id
    )
    accepted = site.count(
        "SELECT count(*) FROM offer_events WHERE type = 'accepted' AND personalized_offer_id = %s",
        po_id,
    )
    return fulfillments, accepted


def jobs_for(site: Site, fulfillment_id: str) -> int:
    return site.count(
        "SELECT count(*) FROM jobs WHERE payload->>'fulfillment_id' = %s", fulfillment_id
    )


def test_parallel_accepts_of_one_option_create_one_fulfillment(site: Site) -> None:
    po_id = site.personalized_offer_id()
    body = {"personalized_offer_id": po_id, "option_id": "discount"}

    responses = together([partial(site.post, ACCEPT, body)] * 50)

    assert_no_server_error(responses)
    assert [r.status_code for r in responses] == [202] * 50, describe(responses)
    ids = {r.json()["offer_fulfillment"]["id"] for r in responses}
    assert len(ids) == 1, ids
    (fulfillment_id,) = ids
    assert fulfillment_counts(site, po_id) == (1, 1)
    assert jobs_for(site, fulfillment_id) == 1
    assert {r.json()["offer_fulfillment"]["option_id"] for r in responses} == {"discount"}


def test_parallel_accepts_of_two_options_let_one_option_win(site: Site) -> None:
    po_id = site.personalized_offer_id()
    # Both options start a job (billing_update, webhook), so the job count is one either way.
    options = ["discount", "gift"] * 25

    responses = together(
        [
            partial(site.post, ACCEPT, {"personalized_offer_id": po_id, "option_id": option})
            for option in options
        ]
    )

    assert_no_server_error(responses)
    accepted = [(o, r) for o, r in zip(options, responses, strict=True) if r.status_code == 202]
    assert accepted, describe(responses)
    winners = {o for o, _ in accepted}
    assert len(winners) == 1, describe(responses)
    (winner,) = winners
    ids = {r.json()["offer_fulfillment"]["id"] for _, r in accepted}
    assert len(ids) == 1, ids
    (fulfillment_id,) = ids
    for option, r in zip(options, responses, strict=True):
        if option == winner:
            assert r.status_code == 202, r.text
            assert r.json()["offer_fulfillment"]["option_id"] == winner
        else:
            assert_error(r, 409, "invalid_state_for_request")
    assert fulfillment_counts(site, po_id) == (1, 1)
    assert jobs_for(site, fulfillment_id) == 1


def test_parallel_retries_with_one_idempotency_key_replay_one_fulfillment(site: Site) -> None:
    po_id = site.personalized_offer_id()
    body = {"personalized_offer_id": po_id, "option_id": "discount"}
    headers = {IDEMPOTENCY_KEY: "retry-0001"}

    responses = together([partial(site.post, ACCEPT, body, headers)] * 20)

    assert_no_server_error(responses)
    ok = [r for r in responses if r.status_code == 202]
    for r in responses:
        if r.status_code != 202:
            assert_error(r, 409, "invalid_state_for_request")
    first = [r for r in ok if REPLAYED not in r.headers]
    replays = [r for r in ok if REPLAYED in r.headers]
    assert len(first) == 1, describe(responses)
    assert all(r.headers[REPLAYED] == "true" for r in replays), describe(replays)
    assert {r.content for r in ok} == {first[0].content}, describe(ok)
    fulfillment_id = first[0].json()["offer_fulfillment"]["id"]
    assert fulfillment_counts(site, po_id) == (1, 1)
    assert jobs_for(site, fulfillment_id) == 1


def test_one_idempotency_key_with_different_bodies_does_the_work_once(site: Site) -> None:
    po_id = site.personalized_offer_id()
    options = ["discount", "gift"] * 10
    headers = {IDEMPOTENCY_KEY: "reused-0001"}

    responses = together(
        [
            partial(
                site.post, ACCEPT, {"personalized_offer_id": po_id, "option_id": option}, headers
            )
            for option in options
        ]
    )

    assert_no_server_error(responses)
    ok = [(o, r) for o, r in zip(options, responses, strict=True) if r.status_code == 202]
    first = [(o, r) for o, r in ok if REPLAYED not in r.headers]
    assert len(first) == 1, describe(responses)
    ((winner, original),) = first
    for option, r in zip(options, responses, strict=True):
        if r.status_code == 202:
            # A 202 is the winner or a replay of it, which only the winner's body may get.
            assert option == winner, describe(responses)
            assert r.content == original.content
        elif r.status_code == 422:
            assert option != winner, describe(responses)
            assert_error(r, 422, "unable_to_process_request")
        else:
            assert_error(r, 409, "invalid_state_for_request")
    assert fulfillment_counts(site, po_id) == (1, 1)
    assert jobs_for(site, original.json()["offer_fulfillment"]["id"]) == 1


def test_parallel_personalized_offers_with_one_idempotency_key_issue_one_offer(
    site: Site,
) -> None:
    body = {"customer_id": "cus_1", "subscription_id": "sub_1"}
    headers = {IDEMPOTENCY_KEY: "ask-0001"}

    responses = together([partial(site.post, ASK, body, headers)] * 20)

    assert_no_server_error(responses)
    assert [r.status_code for r in responses] == [200] * 20, describe(responses)
    replayed = Counter(r.headers.get(REPLAYED) for r in responses)
    assert replayed == {None: 1, "true": 19}, describe(responses)
    assert len({r.content for r in responses}) == 1, describe(responses)
    (po,) = responses[0].json()["personalized_offers"]
    assert site.count("SELECT count(*) FROM personalized_offers") == 1
    assert site.count("SELECT count(*) FROM personalized_offers WHERE id = %s", po["id"]) == 1
