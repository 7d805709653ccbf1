"""The billing mirror: a remote provider's customers, subscriptions, prices/plans and coupons in
the ledger's tables, and each site's initial sync.

``mirrored_at`` on the four tables: the database clock when the provider's object was read (a
page request, a re-read after a webhook, the response to a change). A write carries its read
time and lands only if no later read has landed (``billing/mirror_store.py``), so webhooks that
arrive late, twice or out of order, and a sync running alongside them, converge to the
provider's latest state. NULL on the ledger's own rows.

Plans gain ``period`` (every N units; Stripe's ``interval_count``, Chargebee's ``period``) and
the day and week units both providers have.

``billing_syncs``: a site's import, resumable: the phase (plans, coupons, customers,
subscriptions) and the cursor of the last page written, committed with that page's rows.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE plans DROP CONSTRAINT plans_period_unit_check;
    ALTER TABLE plans ADD CONSTRAINT plans_period_unit_check
        CHECK (period_unit IN ('day', 'week', 'month', 'year'));
    ALTER TABLE plans ADD COLUMN period int NOT NULL DEFAULT 1 CHECK (period > 0);
    ALTER TABLE plans ADD COLUMN mirrored_at timestamptz;
    ALTER TABLE coupons ADD COLUMN mirrored_at timestamptz;
    ALTER TABLE customers ADD COLUMN mirrored_at timestamptz;
    ALTER TABLE subscriptions ADD COLUMN mirrored_at timestamptz;

    CREATE TABLE billing_syncs (
        site_id        text PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
        state          text NOT NULL CHECK (state IN ('idle', 'running', 'failed')),
        phase          text CHECK (phase IN ('plans', 'coupons', 'customers', 'subscriptions')),
        cursor         text,
        seen           jsonb NOT NULL DEFAULT '{}',
        started_at     timestamptz,
        last_synced_at timestamptz,
        last_error     text,
        updated_at     timestamptz NOT NULL
    );

    -- jobs.enqueue_once: one queued job per key (the mirror's re-read of one object)
    CREATE INDEX jobs_key ON jobs (kind, (payload->>'key')) WHERE payload ? 'key';
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX jobs_key;
    DROP TABLE billing_syncs;
    ALTER TABLE subscriptions DROP COLUMN mirrored_at;
    ALTER TABLE customers DROP COLUMN mirrored_at;
    ALTER TABLE coupons DROP COLUMN mirrored_at;
    ALTER TABLE plans DROP COLUMN mirrored_at, DROP COLUMN period;
    ALTER TABLE plans DROP CONSTRAINT plans_period_unit_check;
    ALTER TABLE plans ADD CONSTRAINT plans_period_unit_check
        CHECK (period_unit IN ('month', 'year'));
    """)
