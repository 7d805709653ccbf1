"""Foundation: sites and keys, the catalog and billing ledger, offers, events, fulfillments,
idempotency records and the job queue.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE sites (
        id              text PRIMARY KEY,
        name            text NOT NULL,
        brand           jsonb,
        settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
        catalog_version bigint NOT NULL DEFAULT 1,
        created_at      timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL
    );

    CREATE TABLE api_keys (
        id         text PRIMARY KEY,
        site_id    text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        kind       text NOT NULL CHECK (kind IN ('full_access', 'publishable')),
        name       text NOT NULL,
        key_hash   bytea NOT NULL UNIQUE,
        key_hint   text NOT NULL,
        created_at timestamptz NOT NULL,
        revoked_at timestamptz
    );
    CREATE INDEX api_keys_site ON api_keys (site_id);

    CREATE TABLE plans (
        site_id     text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id          text NOT NULL,
        name        text NOT NULL,
        price       bigint NOT NULL CHECK (price >= 0),
        currency    text NOT NULL,
        period_unit text NOT NULL CHECK (period_unit IN ('month', 'year')),
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        PRIMARY KEY (site_id, id)
    );

    CREATE TABLE coupons (
        site_id             text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id                  text NOT NULL,
        name                text NOT NULL,
        discount_type       text NOT NULL CHECK (discount_type IN ('percentage', 'fixed_amount')),
        discount_percentage numeric(5, 2) CHECK (discount_percentage > 0 AND discount_percentage <= 100),
        discount_amount     bigint CHECK (discount_amount > 0),
        currency            text,
        duration_type       text NOT NULL
                            CHECK (duration_type IN ('one_time', 'forever', 'limited_period')),
        duration_months     int CHECK (duration_months > 0),
        created_at          timestamptz NOT NULL,
        updated_at          timestamptz NOT NULL,
        PRIMARY KEY (site_id, id),
        CHECK ((discount_type = 'percentage') = (discount_percentage IS NOT NULL)),
        CHECK ((discount_type = 'fixed_amount') = (discount_amount IS NOT NULL)),
        CHECK ((duration_type = 'limited_period') = (duration_months IS NOT NULL))
    );

    CREATE TABLE customers (
        site_id            text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id                 text NOT NULL,
        email              text,
        first_name         text,
        last_name          text,
        business_entity_id text,
        created_at         timestamptz NOT NULL,
        updated_at         timestamptz NOT NULL,
        PRIMARY KEY (site_id, id)
    );

    CREATE TABLE subscriptions (
        site_id            text NOT NULL,
        id                 text NOT NULL,
        customer_id        text NOT NULL,
        plan_id            text NOT NULL,
        quantity           int NOT NULL DEFAULT 1 CHECK (quantity > 0),
        status             text NOT NULL
                           CHECK (status IN ('in_trial', 'active', 'non_renewing', 'paused', 'cancelled')),
        coupon_ids         text[] NOT NULL DEFAULT '{}',
        trial_end          timestamptz,
        current_term_start timestamptz,
        current_term_end   timestamptz,
        pause_until        timestamptz,
        cancel_at          timestamptz,
        cancelled_at       timestamptz,
        business_entity_id text,
        version            int NOT NULL DEFAULT 1,
        created_at         timestamptz NOT NULL,
        updated_at         timestamptz NOT NULL,
        PRIMARY KEY (site_id, id),
        FOREIGN KEY (site_id, customer_id) REFERENCES customers (site_id, id) ON DELETE CASCADE,
        FOREIGN KEY (site_id, plan_id) REFERENCES plans (site_id, id)
    );
    CREATE INDEX subscriptions_customer ON subscriptions (site_id, customer_id);

    CREATE TABLE offers (
        site_id            text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id                 text NOT NULL,
        version            int NOT NULL DEFAULT 1,
        name               text NOT NULL,
        status             text NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'archived')),
        priority           int NOT NULL DEFAULT 0,
        business_entity_id text,
        starts_at          timestamptz,
        ends_at            timestamptz,
        definition         jsonb NOT NULL,
        created_at         timestamptz NOT NULL,
        updated_at         timestamptz NOT NULL,
        PRIMARY KEY (site_id, id)
    );

    CREATE TABLE personalized_offers (
        id                 text PRIMARY KEY,
        site_id            text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        offer_id           text NOT NULL,
        offer_version      int NOT NULL,
        customer_id        text NOT NULL,
        subscription_id    text,
        business_entity_id text,
        brand_id           text,
        content            jsonb NOT NULL,
        options            jsonb NOT NULL,
        context            jsonb NOT NULL,
        origin             jsonb NOT NULL,
        created_at         timestamptz NOT NULL,
        expires_at         timestamptz NOT NULL
    );
    CREATE INDEX personalized_offers_customer
        ON personalized_offers (site_id, customer_id, created_at DESC);

    CREATE TABLE offer_fulfillments (
        id                    text PRIMARY KEY,
        site_id               text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        personalized_offer_id text NOT NULL REFERENCES personalized_offers (id),
        offer_id              text NOT NULL,
        option_id             text NOT NULL,
        processing_type       text NOT NULL CHECK (processing_type IN
                              ('billing_update', 'checkout', 'url_redirect', 'webhook', 'email')),
        status                text NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed')),
        redirect_url          text,
        error_code            text,
        error_message         text,
        customer_id           text NOT NULL,
        subscription_id       text,
        business_entity_id    text,
        suppress_actions      boolean NOT NULL DEFAULT false,
        suppress_webhook      boolean NOT NULL DEFAULT false,
        suppress_email        boolean NOT NULL DEFAULT false,
        origin                jsonb NOT NULL,
        created_at            timestamptz NOT NULL,
        completed_at          timestamptz,
        failed_at             timestamptz,
        deadline_at           timestamptz NOT NULL,
        CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
        CHECK ((status = 'failed') = (failed_at IS NOT NULL AND error_code IS NOT NULL))
    );
    -- At most one live (in progress or completed) fulfillment per personalized offer: the backstop
    -- behind the row lock the accept path takes.
    CREATE UNIQUE INDEX offer_fulfillments_one_live
        ON offer_fulfillments (personalized_offer_id) WHERE status <> 'failed';
    CREATE INDEX offer_fulfillments_deadline
        ON offer_fulfillments (deadline_at) WHERE status = 'in_progress';

    CREATE TABLE offer_events (
        seq                   bigint GENERATED ALWAYS AS IDENTITY,
        id                    text PRIMARY KEY,
        site_id               text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        type                  text NOT NULL
                              CHECK (type IN ('viewed', 'dismissed', 'accepted', 'fulfilled', 'failed')),
        personalized_offer_id text NOT NULL,
        offer_id              text NOT NULL,
        option_id             text,
        fulfillment_id        text,
        customer_id           text NOT NULL,
        subscription_id       text,
        business_entity_id    text,
        origin                jsonb NOT NULL,
        occurred_at           timestamptz NOT NULL
    );
    CREATE INDEX offer_events_site_seq ON offer_events (site_id, seq DESC);
    CREATE INDEX offer_events_personalized_offer ON offer_events (personalized_offer_id);

    CREATE TABLE idempotency_keys (
        site_id      text NOT NULL,
        api_key_id   text NOT NULL,
        method       text NOT NULL,
        path         text NOT NULL,
        key          text NOT NULL,
        request_hash bytea NOT NULL,
        status       int NOT NULL,
        body         bytea NOT NULL,
        headers      jsonb NOT NULL,
        created_at   timestamptz NOT NULL,
        expires_at   timestamptz NOT NULL,
        PRIMARY KEY (site_id, api_key_id, method, path, key)
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

    -- The job queue. A job is claimed by setting locked_by/locked_until (a lease the worker
    -- renews while it runs) and finished by deleting it in the same transaction as its effects.
    CREATE TABLE jobs (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind         text NOT NULL,
        payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
        run_at       timestamptz NOT NULL,
        attempts     int NOT NULL DEFAULT 0,
        locked_by    text,
        locked_until timestamptz,
        last_error   text,
        created_at   timestamptz NOT NULL
    );
    CREATE INDEX jobs_due ON jobs (run_at, id);

    CREATE FUNCTION offerd_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('offerd_jobs', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
        FOR EACH STATEMENT EXECUTE FUNCTION offerd_jobs_notify();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE jobs, idempotency_keys, offer_events, offer_fulfillments, personalized_offers,
        offers, subscriptions, customers, coupons, plans, api_keys, sites CASCADE;
    DROP FUNCTION offerd_jobs_notify();
    """)
