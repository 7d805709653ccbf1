"""Jobs that failed for good are kept (status ``failed``, with their last error) until an admin
retries them; the claim and the queue's indexes skip them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- queued: waiting, scheduled or running (a lease says which); failed: given up, kept for an
    -- admin to read and retry. A job that succeeds is still deleted with its effects.
    ALTER TABLE jobs
        ADD COLUMN status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'failed')),
        ADD COLUMN failed_at timestamptz;

    -- The claim and next_due read queued jobs only: failed ones must not slow them down.
    DROP INDEX jobs_due;
    CREATE INDEX jobs_due ON jobs (run_at, id) WHERE status = 'queued';
    -- The admin list of failed jobs, newest first.
    CREATE INDEX jobs_failed ON jobs (id) WHERE status = 'failed';
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX jobs_failed;
    DROP INDEX jobs_due;
    DELETE FROM jobs WHERE status = 'failed';
    ALTER TABLE jobs DROP COLUMN failed_at, DROP COLUMN status;
    CREATE INDEX jobs_due ON jobs (run_at, id);
    """)
