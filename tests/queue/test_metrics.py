"""The job, delivery and fulfillment counters on /metrics, moved by real work: an accepted
billing_update run by the worker, and its offer_accepted webhook sent to a real receiver."""

from __future__ import annotations

import pytest

from offerd.queue.runtime import build_worker
from tests.notifications.flows import put_channel, report
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed
from tests.support.receiver import Receiver, Reply


async def samples(app: TestApp) -> dict[str, float]:
    r = await app.client.get("/metrics")
    assert r.status_code == 200
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in r.text.splitlines()
        if line.startswith("offerd_") and not line.startswith("offerd_http")
    }


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_counters_move_with_the_work(app: TestApp, receiver: Receiver) -> None:
    keys = await seed(app)
    url = receiver.url_for("/hook")
    await put_channel(
        app, "hooks", {"type": "webhook", "url": url, "event_types": ["offer_accepted"]}
    )
    before = await samples(app)

    po = await personalized_offer(app, keys["publishable"])
    r = await app.post(
        "/api/v2/offer_fulfillments",
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "discount"},
    )
    assert r.status_code == 202, r.text
    assert await build_worker(app.services).run_once() == 2
    assert len(receiver.requests) == 1

    after = await samples(app)
    billing = 'processing_type="billing_update"'
    assert delta(before, after, f'offerd_fulfillments_total{{{billing},status="in_progress"}}') == 1
    assert delta(before, after, f'offerd_fulfillments_total{{{billing},status="completed"}}') == 1
    for kind in ("fulfillment.billing_update", "delivery.send"):
        key = f'offerd_job_runs_total{{kind="{kind}",outcome="succeeded"}}'
        assert delta(before, after, key) == 1, kind
    sent = 'offerd_deliveries_total{channel_type="webhook",outcome="succeeded"}'
    assert delta(before, after, sent) == 1


async def test_a_permanent_delivery_failure_is_counted_and_logged_with_its_ids(
    app: TestApp, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    keys = await seed(app)
    url = receiver.url_for("/gone")
    await put_channel(
        app, "hooks", {"type": "webhook", "url": url, "event_types": ["offer_viewed"]}
    )
    receiver.always(Reply(410, body="gone"))
    before = await samples(app)
    await report(app, keys, "viewed")
    assert await build_worker(app.services).run_once() == 1

    after = await samples(app)
    failed = 'offerd_deliveries_total{channel_type="webhook",outcome="failed"}'
    assert delta(before, after, failed) == 1
    (d,) = await app.fetch("SELECT id FROM deliveries")
    (logged,) = [r for r in caplog.records if "delivery.failed" in str(r.msg)]
    assert logged.levelname == "WARNING"
    assert isinstance(logged.msg, dict)
    assert logged.msg["delivery_id"] == d["id"]
    assert (logged.msg["site_id"], logged.msg["channel_id"]) == ("acme", "hooks")
    assert logged.msg["status_code"] == 410
