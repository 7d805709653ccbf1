"""The funnel metrics' definitions on numbers worked out by hand (pure: no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offerd.reporting.metrics import (
    FULFIL_BUCKETS,
    HIST_SIZE,
    Counts,
    bucket_of,
    funnel_metrics,
    percentile,
    percentiles,
    rate,
)
from offerd.reporting.query import parse

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("num", "den", "expected"), [(1, 3, 0.3333), (0, 5, 0.0), (3, 0, None), (2, 2, 1.0)]
)
def test_rate(num: int, den: int, expected: float | None) -> None:
    assert rate(num, den) == expected


@pytest.mark.parametrize(
    ("seconds", "bucket"), [(0, 0), (1, 0), (1.5, 1), (90, 6), (604800, 16), (10**7, 17)]
)
def test_bucket_of(seconds: float, bucket: int) -> None:
    assert bucket_of(seconds) == bucket


def hist(**at: int) -> list[int]:
    h = [0] * HIST_SIZE
    for index, n in at.items():
        h[int(index[1:])] = n
    return h


@pytest.mark.parametrize(
    ("h", "p", "expected"),
    [
        (hist(), 0.5, None),
        (hist(b6=1), 0.5, 90.0),  # one duration in (60, 120]: the bucket's middle
        (hist(b6=1), 0.9, 114.0),
        (hist(b0=1, b6=1), 0.5, 1.0),  # half the durations <= 1 s
        (hist(b0=9, b6=1), 0.9, 1.0),
        (hist(b0=8, b6=2), 0.9, 90.0),
        (hist(b17=4), 0.5, 604800.0),  # the open bucket answers its lower bound
    ],
)
def test_percentile(h: list[int], p: float, expected: float | None) -> None:
    assert percentile(h, p) == expected


def walked(h: list[int], p: float) -> float | None:
    """The definition walked bucket by bucket: the first non-empty bucket whose running count
    reaches ``p`` of the total, interpolated inside it (the open last one: its lower bound)."""
    total, below = sum(h), 0
    if total == 0:
        return None
    for i, n in enumerate(h):
        if n and below + n >= p * total:
            if i == len(FULFIL_BUCKETS):
                return float(FULFIL_BUCKETS[-1])
            low = 0 if i == 0 else FULFIL_BUCKETS[i - 1]
            return round(low + (FULFIL_BUCKETS[i] - low) * (p * total - below) / n, 1)
        below += n
    raise AssertionError("unreachable")


@given(
    st.lists(st.integers(0, 50) | st.just(0), min_size=HIST_SIZE, max_size=HIST_SIZE),
    st.lists(st.sampled_from([0.01, 0.5, 0.9, 0.99, 1.0]), min_size=1, max_size=3),
)
def test_percentiles_agree_with_the_definition(h: list[int], ps: list[float]) -> None:
    assert percentiles(h, ps) == [walked(h, p) for p in ps]


def test_funnel_metrics_merge_codes_and_rates() -> None:
    c = Counts(decisions=10, viewed=8, dismissed=2, accepted=4, fulfilled=2, failed=2)
    c.add_codes([{"payment_declined": 1}, {"payment_declined": 1, "timeout": 0}])
    c.fulfil_seconds = 100.0
    c.fulfil_hist[bucket_of(40)] += 1
    c.fulfil_hist[bucket_of(60)] += 1
    m = funnel_metrics(c)
    assert m["failed_by_code"] == {"payment_declined": 2, "timeout": 0}
    assert m["view_to_accept_rate"] == 0.5
    assert m["accept_to_fulfil_rate"] == 0.5
    assert m["time_to_fulfil_mean"] == 50.0
    assert m["time_to_fulfil_p50"] == 45.0  # both in (30, 60]: the half-way point of it


def test_bucket_bounds_match_the_migration() -> None:
    from pathlib import Path

    import offerd.migrations.versions as versions

    text = (Path(versions.__file__).parent / "0011_report_rollups.py").read_text()
    assert "ARRAY[" + ",".join(str(b) for b in FULFIL_BUCKETS) + "]" in text
    assert f"ARRAY[{HIST_SIZE}]" in text


def test_query_defaults_and_group_order() -> None:
    q = parse(start="0", end="86400", granularity=None, group_by="arm, offer")
    assert q.granularity == "day"
    assert q.group_by == ("arm", "offer")
    assert q.columns == ("experiment_arm", "offer_id")
