"""Eligibility rules have a budget (issue 10, item 1): ``custom`` has size limits, a rule too
costly whatever the request is refused at save, and a request's rules run only while their
estimated cost fits its allowance; a rule over it is not eligible, and explain, a warning log and
``offerd_rule_budget_exceeded_total`` say so."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from offerd.offers import budget, targeting
from tests.support.app import TestApp, basic
from tests.support.catalog import offer, seed
from tests.support.server import LiveServer
from tests.support.sync import Admin
from tests.support.sync import seed as seed_live

ASK = "/api/v2/personalized_offers"
EXPLAIN = "/sites/acme/decisions/explain"
# the worst shape a rule may have (two comprehensions, one inside the other): true for any
# non-empty tags, after a million comparisons when the lists are at their limit
WORST_RULE = (
    "custom.tags.exists(t, custom.vip_tags.exists(v, v == t + '!')) || size(custom.tags) > 0"
)


def hostile_custom() -> dict[str, Any]:
    """The largest lists custom may hold (their strings short enough for the 1 MiB body)."""
    n = budget.CUSTOM_MAX_ITEMS
    return {
        "tags": [f"tag-{i:04d}-" + "x" * 80 for i in range(n)],
        "vip_tags": [f"vip-{i:04d}-" + "x" * 80 for i in range(n)],
    }


def exceeded_total() -> float:
    return REGISTRY.get_sample_value("offerd_rule_budget_exceeded_total") or 0.0


# --- input: custom's size limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom", "says"),
    [
        ({f"k{i}": i for i in range(budget.CUSTOM_MAX_KEYS + 1)}, "keys"),
        ({"tags": list(range(budget.CUSTOM_MAX_ITEMS + 1))}, "items"),
        ({"note": "x" * (budget.CUSTOM_MAX_STRING + 1)}, "characters"),
        ({"k" * (budget.CUSTOM_MAX_STRING + 1): 1}, "characters"),
        ({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "nested"),
        ({"a": [[[[[1]]]]]}, "nested"),
        ({f"l{i}": list(range(900)) for i in range(6)}, "values"),
    ],
    ids=["keys", "list", "string", "key", "depth-objects", "depth-lists", "values"],
)
async def test_oversized_custom_is_a_400_naming_custom(
    app: TestApp, custom: dict[str, Any], says: str
) -> None:
    keys = await seed(app)
    r = await app.post(ASK, keys["publishable"], json={"customer_id": "cus_1", "custom": custom})
    assert r.status_code == 400, r.text
    error = r.json()
    assert (error["api_error_code"], error["param"], error["type"]) == (
        "param_wrong_value",
        "custom",
        "invalid_request",
    )
    assert says in error["message"]
    assert await app.fetch("SELECT id FROM personalized_offers") == []


async def test_custom_at_its_limits_is_accepted(app: TestApp) -> None:
    keys = await seed(app)
    custom = {
        **{f"k{i}": "x" * budget.CUSTOM_MAX_STRING for i in range(budget.CUSTOM_MAX_KEYS - 1)},
        "deep": {"b": {"c": {"d": [1, 2]}}},
    }
    r = await app.post(ASK, keys["publishable"], json={"customer_id": "cus_1", "custom": custom})
    assert r.status_code == 200, r.text
    assert budget.check_custom(hostile_custom()) == budget.CUSTOM_MAX_ITEMS


async def test_form_encoded_custom_has_the_same_limits(app: TestApp) -> None:
    keys = await seed(app)
    r = await app.post(
        ASK,
        keys["publishable"],
        data={"customer_id": "cus_1", "custom": '{"a": [[[[[1]]]]]}'},
    )
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "custom"


# --- save: too costly whatever the request ------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "[1, 2].exists(a, [1, 2].exists(b, [1, 2].exists(c, a + b + c > 5)))",
        "custom.a.all(x, custom.b.map(y, custom.c.filter(z, z == y)).size() > 0)",
        # 7 nested [0, ..., 9].exists: the 6 s a request
        "".join(f"[0,1,2,3,4,5,6,7,8,9].exists(x{i}, " for i in range(7))
        + "x0 + x1 + x2 + x3 + x4 + x5 + x6 > 100"
        + ")" * 7,
    ],
)
async def test_a_rule_nested_too_deep_is_refused_at_save(app: TestApp, rule: str) -> None:
    await seed(app)
    r = await app.admin("PUT", "/sites/acme/offers/deep", offer(eligibility=rule))
    assert r.status_code == 400, r.text
    error = r.json()
    assert (error["api_error_code"], error["param"]) == ("param_wrong_value", "eligibility")
    assert "nested" in error["message"] and "at most 2" in error["message"]
    assert await app.fetch("SELECT id FROM offers WHERE id = 'deep'") == []


async def test_a_rule_over_budget_for_any_input_is_refused_at_save(app: TestApp) -> None:
    await seed(app)
    # two nested macros over a 900-item list literal: billions of steps whatever is sent
    big = "[" + ",".join(["1"] * 900) + "]"
    rule = f"{big}.exists(a, {big}.exists(b, a == b + 1))"
    r = await app.admin("PUT", "/sites/acme/offers/costly", offer(eligibility=rule))
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "eligibility"
    assert "evaluation budget" in r.json()["message"]


def test_the_nesting_scan_respects_strings_and_comments() -> None:
    source = (
        "custom.s == 'a.exists(x, b.exists(y, c.exists(z, true)))' // d.all(p, e.all(q, f.all(r,\n"
        ' && custom.t != r"g.map(u, h.map(v, i.map(w, w)))"'
        " && custom.l.exists(x, custom.m.exists(y, x == y))"
    )
    program = targeting.compile_rule(source)  # compiles and passes: only 2 real levels
    assert program.source == source
    assert budget.Cost.of(source).nesting == 2


def test_catalog_apply_refuses_the_same_rules() -> None:
    # ``offerd catalog apply`` checks each rule with targeting.compile_rule, as the admin API does
    with pytest.raises(targeting.RuleError, match="nested 3 deep"):
        targeting.compile_rule("[1].all(a, [1].all(b, [1].all(c, true)))")


# --- run: a request's allowance ----------------------------------------------------------------


async def test_a_rule_over_the_request_budget_is_not_eligible_and_explained(
    app: TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(eligibility=WORST_RULE))
    # small lists: the rule fits the budget, runs, and is true
    small = {"tags": ["a", "b"], "vip_tags": ["b"]}
    r = await app.post(ASK, keys["publishable"], json={"customer_id": "cus_1", "custom": small})
    assert [po["offer_id"] for po in r.json()["personalized_offers"]] == ["stay"]

    before = exceeded_total()
    r = await app.post(
        ASK, keys["publishable"], json={"customer_id": "cus_1", "custom": hostile_custom()}
    )
    assert r.status_code == 200, r.text
    assert r.json()["personalized_offers"] == []
    assert exceeded_total() == before + 1
    (line,) = [rec for rec in caplog.records if "rule_budget_exceeded" in rec.getMessage()]
    assert line.levelname == "WARNING"
    assert "acme" in line.getMessage() and "stay" in line.getMessage()

    r = await app.admin(
        "POST",
        EXPLAIN,
        {"customer_id": "cus_1", "subscription_id": "sub_1", "custom": hostile_custom()},
    )
    assert r.status_code == 200, r.text
    (stay,) = r.json()["candidates"]
    assert stay["eligible"] is False
    assert stay["reason"].startswith("rule budget exceeded")
    assert stay["expression"]["source"] == WORST_RULE
    assert stay["expression"]["error"] == stay["reason"]
    assert exceeded_total() == before + 2


async def test_the_budget_is_the_requests_not_each_rules(app: TestApp) -> None:
    """Many rules that each fit the budget do not, together, make a request unbounded."""
    await seed(app)
    rule = "custom.tags.exists(t, t in custom.vip_tags) || true"
    custom = {"tags": list(range(400)), "vip_tags": list(range(1000, 1400))}
    cost = budget.Cost.of(rule).units(400)
    fit = budget.REQUEST_BUDGET // cost
    assert 1 <= fit <= 20
    for i in range(fit + 1):
        await app.put("acme", f"offers/o{i}", offer(eligibility=rule, priority=i))
    await app.put("acme", "offers/stay", offer(status="paused"))
    r = await app.admin(
        "POST", EXPLAIN, {"customer_id": "cus_1", "subscription_id": "sub_1", "custom": custom}
    )
    verdicts = [
        (c["offer_id"], c["eligible"]) for c in r.json()["candidates"] if c["priority"] >= 0
    ]
    ran = [o for o, eligible in verdicts if eligible]
    over = [
        c["offer_id"]
        for c in r.json()["candidates"]
        if (c["reason"] or "").startswith("rule budget exceeded")
    ]
    assert len(ran) == fit and len(over) == 1
    assert over == ["o0"]  # the lowest priority, judged last


# --- the outcome: a hostile request stalls no one ------------------------------------------------


def test_a_hostile_request_stalls_neither_healthz_nor_other_sites(live: LiveServer) -> None:
    """Hostile requests (custom at its limits, the worst rule allowed) run back to back from
    two clients; meanwhile /healthz and another site's personalized_offers answer, and every
    hostile request itself ends, with a decision (the rule over budget: no offer)."""
    keys = seed_live(live.base_url)
    other = seed_live(live.base_url, "other")
    Admin(live.base_url).put("/sites/acme/offers/stay", offer(eligibility=WORST_RULE))
    hostile_body = {"customer_id": "cus_1", "custom": hostile_custom()}
    stop = threading.Event()
    attacking = threading.Event()
    hostile: list[httpx.Response] = []
    before = exceeded_total()

    # generous: a stalled server should fail the assertions, not the transport
    with httpx.Client(base_url=live.base_url, timeout=180) as client:

        def attack() -> None:
            while not stop.is_set():
                attacking.set()
                hostile.append(
                    client.post(ASK, json=hostile_body, headers=basic(keys["publishable"]))
                )

        def victim() -> list[httpx.Response]:
            assert attacking.wait(timeout=60)
            try:
                return [
                    client.get("/healthz"),
                    client.post(
                        ASK, json={"customer_id": "cus_1"}, headers=basic(other["publishable"])
                    ),
                    client.get("/healthz"),
                ]
            finally:
                stop.set()

        with ThreadPoolExecutor(max_workers=3) as pool:
            attackers = [pool.submit(attack) for _ in range(2)]
            answered = pool.submit(victim).result()
            for a in attackers:
                a.result()

    assert [r.status_code for r in answered] == [200, 200, 200]
    assert [po["offer_id"] for po in answered[1].json()["personalized_offers"]] == ["stay"]
    assert hostile, "the attackers sent nothing"
    assert {r.status_code for r in hostile} == {200}
    assert all(r.json()["personalized_offers"] == [] for r in hostile)
    assert exceeded_total() == before + len(hostile)
