from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault.harness import REPORT, Workers
from tests.support.markers import SUMMARY_PROPERTY


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Real ``offerd worker`` processes on this test's database; none outlives the test."""
    started = Workers(db_url, tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture(autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hand the test's REPORT lines to its report: under pytest-xdist the test ran in a worker and
    the terminal summary (tests/conftest.py) is written by the controlling process."""
    yield
    while REPORT:
        request.node.user_properties.append((SUMMARY_PROPERTY, REPORT.pop(0)))
