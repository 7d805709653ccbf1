"""Notification channels per site, and one delivery per event and channel.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE notification_channels (
        site_id         text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        id              text NOT NULL,
        type            text NOT NULL CHECK (type IN ('webhook', 'slack', 'email', 'segment')),
        config          jsonb NOT NULL,
        secret          text,
        event_types     text[] NOT NULL,
        enabled         boolean NOT NULL DEFAULT true,
        disabled_reason text,
        failing_since   timestamptz,
        created_at      timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL,
        PRIMARY KEY (site_id, id)
    );

    -- An event reaches each channel once, however often the fan-out runs.
    CREATE UNIQUE INDEX deliveries_event_channel ON deliveries (event_id, channel_id)
        WHERE purpose = 'notification';
    CREATE INDEX deliveries_pending_channel ON deliveries (site_id, channel_id)
        WHERE status = 'pending';
    -- Segment deliveries are sent in batches: find the jobs of a channel's other pending ones.
    CREATE INDEX jobs_delivery ON jobs ((payload->>'delivery_id')) WHERE kind = 'delivery.send';
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX jobs_delivery;
    DROP INDEX deliveries_pending_channel;
    DROP INDEX deliveries_event_channel;
    DROP TABLE notification_channels;
    """)
