"""The funnel's metrics, defined once: what a report row says, from the rollups' summed
counters. Pure (no I/O) so that each definition is table-tested on hand-built numbers.

The time-to-fulfil percentiles come from a fixed histogram (``FULFIL_BUCKETS``, the same bounds
as migration 0011's ``report_bucket``): interpolated linearly inside the bucket that holds the
percentile, so they are exact to within that bucket's width, and mergeable over any number of
days, offers and shards (exact percentiles would need every duration kept)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

# Upper bounds (seconds) of the histogram's buckets; one more bucket holds everything above.
FULFIL_BUCKETS: tuple[int, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800,
)  # fmt: skip
HIST_SIZE = len(FULFIL_BUCKETS) + 1

COUNTERS = ("decisions", "viewed", "dismissed", "accepted", "fulfilled", "failed")


@dataclass
class Counts:
    """One row's summed counters."""

    decisions: int = 0
    viewed: int = 0
    dismissed: int = 0
    accepted: int = 0
    fulfilled: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    fulfil_seconds: float = 0.0
    fulfil_hist: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)

    def add_codes(self, codes: Iterable[Mapping[str, Any]]) -> None:
        for by_code in codes:
            for code, n in by_code.items():
                self.failed_by_code[code] = self.failed_by_code.get(code, 0) + int(n)


def rate(numerator: int, denominator: int) -> float | None:
    """A ratio rounded to 4 places; None (not 0) when nothing was there to convert."""
    return round(numerator / denominator, 4) if denominator else None


def bucket_of(seconds: float) -> int:
    """The 0-based histogram bucket of a duration (the SQL's report_bucket, less one)."""
    for i, bound in enumerate(FULFIL_BUCKETS):
        if seconds <= bound:
            return i
    return len(FULFIL_BUCKETS)


def percentile(hist: Sequence[int], p: float) -> float | None:
    """The ``p`` quantile (0 < p <= 1) of the durations counted in ``hist``, interpolated within
    its bucket; the open last bucket answers its lower bound. None with no durations."""
    return percentiles(hist, (p,))[0]


def percentiles(hist: Sequence[int], ps: Sequence[float]) -> list[float | None]:
    """``percentile`` for each of ``ps``, from one running sum of the histogram (a report asks
    two for each of thousands of rows)."""
    running = list(accumulate(hist))
    total = running[-1] if running else 0
    if total == 0:
        return [None] * len(ps)
    out: list[float | None] = []
    for p in ps:
        target = p * total
        i = bisect_left(running, target)  # the first bucket reaching it (never an empty one)
        if i >= len(FULFIL_BUCKETS):
            out.append(float(FULFIL_BUCKETS[-1]))
            continue
        n = hist[i]
        below = running[i] - n
        low = 0 if i == 0 else FULFIL_BUCKETS[i - 1]
        high = FULFIL_BUCKETS[i]
        out.append(round(low + (high - low) * (target - below) / n, 1))
    return out


def funnel_metrics(c: Counts) -> dict[str, Any]:
    """The counters and what they make: rates and time to fulfil (seconds)."""
    p50, p90 = percentiles(c.fulfil_hist, (0.5, 0.9)) if c.fulfilled else (None, None)
    return {
        "decisions": c.decisions,
        "viewed": c.viewed,
        "dismissed": c.dismissed,
        "accepted": c.accepted,
        "fulfilled": c.fulfilled,
        "failed": c.failed,
        "failed_by_code": dict(sorted(c.failed_by_code.items())),
        "view_to_accept_rate": rate(c.accepted, c.viewed),
        "accept_to_fulfil_rate": rate(c.fulfilled, c.accepted),
        "time_to_fulfil_mean": round(c.fulfil_seconds / c.fulfilled, 1) if c.fulfilled else None,
        "time_to_fulfil_p50": p50,
        "time_to_fulfil_p90": p90,
    }
