"""Completed fulfilments on a subscription, indexed by completion: the saves sweep enrols those
of the last 60 days (``reporting.store.ENROLL_SAVES``) every 5 minutes, and without this index
read the whole of ``offer_fulfillments`` each time (bench/RESULTS.md). Partial: failed, in
progress and subscription-less fulfilments are never enrolled.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX offer_fulfillments_completed ON offer_fulfillments (completed_at)
        WHERE status = 'completed' AND subscription_id IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("DROP INDEX offer_fulfillments_completed")
