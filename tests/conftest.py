from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from offerd.observability import configure_logging
from tests.support.app import SECRET_KEY, TestApp, running_app
from tests.support.markers import SUMMARY_PROPERTY, refuse_mislabeled_units
from tests.support.pg import Cluster, shared_cluster
from tests.support.server import LiveServer, live_server

pytest_plugins = ["pytester"]  # tests/test_markers.py runs pytest on a made-up test module


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything: every run checks every test
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    refuse_mislabeled_units(items)


# Lines the tests asked to print at the end, gathered from their reports (which, under pytest-xdist,
# the workers send to this process).
SUMMARY: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    SUMMARY.extend(str(value) for name, value in report.user_properties if name == SUMMARY_PROPERTY)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.write_sep("-", "fault tests")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _secret_key() -> None:
    """The offerd processes tests start (CLI, servers, workers) run on an external database,
    which needs OFFERD_SECRET_KEY; a test about its absence removes it."""
    os.environ.setdefault("OFFERD_SECRET_KEY", SECRET_KEY)


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    """JSON logs at warning level, as in production: no slow pretty tracebacks in tests."""
    configure_logging("warning", "json")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One PostgreSQL and one migrated template for the run. Under pytest-xdist every worker has
    its own base temp folder inside the run's: the workers meet in that parent folder and share
    the server (see tests.support.pg.shared_cluster)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "pg"
    with shared_cluster(folder) as cluster:
        yield cluster


@pytest.fixture
def db_url(cluster: Cluster) -> Iterator[str]:
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[TestApp]:
    async with running_app(db_url) as test_app:
        yield test_app


@pytest.fixture
def live(db_url: str) -> Iterator[LiveServer]:
    """offerd on a real socket (no worker), on this test's database."""
    with live_server(db_url) as server:
        yield server
