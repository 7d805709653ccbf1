from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault.harness import REPORT, Workers


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Real ``offerd worker`` processes on this test's database; none outlives the test."""
    started = Workers(db_url, tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "fault tests")
        for line in REPORT:
            terminalreporter.write_line(line)
