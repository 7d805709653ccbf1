"""A value PostgreSQL refuses, answered as the client's 400 naming the field.

The admin models check what they can before the database sees a value; this is the net under
them, so that a constraint they miss (a check, a not-null, a unique or foreign key, a number or
date out of the column's range) is a 400 with ``param``, not a 500. The field is the column
the error names: PostgreSQL reports it for a not-null violation; for a constraint, the
constraint's columns are looked up in the catalog (``site_id``, in every key, is not a field).
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import errors as pg_errors

from offerd.db import Database, fetchall
from offerd.edge.errors import APIError, InvalidRequest, ParamWrongValue

_COLUMNS = """
SELECT a.attname
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.conname = %s AND t.relname = %s
ORDER BY k.position
"""

_columns_of: dict[tuple[str, str], tuple[str, ...]] = {}


async def _constraint_columns(db: Database, table: str, constraint: str) -> tuple[str, ...]:
    key = (table, constraint)
    if key not in _columns_of:
        async with db.connection() as conn:
            rows = await fetchall(conn, _COLUMNS, (constraint, table))
        _columns_of[key] = tuple(str(row["attname"]) for row in rows)
    return _columns_of[key]


async def field_of(exc: psycopg.Error, db: Database | None) -> str | None:
    """The column (the request's field) ``exc`` is about, when PostgreSQL's report says."""
    diag = exc.diag
    if diag.column_name:
        return diag.column_name
    if not (diag.constraint_name and diag.table_name and db is not None):
        return None
    columns: tuple[str, ...] = ()
    with contextlib.suppress(psycopg.Error, OSError):
        columns = await _constraint_columns(db, diag.table_name, diag.constraint_name)
    fields = [c for c in columns if c != "site_id"]
    return fields[0] if fields else None


def _reason(exc: psycopg.Error) -> str:
    match exc:
        case pg_errors.UniqueViolation():
            return "is already taken"
        case pg_errors.ForeignKeyViolation():
            return "does not name an existing record"
        case pg_errors.NotNullViolation():
            return "cannot be blank"
        case psycopg.DataError():
            return "is out of the range this field can store"
    return "is not an allowed value"


async def refused(exc: psycopg.Error, db: Database | None) -> APIError:
    """The 400 for a value the database refused."""
    field = await field_of(exc, db)
    if field is None:
        return InvalidRequest("A value in the request cannot be stored")
    return ParamWrongValue(field, _reason(exc))
