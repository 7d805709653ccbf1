"""Decisioning through the public API: experiments with a holdout arm, brands, business entities,
offer versions and statuses."""

from __future__ import annotations

from typing import Any

import pytest

from offerd.offers import experiments
from offerd.offers.experiments import Arm, Experiment
from offerd.queue.runtime import build_worker
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

PO = "/api/v2/personalized_offers"
FULFILLMENTS = "/api/v2/offer_fulfillments"

ARMS = [
    {"id": "A", "offer_id": "a", "weight": 1},
    {"id": "B", "offer_id": "b", "weight": 1},
    {"id": "holdout", "weight": 1},
]
EXPERIMENT = Experiment("exp", tuple(Arm(a["id"], a["weight"], a.get("offer_id")) for a in ARMS))


def customers_in(arm: str, count: int = 2, experiment: Experiment = EXPERIMENT) -> list[str]:
    """The first ``count`` customer ids that the assignment puts in ``arm`` (computed with the
    same pure function the service uses, so the test knows each customer's arm up front)."""
    found = [
        c
        for c in (f"cus_x{i}" for i in range(1000))
        if experiments.assign("acme", experiment, c).id == arm
    ]
    assert len(found) >= count
    return found[:count]


def nonzero(results: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per-arm counts without zeros (an arm or count with nothing may be listed or left out)."""
    out = {arm: {k: n for k, n in counts.items() if n} for arm, counts in results.items()}
    return {arm: counts for arm, counts in out.items() if counts}


async def ask(app: TestApp, key: str, customer: str, **params: Any) -> dict[str, Any]:
    r = await app.post(PO, key, json={"customer_id": customer, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def with_experiment(app: TestApp, status: str = "running") -> dict[str, str]:
    keys = await seed(app)
    await app.put("acme", "offers/a", offer(priority=20, content={"title": "Variant A"}))
    await app.put("acme", "offers/b", offer(priority=20, content={"title": "Variant B"}))
    r = await app.admin(
        "PUT", "/sites/acme/experiments/exp", {"name": "Stay test", "status": status, "arms": ARMS}
    )
    assert r.status_code == 201, r.text
    return keys


# --- experiments -------------------------------------------------------------------------------


async def test_each_arm_gets_its_offer_and_the_holdout_nothing(app: TestApp) -> None:
    keys = await with_experiment(app)
    key = keys["publishable"]
    for arm, offer_id, title in (("A", "a", "Variant A"), ("B", "b", "Variant B")):
        for customer in customers_in(arm):
            (po,) = (await ask(app, key, customer))["personalized_offers"]
            assert (po["offer_id"], po["content"]["title"]) == (offer_id, title)
            (row,) = await app.fetch(
                "SELECT experiment_id, experiment_arm FROM personalized_offers WHERE id = %s",
                po["id"],
            )
            assert row == {"experiment_id": "exp", "experiment_arm": arm}
            (served,) = await app.fetch("SELECT * FROM served WHERE customer_id = %s", customer)
            assert (served["experiment_id"], served["experiment_arm"]) == ("exp", arm)
            assert (served["offer_id"], served["personalized_offer_id"]) == (offer_id, po["id"])
    for customer in customers_in("holdout"):
        body = await ask(app, key, customer)
        # the offer 'stay' is eligible too, but the holdout arm means no offer at all
        assert body["personalized_offers"] == []
        assert isinstance(body["expires_at"], int)
        (served,) = await app.fetch("SELECT * FROM served WHERE customer_id = %s", customer)
        assert (served["experiment_id"], served["experiment_arm"]) == ("exp", "holdout")
        assert served["offer_id"] is None and served["personalized_offer_id"] is None
        assert (
            await app.fetch("SELECT 1 FROM personalized_offers WHERE customer_id = %s", customer)
            == []
        )


async def test_assignment_is_sticky_across_requests(app: TestApp) -> None:
    keys = await with_experiment(app)
    (customer,) = customers_in("B", 1)
    offers = [
        (await ask(app, keys["publishable"], customer))["personalized_offers"][0]["offer_id"]
        for _ in range(5)
    ]
    assert offers == ["b"] * 5
    rows = await app.fetch("SELECT experiment_arm FROM served WHERE customer_id = %s", customer)
    assert [r["experiment_arm"] for r in rows] == ["B"] * 5


async def test_the_arm_is_on_every_later_event(app: TestApp) -> None:
    keys = await with_experiment(app)
    (customer,) = customers_in("A", 1)
    (po,) = (await ask(app, keys["publishable"], customer))["personalized_offers"]
    r = await app.post(
        "/api/v2/offer_events",
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "type": "viewed"},
    )
    assert r.status_code == 200, r.text
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
    )
    assert r.status_code == 202, r.text
    f = r.json()["offer_fulfillment"]
    r = await app.post(
        f"{FULFILLMENTS}/{f['id']}",
        keys["full_access"],
        json={"id": f["id"], "status": "completed"},
    )
    assert r.status_code == 200, r.text
    events = await app.fetch(
        "SELECT type, experiment_id, experiment_arm FROM offer_events "
        "WHERE personalized_offer_id = %s ORDER BY seq",
        po["id"],
    )
    assert events == [
        {"type": kind, "experiment_id": "exp", "experiment_arm": "A"}
        for kind in ("viewed", "accepted", "fulfilled")
    ]
    (row,) = await app.fetch(
        "SELECT experiment_id, experiment_arm FROM offer_fulfillments WHERE id = %s", f["id"]
    )
    assert row == {"experiment_id": "exp", "experiment_arm": "A"}
    # the admin event log shows them too
    r = await app.admin("GET", f"/sites/acme/offer_events?personalized_offer_id={po['id']}")
    assert {(e["experiment_id"], e["experiment_arm"]) for e in r.json()["offer_events"]} == {
        ("exp", "A")
    }


async def test_experiment_results_per_arm(app: TestApp) -> None:
    keys = await with_experiment(app)
    key = keys["publishable"]
    a1, a2 = customers_in("A")
    (b1,) = customers_in("B", 1)
    h1, h2 = customers_in("holdout")
    issued = {c: (await ask(app, key, c))["personalized_offers"] for c in (a1, a2, b1, h1, h2)}
    for customer in (a1, a2, b1):
        r = await app.post(
            "/api/v2/offer_events",
            key,
            json={"personalized_offer_id": issued[customer][0]["id"], "type": "viewed"},
        )
        assert r.status_code == 200
    r = await app.post(
        FULFILLMENTS, key, json={"personalized_offer_id": issued[a1][0]["id"], "option_id": "talk"}
    )
    assert r.status_code == 202
    r = await app.post(
        "/api/v2/offer_events",
        key,
        json={"personalized_offer_id": issued[b1][0]["id"], "type": "dismissed"},
    )
    assert r.status_code == 200

    r = await app.admin("GET", "/sites/acme/experiments/exp")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["object"], body["status"]) == ("experiment", "running")
    # the holdout arm is shown with an explicit null offer_id
    assert body["arms"] == [{"offer_id": None, **a} for a in ARMS]
    assert nonzero(body["results"]) == {
        "A": {"served": 2, "viewed": 2, "accepted": 1},
        "B": {"served": 1, "viewed": 1, "dismissed": 1},
        "holdout": {"served": 2},
    }
    assert (await app.admin("GET", "/sites/acme/experiments/nope")).status_code == 404


@pytest.mark.parametrize("status", ["stopped", "draft"])
async def test_an_experiment_that_is_not_running_assigns_nobody(app: TestApp, status: str) -> None:
    keys = await with_experiment(app)
    (customer,) = customers_in("holdout", 1)
    (earlier,) = customers_in("A", 1)
    (po_a,) = (await ask(app, keys["publishable"], earlier))["personalized_offers"]
    assert (await ask(app, keys["publishable"], customer))["personalized_offers"] == []
    await app.put("acme", "experiments/exp", {"name": "Stay test", "status": status, "arms": ARMS})

    # the former holdout customer now gets the best offer by priority (a and b tie: a by id)
    (po,) = (await ask(app, keys["publishable"], customer))["personalized_offers"]
    assert po["offer_id"] == "a"
    (row,) = await app.fetch(
        "SELECT experiment_id, experiment_arm FROM personalized_offers WHERE id = %s", po["id"]
    )
    assert row == {"experiment_id": None, "experiment_arm": None}
    served = await app.fetch("SELECT experiment_arm FROM served WHERE customer_id = %s", customer)
    assert [s["experiment_arm"] for s in served] == ["holdout"]  # the earlier one only

    # a personalized offer issued while it ran keeps its arm on later events
    r = await app.post(
        "/api/v2/offer_events",
        keys["publishable"],
        json={"personalized_offer_id": po_a["id"], "type": "viewed"},
    )
    assert r.status_code == 200
    (event,) = await app.fetch(
        "SELECT experiment_id, experiment_arm FROM offer_events WHERE personalized_offer_id = %s",
        po_a["id"],
    )
    assert event == {"experiment_id": "exp", "experiment_arm": "A"}


async def test_two_running_experiments_may_not_share_an_offer(app: TestApp) -> None:
    await with_experiment(app)
    other = {
        "name": "Other",
        "status": "running",
        "arms": [
            {"id": "A", "offer_id": "a", "weight": 1},
            {"id": "S", "offer_id": "stay", "weight": 1},
        ],
    }
    r = await app.admin("PUT", "/sites/acme/experiments/other", other)
    assert r.status_code == 409, r.text
    assert r.json()["api_error_code"] == "invalid_state_for_request"
    assert "'a'" in r.json()["message"] and "'exp'" in r.json()["message"]
    assert [
        e["id"] for e in (await app.admin("GET", "/sites/acme/experiments")).json()["experiments"]
    ] == ["exp"]
    # as a draft it may be saved; it may run once the first one has stopped
    assert (
        await app.admin("PUT", "/sites/acme/experiments/other", {**other, "status": "draft"})
    ).status_code == 201
    assert (await app.admin("PUT", "/sites/acme/experiments/other", other)).status_code == 409
    await app.put(
        "acme", "experiments/exp", {"name": "Stay test", "status": "stopped", "arms": ARMS}
    )
    r = await app.admin("PUT", "/sites/acme/experiments/other", other)
    assert r.status_code == 200, r.text
    # re-saving a running experiment does not clash with itself
    r = await app.admin("PUT", "/sites/acme/experiments/other", other)
    assert r.status_code == 200, r.text


async def test_an_arm_naming_a_missing_offer(app: TestApp) -> None:
    await seed(app)
    arms = [
        {"id": "A", "offer_id": "stay", "weight": 1},
        {"id": "B", "offer_id": "nope", "weight": 1},
    ]
    r = await app.admin(
        "PUT", "/sites/acme/experiments/exp", {"name": "E", "status": "running", "arms": arms}
    )
    assert r.status_code == 404, r.text
    assert r.json()["param"] == "arms[1][offer_id]"
    assert (await app.admin("GET", "/sites/acme/experiments/exp")).status_code == 404


@pytest.mark.parametrize(
    ("arms", "param"),
    [
        # weights are positive integers
        (
            [{"id": "A", "offer_id": "stay", "weight": 0}, {"id": "H", "weight": 1}],
            "arms[0][weight]",
        ),
        # a typo in a key is refused
        ([{"id": "A", "offer": "stay", "weight": 1}, {"id": "H", "weight": 1}], "arms[0][offer]"),
    ],
)
async def test_experiment_validation(app: TestApp, arms: list[dict[str, Any]], param: str) -> None:
    await seed(app)
    r = await app.admin("PUT", "/sites/acme/experiments/exp", {"name": "E", "arms": arms})
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param


# --- brands ------------------------------------------------------------------------------------

BRANDS = [{"id": "b1", "name": "Acme"}, {"id": "b2", "name": "Acme Pro"}]


async def two_brands(app: TestApp) -> dict[str, str]:
    keys = await seed(app)
    r = await app.admin("PUT", "/sites/acme", {"name": "Acme", "brands": BRANDS})
    assert r.status_code == 200, r.text
    await app.put(
        "acme",
        "subscriptions/sub_1",
        {"customer_id": "cus_1", "plan_id": "basic", "status": "active", "brand_id": "b1"},
    )
    await app.put(
        "acme",
        "subscriptions/sub_2",
        {"customer_id": "cus_1", "plan_id": "pro", "status": "active", "brand_id": "b2"},
    )
    await app.put("acme", "offers/for-b1", offer(priority=30, brand_id="b1"))
    await app.put("acme", "offers/for-b2", offer(priority=20, brand_id="b2"))
    return keys


async def test_several_brands_need_a_subscription_id(app: TestApp) -> None:
    keys = await two_brands(app)
    r = await app.post(PO, keys["publishable"], json={"customer_id": "cus_1"})
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "subscription_id"
    assert r.json()["api_error_code"] == "param_wrong_value"
    assert await app.fetch("SELECT 1 FROM personalized_offers") == []


@pytest.mark.parametrize(
    ("subscription", "brand", "winner"),
    [
        # sub_1 is b1's: the b1 offer (priority 30) wins
        ("sub_1", BRANDS[0], "for-b1"),
        # sub_2 is b2's: the b1 offer is out although it ranks higher
        ("sub_2", BRANDS[1], "for-b2"),
    ],
)
async def test_the_subscription_brand_is_returned_and_restricts_offers(
    app: TestApp, subscription: str, brand: dict[str, str], winner: str
) -> None:
    keys = await two_brands(app)
    body = await ask(app, keys["publishable"], "cus_1", subscription_id=subscription)
    assert body["brand"] == {**brand, "object": "brand"}
    (po,) = body["personalized_offers"]
    assert po["offer_id"] == winner
    (row,) = await app.fetch("SELECT brand_id FROM personalized_offers WHERE id = %s", po["id"])
    assert row["brand_id"] == brand["id"]


async def test_an_offer_without_brand_serves_every_brand(app: TestApp) -> None:
    keys = await two_brands(app)
    await app.put("acme", "offers/for-b1", offer(priority=30, brand_id="b1", status="paused"))
    body = await ask(app, keys["publishable"], "cus_1", subscription_id="sub_1")
    # for-b1 is paused, for-b2 is another brand's: the brandless 'stay' remains
    assert body["personalized_offers"][0]["offer_id"] == "stay"
    assert body["brand"]["id"] == "b1"


async def test_an_offer_naming_an_unknown_brand(app: TestApp) -> None:
    await two_brands(app)
    r = await app.admin("PUT", "/sites/acme/offers/x", offer(brand_id="b3"))
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "brand_id"
    assert (await app.admin("GET", "/sites/acme/offers/x")).status_code == 404


# --- business entities -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "winner"),
    [
        # the EU entity's request sees the EU offer (it ranks first)
        ("be_eu", "eu"),
        # the US entity's request doesn't: the offer without entity remains
        ("be_us", "stay"),
        # without the header the whole catalog is in scope
        (None, "eu"),
    ],
)
async def test_business_entity_header_restricts_candidates(
    app: TestApp, header: str | None, winner: str
) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/eu", offer(priority=50, business_entity_id="be_eu"))
    headers = {"chargebee-business-entity-id": header} if header else {}
    r = await app.post(PO, keys["publishable"], json={"customer_id": "cus_1"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["personalized_offers"][0]["offer_id"] == winner


# --- versions and statuses ---------------------------------------------------------------------


async def test_fulfilment_uses_the_version_the_offer_was_issued_with(app: TestApp) -> None:
    keys = await seed(app)
    await app.put(
        "acme",
        "coupons/SAVE50",
        {
            "name": "50% off",
            "discount_type": "percentage",
            "discount_percentage": 50,
            "duration_type": "forever",
        },
    )
    (po1,) = (await ask(app, keys["publishable"], "cus_1", subscription_id="sub_1"))[
        "personalized_offers"
    ]
    assert po1["offer_id"] == "stay"

    v2 = offer(content={"title": "New title", "description": ""})
    v2["options"][0] = {
        **v2["options"][0],
        "billing_action": {"type": "apply_coupon", "coupon_id": "SAVE50"},
    }
    r = await app.admin("PUT", "/sites/acme/offers/stay", v2)
    assert (r.status_code, r.json()["version"]) == (200, 2)
    versions = (await app.admin("GET", "/sites/acme/offers/stay/versions")).json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["definition"]["options"][0]["billing_action"]["coupon_id"] == "SAVE50"
    assert versions[1]["definition"]["options"][0]["billing_action"]["coupon_id"] == "SAVE20"
    assert (await app.admin("GET", "/sites/acme/offers/stay")).json()["version"] == 2

    # accept the offer issued under version 1: version 1's coupon is applied
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po1["id"], "option_id": "discount"},
    )
    assert r.status_code == 202, r.text
    assert await build_worker(app.services).run_once() == 1
    (sub,) = await app.fetch("SELECT coupon_ids FROM subscriptions WHERE id = 'sub_1'")
    assert sub["coupon_ids"] == ["SAVE20"]
    (change,) = await app.fetch("SELECT action FROM subscription_changes")
    assert change["action"] == {"type": "apply_coupon", "coupon_id": "SAVE20"}
    rows = await app.fetch("SELECT offer_id, offer_version FROM personalized_offers")
    assert rows == [{"offer_id": "stay", "offer_version": 1}]

    # a new ask gets version 2's content, and its offer_id still names the offer
    (po2,) = (await ask(app, keys["publishable"], "cus_1", subscription_id="sub_1"))[
        "personalized_offers"
    ]
    assert (po2["offer_id"], po2["content"]["title"]) == ("stay", "New title")
    (row,) = await app.fetch(
        "SELECT offer_version FROM personalized_offers WHERE id = %s", po2["id"]
    )
    assert row["offer_version"] == 2


async def test_a_url_redirect_uses_the_issued_version(app: TestApp) -> None:
    keys = await seed(app)
    (po1,) = (await ask(app, keys["publishable"], "cus_1"))["personalized_offers"]
    v2 = offer()
    v2["options"][2] = {**v2["options"][2], "redirect_url": "https://elsewhere.example/v2"}
    await app.put("acme", "offers/stay", v2)
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po1["id"], "option_id": "talk"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["offer_fulfillment"]["redirect_url"].startswith(
        "https://merchant.example/save?"
    )


async def test_an_unchanged_put_is_not_a_new_version(app: TestApp) -> None:
    await seed(app)
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer())
    assert (r.status_code, r.json()["version"]) == (200, 1)
    versions = (await app.admin("GET", "/sites/acme/offers/stay/versions")).json()["versions"]
    assert [v["version"] for v in versions] == [1]
    assert (await app.admin("GET", "/sites/acme/offers/nope/versions")).status_code == 404


@pytest.mark.parametrize(
    ("status", "served"),
    [
        # only an active offer is served
        ("active", True),
        ("draft", False),
        ("paused", False),
        ("archived", False),
    ],
)
async def test_status(app: TestApp, status: str, served: bool) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(status=status))
    body = await ask(app, keys["publishable"], "cus_1")
    assert len(body["personalized_offers"]) == (1 if served else 0)


async def test_pausing_and_resuming_an_offer(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(status="paused"))
    assert (await ask(app, keys["publishable"], "cus_1"))["personalized_offers"] == []
    await app.put("acme", "offers/stay", offer(status="active"))
    assert len((await ask(app, keys["publishable"], "cus_1"))["personalized_offers"]) == 1
    # an offer issued before it was paused can still be accepted
    (po,) = (await ask(app, keys["publishable"], "cus_1"))["personalized_offers"]
    await app.put("acme", "offers/stay", offer(status="archived"))
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
    )
    assert r.status_code == 202, r.text


async def test_variants_with_different_priorities_are_one_placement(app: TestApp) -> None:
    """The experiment decides the placement its offers compete for: a holdout customer gets
    nothing even though 'stay' is eligible, so a B customer must likewise get b even though
    'stay' ranks between a and b. Otherwise arm B measures 'stay' rather than b, and lift is
    biased (and B's customers leave no served record)."""
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(priority=20))
    await app.put("acme", "offers/a", offer(priority=30, content={"title": "Variant A"}))
    await app.put("acme", "offers/b", offer(priority=10, content={"title": "Variant B"}))
    await app.put("acme", "experiments/exp", {"name": "E", "status": "running", "arms": ARMS})
    key = keys["publishable"]
    (a_customer,) = customers_in("A", 1)
    (holdout,) = customers_in("holdout", 1)
    (b_customer,) = customers_in("B", 1)
    assert [p["offer_id"] for p in (await ask(app, key, a_customer))["personalized_offers"]] == [
        "a"
    ]
    assert (await ask(app, key, holdout))["personalized_offers"] == []
    offers = (await ask(app, key, b_customer))["personalized_offers"]
    assert [p["offer_id"] for p in offers] == ["b"]
    (served,) = await app.fetch("SELECT * FROM served WHERE customer_id = %s", b_customer)
    assert (served["experiment_arm"], served["offer_id"]) == ("B", "b")


@pytest.mark.parametrize("arm", ["A", "holdout"])
async def test_an_idempotent_replay_serves_nothing_new(app: TestApp, arm: str) -> None:
    """A retried request (same chargebee-idempotency-key) is the same decision: one served row."""
    keys = await with_experiment(app)
    (customer,) = customers_in(arm, 1)
    headers = {"chargebee-idempotency-key": f"retry-{arm}"}
    bodies = []
    for _ in range(2):
        r = await app.post(PO, keys["publishable"], json={"customer_id": customer}, headers=headers)
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    assert bodies[0] == bodies[1]
    served = await app.fetch("SELECT experiment_arm FROM served WHERE customer_id = %s", customer)
    assert [s["experiment_arm"] for s in served] == [arm]


async def test_the_arm_is_on_events_the_worker_records(app: TestApp) -> None:
    """A billing_update fulfilled by the worker: its 'fulfilled' event carries the arm too."""
    keys = await with_experiment(app)
    (customer,) = customers_in("B", 1)
    await app.put("acme", f"customers/{customer}", {"email": "b@example.com"})
    await app.put(
        "acme",
        "subscriptions/sub_b",
        {"customer_id": customer, "plan_id": "basic", "status": "active"},
    )
    (po,) = (await ask(app, keys["publishable"], customer, subscription_id="sub_b"))[
        "personalized_offers"
    ]
    r = await app.post(
        FULFILLMENTS,
        keys["publishable"],
        json={"personalized_offer_id": po["id"], "option_id": "discount"},
    )
    assert r.status_code == 202, r.text
    assert await build_worker(app.services).run_once() == 1
    events = await app.fetch(
        "SELECT type, experiment_id, experiment_arm FROM offer_events "
        "WHERE personalized_offer_id = %s ORDER BY seq",
        po["id"],
    )
    assert events == [
        {"type": "accepted", "experiment_id": "exp", "experiment_arm": "B"},
        {"type": "fulfilled", "experiment_id": "exp", "experiment_arm": "B"},
    ]
    results = (await app.admin("GET", "/sites/acme/experiments/exp")).json()["results"]
    assert nonzero(results)["B"] == {"served": 1, "accepted": 1, "fulfilled": 1}
