"""``POST /admin/v1/sites/{site}/decisions/explain``: every candidate judged, with the reason it is
out, and the winner; nothing recorded."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.offers.test_decisioning import ARMS, customers_in
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

EXPLAIN = "/sites/acme/decisions/explain"
RECORDS = ("personalized_offers", "served", "offer_events", "offer_fulfillments", "jobs")


async def explain(app: TestApp, **body: Any) -> dict[str, Any]:
    """Explain for cus_1 / sub_1 unless told otherwise (a None value leaves the param out)."""
    params = {"customer_id": "cus_1", "subscription_id": "sub_1", **body}
    r = await app.admin("POST", EXPLAIN, {k: v for k, v in params.items() if v is not None})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    assert result["object"] == "decision_explanation"
    return result


def judged(result: dict[str, Any], offer_id: str) -> dict[str, Any]:
    (found,) = [c for c in result["candidates"] if c["offer_id"] == offer_id]
    return found


async def record_counts(app: TestApp) -> dict[str, int]:
    return {t: (await app.fetch(f"SELECT count(*) AS n FROM {t}"))[0]["n"] for t in RECORDS}  # noqa: S608


async def test_the_winner_and_every_candidate_in_rank_order(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/top", offer(priority=50))
    await app.put("acme", "offers/low", offer(priority=1))
    result = await explain(app)
    assert result["winner"] == "top"
    assert result["holdout"] is False
    assert result["experiment"] is None
    assert result["subscription_id"] == "sub_1"
    # all three are judged, highest priority first; the ones that lost were eligible too
    assert [(c["offer_id"], c["priority"], c["eligible"]) for c in result["candidates"]] == [
        ("top", 50, True),
        ("stay", 10, True),
        ("low", 1, True),
    ]
    top = judged(result, "top")
    assert (top["reason"], top["guard"], top["experiment"], top["version"]) == (None, None, None, 1)


async def test_no_winner(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/stay", offer(status="paused"))
    result = await explain(app)
    assert result["winner"] is None
    assert [c["eligible"] for c in result["candidates"]] == [False]


@pytest.mark.parametrize("status", ["draft", "paused", "archived"])
async def test_status(app: TestApp, status: str) -> None:
    await seed(app)
    await app.put("acme", "offers/other", offer(priority=50, status=status))
    result = await explain(app)
    other = judged(result, "other")
    assert other["eligible"] is False
    assert other["reason"] == f"status is {status}"
    # the expression of an offer that is out for its status is not evaluated
    assert other["expression"] is None
    assert result["winner"] == "stay"


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        # starts in an hour
        ({"starts_at": 3600}, "not started"),
        # started two hours ago, ended an hour ago
        ({"starts_at": -7200, "ends_at": -3600}, "ended"),
    ],
)
async def test_window(app: TestApp, window: dict[str, int], reason: str) -> None:
    await seed(app)
    now = int(time.time())
    await app.put(
        "acme", "offers/other", offer(priority=50, **{k: now + v for k, v in window.items()})
    )
    result = await explain(app)
    assert (judged(result, "other")["eligible"], judged(result, "other")["reason"]) == (
        False,
        reason,
    )
    assert result["winner"] == "stay"


async def test_the_clock_is_the_app_clock(app: TestApp) -> None:
    """Explain judges windows at the injected clock's now, as personalized_offers does."""
    await seed(app)
    now = int(time.time())
    await app.put("acme", "offers/stay", offer(ends_at=now + 3600))
    assert (await explain(app))["winner"] == "stay"
    app.clock.advance(7200)
    assert judged(await explain(app), "stay")["reason"] == "ended"


async def test_business_entity(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/eu", offer(priority=50, business_entity_id="be_eu"))
    result = await explain(app, business_entity_id="be_us")
    eu = judged(result, "eu")
    assert eu["eligible"] is False
    assert "business entity" in eu["reason"]
    assert result["winner"] == "stay"
    # the matching entity, or no entity at all, keeps it
    assert (await explain(app, business_entity_id="be_eu"))["winner"] == "eu"
    assert (await explain(app))["winner"] == "eu"


async def test_brand(app: TestApp) -> None:
    await seed(app)
    r = await app.admin(
        "PUT",
        "/sites/acme",
        {"name": "Acme", "brands": [{"id": "b1", "name": "One"}, {"id": "b2", "name": "Two"}]},
    )
    assert r.status_code == 200, r.text
    await app.put(
        "acme",
        "subscriptions/sub_1",
        {"customer_id": "cus_1", "plan_id": "basic", "status": "active", "brand_id": "b1"},
    )
    await app.put("acme", "offers/two", offer(priority=50, brand_id="b2"))
    result = await explain(app)
    two = judged(result, "two")
    assert two["eligible"] is False
    # names the offer's brand and the subscription's
    assert "b2" in two["reason"] and "b1" in two["reason"]
    assert result["brand"] == {"id": "b1", "name": "One"}
    assert result["winner"] == "stay"
    # explain asks what personalized_offers asks: a subscription on a multi-brand site
    r = await app.admin("POST", EXPLAIN, {"customer_id": "cus_1"})
    assert r.status_code == 400
    assert r.json()["param"] == "subscription_id"


@pytest.mark.parametrize(
    ("eligibility", "body", "value"),
    [
        # false: the value is shown
        ("custom.viewcount > 3", {"custom": {"viewcount": 2}}, False),
        # not a boolean: the value is shown as it is
        ("1 + 1", {}, 2),
        ("custom.plan", {"custom": {"plan": "gold"}}, "gold"),
    ],
)
async def test_expression_not_true(
    app: TestApp, eligibility: str, body: dict[str, Any], value: Any
) -> None:
    await seed(app)
    await app.put("acme", "offers/stay", offer(eligibility=eligibility))
    result = await explain(app, **body)
    stay = judged(result, "stay")
    assert stay["eligible"] is False
    assert stay["expression"] == {"source": eligibility, "value": value, "error": None}
    assert stay["reason"] == f"expression is {value!r}"
    assert result["winner"] is None


async def test_expression_true(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/stay", offer(eligibility="custom.viewcount > 3"))
    stay = judged(await explain(app, custom={"viewCount": 5}), "stay")
    assert stay["eligible"] is True
    assert stay["expression"] == {"source": "custom.viewcount > 3", "value": True, "error": None}


async def test_expression_error(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/stay", offer(eligibility="custom.viewcount > 3"))
    stay = judged(await explain(app), "stay")
    assert stay["eligible"] is False
    expression = stay["expression"]
    assert expression["source"] == "custom.viewcount > 3"
    assert expression["value"] is None
    # the evaluation error says what was missing
    assert "viewcount" in expression["error"]
    assert stay["reason"].startswith("expression error")


async def ask(app: TestApp, key: str) -> dict[str, Any]:
    r = await app.post("/api/v2/personalized_offers", key, json={"customer_id": "cus_1"})
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    result: dict[str, Any] = po
    return result


async def view(app: TestApp, key: str) -> None:
    po = await ask(app, key)
    r = await app.post(
        "/api/v2/offer_events", key, json={"personalized_offer_id": po["id"], "type": "viewed"}
    )
    assert r.status_code == 200


async def dismiss(app: TestApp, key: str) -> None:
    po = await ask(app, key)
    r = await app.post(
        "/api/v2/offer_events", key, json={"personalized_offer_id": po["id"], "type": "dismissed"}
    )
    assert r.status_code == 200


async def accept(app: TestApp, key: str) -> None:
    po = await ask(app, key)
    r = await app.post(
        "/api/v2/offer_fulfillments",
        key,
        json={"personalized_offer_id": po["id"], "option_id": "talk"},
    )
    assert r.status_code == 202


@pytest.mark.parametrize(
    ("guards", "history", "words"),
    [
        # one dismissal, cool-down 7 days
        ({"dismiss_cooldown_days": 7}, [dismiss], ["dismissed", "cool-down 7 days"]),
        # two views of at most two per week
        ({"max_views": {"count": 2, "period_days": 7}}, [view, view], ["max_views", "limit 2"]),
        # one acceptance, no re-offer for 30 days
        ({"accept_cooldown_days": 30}, [accept], ["accepted", "no re-offer for 30 days"]),
        # two acceptances of at most two per 90 days
        (
            {"max_acceptances": {"count": 2, "period_days": 90}},
            [accept, accept],
            ["max_acceptances", "limit 2"],
        ),
    ],
)
async def test_each_guard(
    app: TestApp, guards: dict[str, Any], history: list[Any], words: list[str]
) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/fallback", offer(priority=1))
    await app.put("acme", "offers/stay", offer(guards=guards))
    for step in history:
        await step(app, keys["publishable"])
    before = await record_counts(app)
    result = await explain(app)
    stay = judged(result, "stay")
    assert stay["eligible"] is False
    assert stay["guard"] is not None
    for word in words:
        assert word in stay["guard"], stay["guard"]
    assert stay["reason"] == f"guard: {stay['guard']}"
    assert result["winner"] == "fallback"
    assert await record_counts(app) == before


async def with_experiment(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/a", offer(priority=20, content={"title": "Variant A"}))
    await app.put("acme", "offers/b", offer(priority=20, content={"title": "Variant B"}))
    await app.put("acme", "experiments/exp", {"name": "E", "status": "running", "arms": ARMS})


async def test_experiment_arm_not_the_customers(app: TestApp) -> None:
    await with_experiment(app)
    (customer,) = customers_in("B", 1)
    result = await explain(app, customer_id=customer, subscription_id=None)
    a = judged(result, "a")
    assert a["eligible"] is False
    assert a["experiment"] == {"id": "exp", "arm": "B", "arm_offer_id": "b"}
    assert "exp" in a["reason"] and "B" in a["reason"]
    b = judged(result, "b")
    assert (b["eligible"], b["experiment"]) == (
        True,
        {"id": "exp", "arm": "B", "arm_offer_id": "b"},
    )
    assert result["winner"] == "b"
    assert result["experiment"] == {"id": "exp", "arm": "B"}
    assert result["holdout"] is False
    # an offer outside the experiment has no arm
    assert judged(result, "stay")["experiment"] is None


async def test_holdout(app: TestApp) -> None:
    await with_experiment(app)
    (customer,) = customers_in("holdout", 1)
    result = await explain(app, customer_id=customer, subscription_id=None)
    assert result["winner"] is None
    assert result["holdout"] is True
    assert result["experiment"] == {"id": "exp", "arm": "holdout"}
    for offer_id in ("a", "b"):
        judgement = judged(result, offer_id)
        assert judgement["eligible"] is False
        assert "holdout" in judgement["reason"]
        assert judgement["experiment"] == {"id": "exp", "arm": "holdout", "arm_offer_id": None}


async def test_explain_agrees_with_personalized_offers(app: TestApp) -> None:
    """For each arm, explain names the offer personalized_offers then returns."""
    keys = await seed(app)
    await with_experiment_on_seeded(app)
    for arm, expected in (("A", "a"), ("B", "b"), ("holdout", None)):
        (customer,) = customers_in(arm, 1)
        winner = (await explain(app, customer_id=customer, subscription_id=None))["winner"]
        r = await app.post(
            "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": customer}
        )
        served = [po["offer_id"] for po in r.json()["personalized_offers"]]
        assert winner == expected
        assert served == ([expected] if expected else [])


async def with_experiment_on_seeded(app: TestApp) -> None:
    await app.put("acme", "offers/a", offer(priority=20))
    await app.put("acme", "offers/b", offer(priority=20))
    await app.put("acme", "experiments/exp", {"name": "E", "status": "running", "arms": ARMS})


async def test_explain_records_nothing(app: TestApp) -> None:
    keys = await seed(app)
    await with_experiment_on_seeded(app)
    await app.put("acme", "offers/stay", offer(guards={"dismiss_cooldown_days": 1}))
    assert await record_counts(app) == dict.fromkeys(RECORDS, 0)
    for arm in ("A", "B", "holdout"):
        for customer in customers_in(arm):
            await explain(app, customer_id=customer, subscription_id=None)
    await explain(app, request_context={"locale": "fr-FR"}, custom={"x": 1})
    await explain(app, business_entity_id="be_1", origin_device="mobile")
    assert await record_counts(app) == dict.fromkeys(RECORDS, 0)
    # nor does it move the catalog (a write would bump the site's catalog_version)
    (site,) = await app.fetch("SELECT catalog_version FROM sites WHERE id = 'acme'")
    await explain(app)
    assert (await app.fetch("SELECT catalog_version FROM sites WHERE id = 'acme'")) == [site]
    # the public endpoint, by contrast, does record
    r = await app.post(
        "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus_1"}
    )
    assert r.status_code == 200
    assert (await record_counts(app))["personalized_offers"] == 1


async def test_locale_and_device_are_considered(app: TestApp) -> None:
    await seed(app)
    await app.put(
        "acme",
        "offers/stay",
        offer(
            eligibility="context.device == 'mobile'",
            translations={"fr": {"content": {"title": "Avant de partir"}}},
        ),
    )
    result = await explain(app, origin_device="mobile", request_context={"locale": "fr-CA"})
    assert result["winner"] == "stay"
    assert result["locale"] == "fr"
    result = await explain(app, origin_device="desktop")
    assert judged(result, "stay")["expression"]["value"] is False


async def test_explain_needs_the_admin_token(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.client.post("/admin/v1" + EXPLAIN, json={"customer_id": "cus_1"})
    assert r.status_code == 401
    r = await app.post("/admin/v1" + EXPLAIN, keys["full_access"], json={"customer_id": "cus_1"})
    assert r.status_code == 401
    r = await app.admin("POST", "/sites/nope/decisions/explain", {"customer_id": "cus_1"})
    assert r.status_code == 404
    r = await app.admin("POST", EXPLAIN, {})
    assert (r.status_code, r.json()["param"]) == (400, "customer_id")
