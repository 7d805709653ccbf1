"""Experiment arms (pure): deterministic, sticky, weighted assignment.

scipy is not installed in this project's virtualenv, so the chi-square statistics are computed
here and their p-values come from the closed form of the chi-square survival function for an
integer number of degrees of freedom (``chi2_sf`` below). The critical values at p = 0.001 are
written out too, and ``test_chi2_sf_matches_published_critical_values`` checks the two against
each other, so neither can be wrong silently.

Every sample below is a fixed list of customer ids and the hash is deterministic, so each test
has a single, reproducible outcome: at p = 0.001 a correct implementation fails a given test with
probability 1/1000 for the particular ids chosen, and then fails it every time (not flakily).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from offerd.offers import experiments
from offerd.offers.experiments import HOLDOUT, Arm, Experiment
from offerd.offers.models import ExperimentIn

pytestmark = pytest.mark.unit

N = 100_000
CUSTOMERS = [f"cus_{i}" for i in range(N)]
SITE = "acme"

# Upper 0.1 % points of the chi-square distribution (e.g. NIST/SEMATECH e-Handbook, table
# 1.3.6.7.4, "upper-tail critical values", column 0.001): a statistic above them has a p-value
# below 0.001. df = k - 1 for a goodness-of-fit test over k arms, (r - 1)(c - 1) for an r x c
# contingency table.
CRITICAL_P001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467}


def chi2_sf(x: float, k: int) -> float:
    """P(X >= x) for X ~ chi-square with k (integer) degrees of freedom, in closed form.

    Even k: exp(-x/2) * sum_{i < k/2} (x/2)^i / i!.
    Odd k:  erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2) * sum_{i < (k-1)/2} x^i / (3*5*...*(2i+1)).
    """
    if x <= 0:
        return 1.0
    half = x / 2
    if k % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, k // 2):
            term *= half / i
            total += term
        return math.exp(-half) * total
    total, term = 0.0, 1.0
    for i in range((k - 1) // 2):
        if i:
            term *= x / (2 * i + 1)
        total += term
    return math.erfc(math.sqrt(half)) + math.sqrt(2 * x / math.pi) * math.exp(-half) * total


def goodness_of_fit(counts: Sequence[int], weights: Sequence[int]) -> tuple[float, int]:
    n, total = sum(counts), sum(weights)
    statistic = sum(
        (observed - n * w / total) ** 2 / (n * w / total)
        for observed, w in zip(counts, weights, strict=True)
    )
    return statistic, len(counts) - 1


def contingency(table: Sequence[Sequence[int]]) -> tuple[float, int]:
    n = sum(map(sum, table))
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    statistic = 0.0
    for i, row in enumerate(table):
        for j, observed in enumerate(row):
            expected = rows[i] * cols[j] / n
            statistic += (observed - expected) ** 2 / expected
    return statistic, (len(rows) - 1) * (len(cols) - 1)


def experiment(experiment_id: str, weights: Sequence[int], holdout: bool = False) -> Experiment:
    arms = [Arm(f"v{i}", w, f"offer_{i}") for i, w in enumerate(weights)]
    if holdout:
        arms[-1] = Arm(HOLDOUT, weights[-1], None)
    return Experiment(experiment_id, tuple(arms))


@pytest.mark.parametrize(
    ("k", "critical"),
    # each published critical value has, by definition, an upper tail of 0.001
    sorted(CRITICAL_P001.items()),
)
def test_chi2_sf_matches_published_critical_values(k: int, critical: float) -> None:
    assert chi2_sf(critical, k) == pytest.approx(0.001, rel=2e-3)
    # and the function is a survival function: 1 at 0, decreasing
    assert chi2_sf(0, k) == 1.0
    assert chi2_sf(critical / 2, k) > 0.001 > chi2_sf(critical * 2, k)


@pytest.mark.parametrize(
    ("weights", "holdout"),
    [
        # the plain A/B split
        ((50, 50), False),
        # two variants and a 10 % holdout: the holdout arm is an arm like any other
        ((70, 20, 10), True),
        # a very skewed split: the small arm must still get ~1 %, not 0 or 2 %
        ((1, 99), False),
        # weights need not add up to 100
        ((3, 3, 3, 1), True),
        # the largest weight the API takes against the smallest
        ((10_000, 1), False),
    ],
)
def test_arm_shares_match_the_weights(weights: tuple[int, ...], holdout: bool) -> None:
    exp = experiment("exp_1", weights, holdout)
    seen = Counter(experiments.assign(SITE, exp, c).id for c in CUSTOMERS)
    counts = [seen[a.id] for a in exp.arms]
    assert sum(counts) == N  # every customer gets exactly one of the arms
    statistic, df = goodness_of_fit(counts, weights)
    assert statistic < CRITICAL_P001[df], (counts, statistic)
    assert chi2_sf(statistic, df) > 0.001


def test_the_chi_square_check_can_fail() -> None:
    """The statistic rejects an assignment that ignores the weights (a check of the check)."""
    exp = experiment("exp_1", (50, 50))
    seen = Counter(experiments.assign(SITE, exp, c).id for c in CUSTOMERS)
    counts = [seen[a.id] for a in exp.arms]
    statistic, df = goodness_of_fit(counts, (60, 40))
    assert statistic > CRITICAL_P001[df]


def test_the_same_customer_always_gets_the_same_arm() -> None:
    exp = experiment("exp_1", (70, 20, 10), holdout=True)
    first = [experiments.assign(SITE, exp, c).id for c in CUSTOMERS[:5000]]
    again = [experiments.assign(SITE, exp, c).id for c in CUSTOMERS[:5000]]
    assert first == again
    # a new Experiment object with the same id and arms (as after a restart or in another
    # process) places every customer identically: nothing is stored, nothing is random
    rebuilt = Experiment("exp_1", tuple(Arm(a.id, a.weight, a.offer_id) for a in exp.arms))
    assert [experiments.assign(SITE, rebuilt, c).id for c in CUSTOMERS[:5000]] == first
    # and all three arms were actually reached, so the comparison is not vacuous
    assert set(first) == {"v0", "v1", HOLDOUT}


def test_the_point_depends_on_site_experiment_and_customer() -> None:
    p = experiments.point("acme", "exp_1", "cus_1")
    assert 0 <= p < 1
    assert experiments.point("acme", "exp_1", "cus_1") == p
    # each of the three inputs moves the point
    assert experiments.point("other", "exp_1", "cus_1") != p
    assert experiments.point("acme", "exp_2", "cus_1") != p
    assert experiments.point("acme", "exp_1", "cus_2") != p
    # the inputs are kept apart: ("a", "bc") is not ("ab", "c")
    assert experiments.point("s", "ab", "c") != experiments.point("s", "a", "bc")


def test_points_are_uniform_on_the_unit_interval() -> None:
    """Ten equal bins of the points: the basis of every weight set being honoured."""
    bins = Counter(int(experiments.point(SITE, "exp_1", c) * 10) for c in CUSTOMERS)
    assert set(bins) == set(range(10))
    statistic = sum((bins[b] - N / 10) ** 2 / (N / 10) for b in range(10))
    # df = 9: the p = 0.001 critical value is 27.877 (same table as above)
    assert statistic < 27.877
    assert chi2_sf(statistic, 9) > 0.001


@pytest.mark.parametrize(
    ("weights_1", "weights_2"),
    [
        # two A/B tests on the same customers: a 2 x 2 table, df = 1
        ((50, 50), (50, 50)),
        # a 3-arm test and a 3-arm test with holdout: 3 x 3, df = 4
        ((1, 1, 1), (70, 20, 10)),
    ],
)
def test_arms_of_two_experiments_are_independent(
    weights_1: tuple[int, ...], weights_2: tuple[int, ...]
) -> None:
    """Being in arm v0 of one experiment says nothing about the arm in another one."""
    one = experiment("exp_1", weights_1)
    two = experiment("exp_2", weights_2, holdout=True)
    pairs = Counter(
        (experiments.assign(SITE, one, c).id, experiments.assign(SITE, two, c).id)
        for c in CUSTOMERS
    )
    table = [[pairs[(a.id, b.id)] for b in two.arms] for a in one.arms]
    statistic, df = contingency(table)
    assert statistic < CRITICAL_P001[df], (table, statistic)


def test_two_experiments_with_correlated_assignment_would_be_caught() -> None:
    """The contingency check rejects a dependent pair (the same experiment twice)."""
    one = experiment("exp_1", (50, 50))
    pairs = Counter(
        (experiments.assign(SITE, one, c).id, experiments.assign(SITE, one, c).id)
        for c in CUSTOMERS[:10_000]
    )
    table = [[pairs[(a.id, b.id)] for b in one.arms] for a in one.arms]
    statistic, df = contingency(table)
    assert statistic > CRITICAL_P001[df]


def test_changing_the_weights_moves_only_customers_in_the_changed_part() -> None:
    """From 50/50 to 60/40 some B customers move to A; no A customer moves to B."""
    before = experiment("exp_1", (50, 50))
    after = experiment("exp_1", (60, 40))
    moves = Counter(
        (experiments.assign(SITE, before, c).id, experiments.assign(SITE, after, c).id)
        for c in CUSTOMERS[:20_000]
    )
    assert moves[("v0", "v1")] == 0
    # about 10 % of everyone moves from v1 to v0
    assert 1_500 < moves[("v1", "v0")] < 2_500


A, B, H = Arm("a", 1, "offer_a"), Arm("b", 3, "offer_b"), Arm(HOLDOUT, 1, None)


@pytest.mark.parametrize(
    ("arms", "at", "expected"),
    [
        # the cumulative weights of (a 1, b 3, holdout 1) split [0, 1) at 0.2 and 0.8
        ((A, B, H), 0.0, "a"),  # the very start belongs to the first arm
        ((A, B, H), 0.1999999, "a"),  # just below the first boundary
        ((A, B, H), 0.2, "b"),  # a boundary belongs to the arm that starts there
        ((A, B, H), 0.7999999, "b"),
        ((A, B, H), 0.8, HOLDOUT),
        ((A, B, H), 0.9999999999, HOLDOUT),  # the largest point below 1
        # point() divides a 64-bit integer by 2**64 in floating point, which can round up to
        # exactly 1.0 (for the top 2**10 integers): that still lands in the last arm
        ((A, B, H), 1.0, HOLDOUT),
        # order matters: the same arms listed differently cover different ranges
        ((H, A, B), 0.1, HOLDOUT),
        ((H, A, B), 0.3, "a"),  # holdout [0, 0.2), a [0.2, 0.4), b [0.4, 1)
        # an arm alone takes everything
        ((B,), 0.0, "b"),
        ((B,), 0.999, "b"),
        # a zero-weight arm (only possible in pure code; the API refuses it) never wins
        ((Arm("zero", 0, "z"), B), 0.0, "b"),
        ((B, Arm("zero", 0, "z")), 0.9999999999, "b"),
    ],
)
def test_pick(arms: tuple[Arm, ...], at: float, expected: str) -> None:
    assert experiments.pick(arms, at).id == expected


@pytest.mark.parametrize(
    "arms",
    [
        # no weight at all: there is nothing to place a customer on
        (Arm("a", 0, "x"), Arm("b", 0, "y")),
        # no arms
        (),
        # a negative total is no distribution either
        (Arm("a", -1, "x"),),
    ],
)
def test_pick_refuses_a_non_positive_total(arms: tuple[Arm, ...]) -> None:
    with pytest.raises(ValueError, match="positive total weight"):
        experiments.pick(arms, 0.5)


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        # a zero weight is refused when the experiment is saved (weight >= 1)
        ([{"id": "a", "offer_id": "x", "weight": 0}, {"id": "h", "weight": 1}], "greater than"),
        # two holdout arms would make "the holdout" ambiguous
        (
            [
                {"id": "a", "offer_id": "x", "weight": 1},
                {"id": "h", "weight": 1},
                {"id": "g", "weight": 1},
            ],
            "at most one arm",
        ),
        # the same offer in two arms
        (
            [{"id": "a", "offer_id": "x", "weight": 1}, {"id": "b", "offer_id": "x", "weight": 1}],
            "only one arm",
        ),
        # arm ids name arms in results: they must be unique
        (
            [{"id": "a", "offer_id": "x", "weight": 1}, {"id": "a", "offer_id": "y", "weight": 1}],
            "unique",
        ),
        # one arm is no experiment
        ([{"id": "a", "offer_id": "x", "weight": 1}], "at least 2"),
    ],
)
def test_experiment_definitions_are_validated(arms: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentIn.model_validate({"name": "E", "arms": arms})
