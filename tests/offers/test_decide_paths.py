"""The serving walk and the explained walk decide alike (pure, property-based).

``decide`` has two walks: the serving one stops at the winner and skips what it need not
compute, the explained one judges every offer. Over random catalogs (rules, windows, statuses,
guards with history, experiments with holdouts) and customers, they must pick the same offer,
experiment and arm, and the winner must be one the explanation calls eligible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offerd.offers import guards, targeting
from offerd.offers.decide import decide
from offerd.offers.experiments import Arm, Experiment
from offerd.offers.targeting import Candidate

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    count = draw(st.integers(1, 10))
    offers: list[Candidate] = []
    history: dict[str, list[guards.Seen]] = {}
    for i in range(count):
        oid = f"o{i}"
        rule = draw(st.sampled_from([None, f"custom.e{i} == true", "custom.missing == 1"]))
        window = draw(st.sampled_from(["open", "open", "open", "future", "past"]))
        guarded = draw(st.booleans())
        offers.append(
            Candidate(
                id=oid,
                version=1,
                priority=draw(st.integers(0, 5)),
                starts_at=NOW + timedelta(days=1) if window == "future" else None,
                ends_at=NOW - timedelta(days=1) if window == "past" else None,
                business_entity_id=None,
                program=targeting.compile_rule(rule) if rule else None,
                definition={},
                guards=guards.Guards(dismiss_cooldown_days=7) if guarded else None,
                status=draw(st.sampled_from(["active", "active", "active", "paused"])),
            )
        )
        if guarded and draw(st.booleans()):
            history[oid] = [guards.Seen("dismissed", NOW - timedelta(days=2))]
    ids = [o.id for o in offers]
    shuffled = draw(st.permutations(ids))
    experiments_by_offer: dict[str, Experiment] = {}
    start = 0
    for e in range(draw(st.integers(0, 3))):
        size = draw(st.integers(1, 3))
        members = shuffled[start : start + size]
        start += size
        if not members:
            break
        arms = [Arm(f"a{j}", draw(st.integers(1, 5)), m) for j, m in enumerate(members)]
        if draw(st.booleans()):
            arms.append(Arm("holdout", draw(st.integers(1, 5)), None))
        experiment = Experiment(f"x{e}", tuple(arms))
        for m in members:
            experiments_by_offer[m] = experiment
    custom = {f"e{i}": draw(st.booleans()) for i in range(count)}
    return {
        "ranked": targeting.rank(offers),
        "experiments_by_offer": experiments_by_offer,
        "history": history,
        "custom": custom,
        "customer_id": draw(st.sampled_from([f"cus_{n}" for n in range(20)])),
    }


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_the_serving_walk_decides_as_the_explained_one(scenario: dict[str, object]) -> None:
    ctx = targeting.build_context(
        now=NOW,
        customer={"id": scenario["customer_id"]},
        subscription={},
        user={},
        custom=scenario["custom"],  # type: ignore[arg-type]
        context={},
    )
    common = {
        "now": NOW,
        "site_id": "acme",
        "customer_id": scenario["customer_id"],
        "business_entity_id": None,
        "brand_id": None,
        "history": scenario["history"],
        "experiments_by_offer": scenario["experiments_by_offer"],
    }
    served = decide(scenario["ranked"], ctx, **common)  # type: ignore[arg-type]
    explained = decide(scenario["ranked"], ctx, explain=True, **common)  # type: ignore[arg-type]

    def key(outcome: object) -> tuple[object, ...]:
        return (
            getattr(outcome.offer, "id", None),  # type: ignore[attr-defined]
            getattr(outcome.experiment, "id", None),  # type: ignore[attr-defined]
            getattr(outcome.arm, "id", None),  # type: ignore[attr-defined]
        )

    assert key(served) == key(explained)
    assert served.judgements == []
    if served.offer is not None:
        (judged,) = [j for j in explained.judgements if j.offer_id == served.offer.id]
        assert judged.eligible
