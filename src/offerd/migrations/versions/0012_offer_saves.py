"""Saves: every completed fulfillment of an offer on a subscription, followed for the site's
``save_window_days`` (30 by default): ``pending`` until the window ends, ``lost`` if the
subscription was cancelled inside it, ``saved`` if not, with the monthly recurring revenue it
kept (per currency, minor units). Written only by the reporting slice's settling sweep.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE offer_saves (
        site_id         text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        fulfillment_id  text NOT NULL,
        offer_id        text NOT NULL,
        option_id       text NOT NULL,
        experiment_arm  text NOT NULL DEFAULT '',
        subscription_id text NOT NULL,
        accepted_at     timestamptz NOT NULL,
        window_ends_at  timestamptz NOT NULL,
        state           text NOT NULL CHECK (state IN ('pending', 'saved', 'lost')),
        settled_at      timestamptz,
        currency        text,
        mrr             bigint CHECK (mrr >= 0),
        PRIMARY KEY (site_id, fulfillment_id)
    );
    CREATE INDEX offer_saves_pending ON offer_saves (window_ends_at) WHERE state = 'pending';
    CREATE INDEX offer_saves_site_accepted ON offer_saves (site_id, accepted_at);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE offer_saves")
