"""Schema migrations (Alembic, raw SQL), run under an advisory lock so concurrent starts don't race."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

MIGRATIONS_LOCK = 0x0FFE_7D00  # any constant; shared by every offerd process


def _engine(database_url: str) -> Engine:
    # psycopg takes both URLs and key=value conninfo strings; let it parse whichever was given.
    return create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(database_url), poolclass=NullPool
    )


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    _run(database_url, command.upgrade, revision)


def downgrade(database_url: str, revision: str) -> None:
    """Back to ``revision`` (``"-1"``: one step; ``"base"``: nothing). Each revision's
    downgrade undoes its upgrade exactly (tests/test_migrations.py)."""
    _run(database_url, command.downgrade, revision)


def _run(database_url: str, step: Callable[[Config, str], None], revision: str) -> None:
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATIONS_LOCK})
            conn.commit()
            try:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                step(cfg, revision)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATIONS_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev
    finally:
        engine.dispose()
