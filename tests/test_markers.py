"""The ``unit`` marker is checked at collection: a unit test that asks for the database errors."""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    unit: pure
"""

CONFTEST = """
import pytest
from tests.support.markers import refuse_mislabeled_units

@pytest.fixture
def cluster():
    return "a server"

@pytest.fixture
def db_url(cluster):
    return "a database"

def pytest_collection_modifyitems(items):
    refuse_mislabeled_units(items)
"""


def test_a_unit_test_asking_for_the_database_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_mixed="""
import pytest

@pytest.mark.unit
def test_pure():
    pass

@pytest.mark.unit
def test_mislabeled(db_url):
    pass

def test_on_the_database(db_url):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "unit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_mixed.py::test_mislabeled uses cluster, db_url*"])
    assert "test_pure" not in result.stderr.str()
    assert "test_on_the_database" not in result.stderr.str()


def test_correctly_marked_tests_run(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_pure="""
import pytest

pytestmark = pytest.mark.unit

def test_pure():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "unit")
    result.assert_outcomes(passed=1)
