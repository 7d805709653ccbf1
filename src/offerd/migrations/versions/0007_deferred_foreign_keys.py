"""The foreign keys between a site's own rows are checked at commit: deleting a site (its rows go
by their ``ON DELETE CASCADE`` to ``sites``) is then one statement, whatever order the cascade
takes (a plan before the subscriptions on it, a personalized offer before its fulfillment).
They are still enforced: a transaction that leaves a dangling reference fails at commit.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_KEYS = (
    ("subscriptions", "subscriptions_site_id_plan_id_fkey"),
    ("offer_fulfillments", "offer_fulfillments_personalized_offer_id_fkey"),
    ("hosted_pages", "hosted_pages_fulfillment_id_fkey"),
    ("action_links", "action_links_fulfillment_id_fkey"),
)


def upgrade() -> None:
    for table, key in _KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {key} DEFERRABLE INITIALLY DEFERRED")


def downgrade() -> None:
    for table, key in _KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {key} NOT DEFERRABLE")
