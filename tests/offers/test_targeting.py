"""Eligibility rules: compiling, evaluating, choosing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offerd.offers import targeting
from offerd.offers.decide import decide
from offerd.offers.targeting import Candidate, RuleError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def candidate(id: str, priority: int = 0, expression: str | None = None, **kw: object) -> Candidate:
    return Candidate(
        id=id,
        version=1,
        priority=priority,
        starts_at=kw.get("starts_at"),  # type: ignore[arg-type]
        ends_at=kw.get("ends_at"),  # type: ignore[arg-type]
        business_entity_id=kw.get("business_entity_id"),  # type: ignore[arg-type]
        program=targeting.compile_rule(expression) if expression else None,
        definition={},
    )


def ctx(**custom: object) -> object:
    return targeting.build_context(
        now=NOW,
        customer={"id": "c1"},
        subscription={"status": "active", "trial_end": NOW + timedelta(days=2)},
        user={"roles": ["admin"]},
        custom=custom,
        context={"locale": "fr-FR"},
    )


@pytest.mark.parametrize(
    ("expression", "line", "column"),
    [
        ("a &&", 1, 5),
        ("custom.x ==", 1, 12),
        ("a +\n* b", 2, 1),
        ("'unterminated", 1, 1),
    ],
)
def test_compile_errors_carry_their_position(expression: str, line: int, column: int) -> None:
    with pytest.raises(RuleError) as info:
        targeting.compile_rule(expression)
    assert (info.value.line, info.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(info.value)


@pytest.mark.parametrize(
    ("expression", "eligible"),
    [
        ("subscription.status == 'active'", True),
        ("subscription.trial_end - now < duration('72h')", True),
        ("subscription.trial_end - now < duration('24h')", False),
        ("'admin' in user.roles", True),
        ("custom.missing == 1", False),  # evaluation error: ineligible, not raised
        ("custom.n > 2", True),
        ("custom.nested.flag", True),
        ("'x'", False),  # not a boolean
    ],
)
def test_judge(expression: str, eligible: bool) -> None:
    verdict = targeting.judge(
        candidate("o", expression=expression),
        ctx(N=3, Nested={"Flag": True}),
        now=NOW,
        business_entity_id=None,
    )
    assert verdict.eligible is eligible


def test_window_and_entity() -> None:
    c = ctx()
    later = candidate("o", starts_at=NOW + timedelta(seconds=1))
    ended = candidate("o", ends_at=NOW)
    eu = candidate("o", business_entity_id="eu")
    assert targeting.judge(later, c, now=NOW, business_entity_id=None).reason == "not started"
    assert targeting.judge(ended, c, now=NOW, business_entity_id=None).reason == "ended"
    assert not targeting.judge(eu, c, now=NOW, business_entity_id="us").eligible
    assert targeting.judge(eu, c, now=NOW, business_entity_id="eu").eligible
    # without the header the site's whole catalog is in scope
    assert targeting.judge(eu, c, now=NOW, business_entity_id=None).eligible


def test_decide_takes_the_highest_priority_eligible() -> None:
    ranked = targeting.rank(
        [
            candidate("b", 5),
            candidate("a", 5),
            candidate("top", 9, "custom.vip == true"),
            candidate("low", 1),
        ]
    )
    assert [c.id for c in ranked] == ["top", "a", "b", "low"]

    def winner(**custom: object) -> str | None:
        outcome = decide(
            ranked,
            ctx(**custom),
            now=NOW,
            site_id="s",
            customer_id="c",
            business_entity_id=None,
            brand_id=None,
            history={},
            experiments_by_offer={},
        )
        return outcome.offer.id if outcome.offer else None

    assert winner(vip=True) == "top"
    assert winner(vip=False) == "a"
    assert (
        decide(
            [],
            ctx(),
            now=NOW,
            site_id="s",
            customer_id="c",
            business_entity_id=None,
            brand_id=None,
            history={},
            experiments_by_offer={},
        ).offer
        is None
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("subscription.status == 'active'", {"subscription": {"status"}}),
        (
            "has(subscription.trial_end) && subscription . plan_id.startsWith('pro')",
            {"subscription": {"trial_end", "plan_id"}},
        ),
        (
            "custom.bucket == 1 && now > timestamp('2026-01-01T00:00:00Z')",
            {"custom": None, "now": None},
        ),
        # any use but selecting a field reads the whole record
        ("subscription.size() > 3", {"subscription": None}),
        ("subscription['status'] == 'active'", {"subscription": None}),
        ("size(customer) > 0 && customer.email != ''", {"customer": None}),
        ("[1].exists(user, user > 0)", {"user": None}),
        ("user.roles.exists(r, r == 'admin')", {"user": {"roles"}, "r": None}),
        ("context.locale == 'fr'", {"context": {"locale"}}),
    ],
)
def test_reads_names_the_fields_the_rules_select(
    expression: str, expected: dict[str, set[str] | None]
) -> None:
    reads = targeting.reads([targeting.compile_rule(expression)])
    assert reads == {k: frozenset(v) if v is not None else None for k, v in expected.items()}


@pytest.mark.parametrize(
    "expression",
    [
        "subscription.status == 'active' && subscription.trial_end - now < duration('72h')",
        "subscription.size() == 2",
        "has(subscription.coupon_ids) || !has(subscription.plan_id)",
        "customer.id == 'c1' && context.locale.startsWith('fr')",
        "user.roles.exists(r, r == 'admin') && custom.x == 1",
        "'subscription' in context",
    ],
)
def test_a_context_of_what_is_read_decides_as_the_whole(expression: str) -> None:
    program = targeting.compile_rule(expression)
    values = {
        "now": NOW,
        "customer": {"id": "c1", "email": "a@example.com", "first_name": None},
        "subscription": {"status": "active", "trial_end": NOW + timedelta(days=2), "plan_id": None},
        "user": {"roles": ["admin"], "email": "u@example.com"},
        "custom": {"X": 1},
        "context": {"locale": "fr-FR", "device": "web"},
    }
    whole = targeting.build_context(**values)  # type: ignore[arg-type]
    narrow = targeting.build_context(**values, wanted=targeting.reads([program]))  # type: ignore[arg-type]
    assert program.execute(narrow) == program.execute(whole)
