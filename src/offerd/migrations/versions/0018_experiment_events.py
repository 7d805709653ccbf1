"""The events of decisions in experiments, indexed by experiment: `GET .../experiments/{id}`
counts them per arm and type, and without this index read the whole of ``offer_events``
(seconds at 10 million events; bench/RESULTS.md). Partial: events outside experiments, most
of a site's, are not in it. The per-arm counts become an index-only scan of the experiment's
own events.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX offer_events_experiment
        ON offer_events (site_id, experiment_id, experiment_arm, type)
        WHERE experiment_id IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("DROP INDEX offer_events_experiment")
