"""Decisioning: brands, offer versions, experiments with holdout, served records, and what
frequency guards read.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A site's brands; the first is the default. (sites.brand stays as the single-brand form.)
    ALTER TABLE sites ADD COLUMN brands jsonb NOT NULL DEFAULT '[]'::jsonb;
    UPDATE sites SET brands = jsonb_build_array(brand) WHERE brand IS NOT NULL;
    ALTER TABLE subscriptions ADD COLUMN brand_id text;
    ALTER TABLE offers ADD COLUMN brand_id text;

    -- Every version an offer has had; personalized offers keep the one they were issued with.
    CREATE TABLE offer_versions (
        site_id    text NOT NULL,
        offer_id   text NOT NULL,
        version    int NOT NULL,
        definition jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (site_id, offer_id, version),
        FOREIGN KEY (site_id, offer_id) REFERENCES offers (site_id, id) ON DELETE CASCADE
    );
    INSERT INTO offer_versions (site_id, offer_id, version, definition, created_at)
    SELECT site_id, id, version, definition, updated_at FROM offers;

    CREATE TABLE experiments (
        site_id    text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id         text NOT NULL,
        name       text NOT NULL,
        status     text NOT NULL CHECK (status IN ('draft', 'running', 'stopped')),
        arms       jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (site_id, id)
    );

    ALTER TABLE personalized_offers
        ADD COLUMN locale text,
        ADD COLUMN experiment_id text,
        ADD COLUMN experiment_arm text;
    ALTER TABLE offer_fulfillments
        ADD COLUMN experiment_id text,
        ADD COLUMN experiment_arm text;
    ALTER TABLE offer_events
        ADD COLUMN experiment_id text,
        ADD COLUMN experiment_arm text;

    -- Each experiment assignment served (a variant's offer, or nothing for the holdout arm):
    -- the denominator of lift.
    CREATE TABLE served (
        id                    text PRIMARY KEY,
        site_id               text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        customer_id           text NOT NULL,
        subscription_id       text,
        experiment_id         text NOT NULL,
        experiment_arm        text NOT NULL,
        offer_id              text,
        personalized_offer_id text,
        occurred_at           timestamptz NOT NULL
    );
    CREATE INDEX served_experiment ON served (site_id, experiment_id, experiment_arm, occurred_at);

    -- Frequency guards read a customer's recent views, dismissals and acceptances.
    CREATE INDEX offer_events_guards ON offer_events (site_id, customer_id, occurred_at)
        WHERE type IN ('viewed', 'dismissed', 'accepted');
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX offer_events_guards;
    DROP TABLE served;
    ALTER TABLE offer_events DROP COLUMN experiment_id, DROP COLUMN experiment_arm;
    ALTER TABLE offer_fulfillments DROP COLUMN experiment_id, DROP COLUMN experiment_arm;
    ALTER TABLE personalized_offers
        DROP COLUMN locale, DROP COLUMN experiment_id, DROP COLUMN experiment_arm;
    DROP TABLE experiments;
    DROP TABLE offer_versions;
    ALTER TABLE offers DROP COLUMN brand_id;
    ALTER TABLE subscriptions DROP COLUMN brand_id;
    ALTER TABLE sites DROP COLUMN brands;
    """)
