"""The migrations on a real PostgreSQL: every one goes down and up again to the same schema, and
the indexes the hot reads rely on are the ones their plans use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory

from offerd import migrate
from offerd.offers import store as offers_store
from offerd.reporting import store as reporting_store

# What a schema is, read from the catalog: tables' columns, constraints, indexes, triggers and
# functions, each with its full definition (a function's with its runs of white space as one: a
# downgrade may lay out the body it restores differently).
SCHEMA = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT proname, regexp_replace(pg_get_functiondef(oid), '\\s+', ' ', 'g') FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
}


def schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in SCHEMA.items()}  # type: ignore[arg-type]


def test_every_migration_goes_down_and_up_again_to_the_same_schema(db_url: str) -> None:
    """Down one revision at a time to nothing, then up one at a time: at every revision the
    schema reached going down is the one reached going up (a downgrade that leaves anything of
    its upgrade behind, or an upgrade that cannot run again, fails here)."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [s.revision for s in scripts.walk_revisions()]  # head first
    assert migrate.current(db_url) == revisions[0], "the template is migrated"
    going_down = {revisions[0]: schema(db_url)}
    for below in [*revisions[1:], "base"]:
        migrate.downgrade(db_url, "-1")
        going_down[below] = schema(db_url)
    emptied = going_down["base"]
    # only Alembic's own bookkeeping is left
    assert {row[0] for row in emptied["columns"]} == {"alembic_version"}
    assert emptied["functions"] == [] and emptied["triggers"] == []
    for revision in reversed(revisions):
        migrate.upgrade(db_url, "+1")
        assert migrate.current(db_url) == revision
        assert schema(db_url) == going_down[revision], f"at {revision}"


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        # GET .../experiments/{id}: the experiment's events per arm and type (migration 0018)
        (offers_store.CONVERSIONS, ("acme", "exp_1"), "Index Only Scan using offer_events_experiment"),
        # the saves sweep's enrolment: the last 60 days' completions (migration 0019)
        (reporting_store.ENROLL_SAVES, {"now": datetime(2026, 1, 1, tzinfo=UTC), "limit": 1000},
         "Index Scan using offer_fulfillments_completed"),
    ],
)  # fmt: skip
def test_a_hot_read_uses_its_index(
    db_url: str, query: str, params: tuple[str, ...] | dict[str, Any], index: str
) -> None:
    """The reads that would otherwise read a whole large table (bench/RESULTS.md) plan the
    index made for them."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SET enable_seqscan = off")  # an empty table: the plan a large one gets
        plan = conn.execute(f"EXPLAIN {query}", params).fetchall()  # type: ignore[arg-type]
    text = "\n".join(row[0] for row in plan)
    assert index in text, text
