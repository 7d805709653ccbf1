"""Secrets encrypted at rest, and per-site billing provider configuration.

Channel secrets (``notification_channels.secret``, a Slack channel's ``config.webhook_url``, an
HTTP Basic ``config.basic_auth.password``) are now stored as ``fernet:…`` (offerd.common.secrets).
The key lives outside the database, so existing plaintext values cannot be encrypted in SQL:
``offerd migrate`` (and ``offerd serve``, which migrates) encrypts them in Python right after
this revision, idempotently; until then they are read as they are. This revision marks the
columns so that whoever reads the schema knows what they hold.

``billing_providers``: a site's provider (no row: the built-in ledger), its configuration with
the credentials encrypted the same way, and its health as last seen.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    COMMENT ON COLUMN notification_channels.secret IS
        'encrypted (fernet:...) with OFFERD_SECRET_KEY: webhook signing secret, Segment write key';
    COMMENT ON COLUMN notification_channels.config IS
        'webhook_url of a Slack channel and basic_auth.password are encrypted (fernet:...)';

    CREATE TABLE billing_providers (
        site_id    text PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
        type       text NOT NULL CHECK (type IN ('ledger', 'stripe', 'chargebee')),
        config     jsonb NOT NULL DEFAULT '{}',
        status     text NOT NULL DEFAULT 'unknown'
                   CHECK (status IN ('unknown', 'healthy', 'unhealthy')),
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    );
    COMMENT ON COLUMN billing_providers.config IS
        'credentials (secret_key, webhook_secret, api_key, webhook_password) encrypted (fernet:...)';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE billing_providers;
    COMMENT ON COLUMN notification_channels.secret IS NULL;
    COMMENT ON COLUMN notification_channels.config IS NULL;
    """)
