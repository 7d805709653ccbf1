"""Fulfillment engine: the ledger's change log, hosted checkout pages, outbound deliveries and
one-time action links.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- The secret processing webhooks (processing_type = webhook) are signed with.
    ALTER TABLE sites ADD COLUMN webhook_secret text;

    -- One row per applied billing action; the unique key makes a retried job a no-op.
    CREATE TABLE subscription_changes (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        site_id         text NOT NULL,
        subscription_id text NOT NULL,
        idempotency_key text NOT NULL,
        fulfillment_id  text,
        action          jsonb NOT NULL,
        before          jsonb NOT NULL,
        after           jsonb NOT NULL,
        created_at      timestamptz NOT NULL,
        UNIQUE (site_id, idempotency_key),
        FOREIGN KEY (site_id, subscription_id) REFERENCES subscriptions (site_id, id) ON DELETE CASCADE
    );
    CREATE INDEX subscription_changes_subscription
        ON subscription_changes (site_id, subscription_id, id);

    CREATE TABLE hosted_pages (
        id             text PRIMARY KEY,
        site_id        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        fulfillment_id text NOT NULL UNIQUE REFERENCES offer_fulfillments (id),
        type           text NOT NULL CHECK (type IN ('checkout_new', 'checkout_existing')),
        state          text NOT NULL
                       CHECK (state IN ('created', 'requested', 'succeeded', 'cancelled')),
        layout         text NOT NULL CHECK (layout IN ('in_app', 'full_page')),
        form_token     text NOT NULL,
        content        jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at     timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL,
        expires_at     timestamptz NOT NULL
    );

    -- Everything offerd sends out (processing webhooks and emails now, notifications later).
    CREATE TABLE deliveries (
        id               text PRIMARY KEY,
        site_id          text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        purpose          text NOT NULL CHECK (purpose IN ('processing', 'notification')),
        channel          text NOT NULL CHECK (channel IN ('webhook', 'slack', 'email', 'segment')),
        channel_id       text,
        event_id         text NOT NULL,
        event_type       text NOT NULL,
        fulfillment_id   text,
        destination      text NOT NULL,
        payload          jsonb NOT NULL,
        status           text NOT NULL
                         CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
        skip_reason      text,
        attempts         int NOT NULL DEFAULT 0,
        last_status_code int,
        last_error       text,
        created_at       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL,
        delivered_at     timestamptz
    );
    CREATE INDEX deliveries_site ON deliveries (site_id, created_at DESC, id DESC);
    -- A fulfillment asks its merchant once (processing webhook or email), however often its job runs.
    CREATE UNIQUE INDEX deliveries_processing ON deliveries (fulfillment_id) WHERE purpose = 'processing';
    CREATE INDEX deliveries_fulfillment ON deliveries (fulfillment_id);

    CREATE TABLE delivery_attempts (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id      text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempted_at     timestamptz NOT NULL,
        status_code      int,
        latency_ms       int,
        error            text,
        response_excerpt text
    );
    CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

    -- One-time links in fulfillment emails ("mark fulfilled", "mark failed"); only hashes stored.
    CREATE TABLE action_links (
        token_hash     bytea PRIMARY KEY,
        site_id        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        fulfillment_id text NOT NULL REFERENCES offer_fulfillments (id),
        action         text NOT NULL CHECK (action IN ('complete', 'fail')),
        created_at     timestamptz NOT NULL,
        expires_at     timestamptz NOT NULL,
        used_at        timestamptz
    );
    CREATE INDEX action_links_fulfillment ON action_links (fulfillment_id);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE action_links, delivery_attempts, deliveries, hosted_pages, subscription_changes;
    ALTER TABLE sites DROP COLUMN webhook_secret;
    """)
