from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from offerd.observability import configure_logging
from tests.support.app import SECRET_KEY, TestApp, running_app
from tests.support.pg import Cluster, build_template, start_cluster
from tests.support.server import LiveServer, live_server


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
    cluster = start_cluster(Path(tmp_path_factory.mktemp("pg")))
    build_template(cluster)
    yield cluster
    if cluster.restartable:
        # stop the server we restarted ourselves (pgserver only stops the one it started)
        with contextlib.suppress(Exception):
            cluster.stop()


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
