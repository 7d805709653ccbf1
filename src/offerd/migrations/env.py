"""Alembic environment: migrations are raw SQL, run on the connection ``offerd.migrate`` hands in."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offerd always hands one in
    raise RuntimeError("run migrations through `offerd migrate`")

context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
