"""Per-site rate limits: one counter row per site and minute, shared by every offerd process.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # UNLOGGED: a counter lost in a crash only forgives the current minute; no WAL per request.
    op.execute("""
    CREATE UNLOGGED TABLE rate_limit_windows (
        site_id      text NOT NULL,
        window_start timestamptz NOT NULL,
        hits         integer NOT NULL,
        PRIMARY KEY (site_id, window_start)
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE rate_limit_windows")
