"""provider_calls: every call offerd makes to a remote billing provider, one row per attempt.

Also the remote provider's change log: the ledger's ``subscription_changes`` rows are written in
the job's transaction with the new state; a remote call must be recorded *before* it is sent and
in its own transaction, so it cannot share that table's one-row-per-key shape.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE provider_calls (
        id                  bigserial PRIMARY KEY,
        site_id             text NOT NULL,
        provider            text NOT NULL,
        subscription_id     text NOT NULL,
        base_key            text NOT NULL,
        step                text NOT NULL,
        generation          integer NOT NULL CHECK (generation >= 1),
        idempotency_key     text NOT NULL,
        action              jsonb NOT NULL,
        before              jsonb NOT NULL,
        target              jsonb NOT NULL,
        state               text NOT NULL
            CHECK (state IN ('sent', 'applied', 'refused', 'failed')),
        provider_request_id text,
        error               text,
        created_at          timestamptz NOT NULL,
        finished_at         timestamptz,
        UNIQUE (base_key, step, generation)
    );
    CREATE INDEX provider_calls_subscription ON provider_calls (site_id, subscription_id, id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE provider_calls")
