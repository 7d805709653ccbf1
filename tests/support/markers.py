"""The ``unit`` marker kept honest: a test marked ``unit`` runs in ``scripts/test --unit``, without
PostgreSQL, servers or the network, so it must not ask for any of them. Checked when the tests are
collected, so a mislabeled test fails every run instead of hanging or passing by luck."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

# A test's report property whose value the terminal summary prints (the fault tests' REPORT lines).
SUMMARY_PROPERTY = "offerd summary"

# Fixtures that start or reach PostgreSQL, offerd, a socket or a browser (their dependants, such as
# the fault tests' ``workers`` or the compat ``grow_server``, ask for one of these in turn).
NOT_UNIT = frozenset({"cluster", "db_url", "app", "live", "receiver", "browser"})


def refuse_mislabeled_units(items: Sequence[pytest.Item]) -> None:
    mislabeled = []
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        used = NOT_UNIT.intersection(getattr(item, "fixturenames", ()))
        if used:
            mislabeled.append(f"  {item.nodeid} uses {', '.join(sorted(used))}")
    if mislabeled:
        raise pytest.UsageError(
            "tests marked `unit` must not use the database, a server or the network:\n"
            + "\n".join(mislabeled)
        )
