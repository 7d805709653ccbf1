"""Which whole ISO weeks and months a report's days hold (read from ``report_periods``; the
partial ones at the ends are read day by day)."""

from __future__ import annotations

from datetime import date

import pytest

from offerd.reporting.query import whole_periods

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "granularity, first, last, expected",
    [
        ("day", date(2026, 1, 1), date(2026, 12, 31), None),
        # whole months, exactly
        ("month", date(2026, 1, 1), date(2026, 3, 31), (date(2026, 1, 1), date(2026, 4, 1))),
        # partial ends are left out
        ("month", date(2025, 12, 31), date(2026, 3, 11), (date(2026, 1, 1), date(2026, 3, 1))),
        ("all", date(2025, 12, 31), date(2026, 3, 11), (date(2026, 1, 1), date(2026, 3, 1))),
        # February of a leap year, and December into January
        ("month", date(2024, 2, 1), date(2024, 2, 29), (date(2024, 2, 1), date(2024, 3, 1))),
        ("month", date(2025, 12, 1), date(2026, 1, 31), (date(2025, 12, 1), date(2026, 2, 1))),
        # no whole month inside
        ("month", date(2026, 1, 2), date(2026, 2, 27), None),
        ("all", date(2026, 1, 1), date(2026, 1, 30), None),
        # ISO weeks start on Monday: 2026-01-05 is one
        ("week", date(2026, 1, 5), date(2026, 1, 18), (date(2026, 1, 5), date(2026, 1, 19))),
        ("week", date(2026, 1, 4), date(2026, 1, 19), (date(2026, 1, 5), date(2026, 1, 19))),
        ("week", date(2026, 1, 6), date(2026, 1, 11), None),
    ],
)
def test_whole_periods(
    granularity: str, first: date, last: date, expected: tuple[date, date] | None
) -> None:
    assert whole_periods(granularity, first, last) == expected
