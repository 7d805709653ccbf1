"""Saves by every report dimension: ``offer_saves`` and ``save_rollups`` also keep the
fulfilment's processing type and the personalized offer's business entity and brand, so the
saves report groups by them as the funnel does (before, a 400).

Existing saves get them from their fulfilment and personalized offer; the save rollups are
summed again from the saves with the wider key, and the trigger counts with it from now on.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DIMS = "offer_id, option_id, experiment_arm, processing_type, business_entity_id, brand_id"
KEY = f"site_id, grain, period, {DIMS}, currency"
OLD_KEY = "site_id, grain, period, offer_id, option_id, experiment_arm, currency"


def _rollups(key: str, dims: str) -> str:
    """The save rollup function and trigger over ``key``, and the rollups summed again."""
    values = ", ".join(f"s.{d}" for d in dims.split(", "))
    return f"""
    CREATE FUNCTION save_rollup_add(s offer_saves, sign int) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO save_rollups ({key}, pending, saved, lost, mrr)
        SELECT s.site_id, g.grain, date_trunc(g.grain, d.day)::date, {values},
               coalesce(s.currency, ''),
               sign * (s.state = 'pending')::int, sign * (s.state = 'saved')::int,
               sign * (s.state = 'lost')::int,
               CASE WHEN s.state = 'saved' THEN sign * coalesce(s.mrr, 0) ELSE 0 END
        FROM (SELECT report_day(s.site_id, s.accepted_at) AS day) d,
             (VALUES ('day'), ('week'), ('month')) g(grain)
        ON CONFLICT ({key}) DO UPDATE SET
            pending = save_rollups.pending + excluded.pending,
            saved = save_rollups.saved + excluded.saved,
            lost = save_rollups.lost + excluded.lost,
            mrr = save_rollups.mrr + excluded.mrr
    $$;

    CREATE TRIGGER save_rollup_count AFTER INSERT OR UPDATE ON offer_saves
        FOR EACH ROW EXECUTE FUNCTION save_rollup_count();

    DELETE FROM save_rollups;
    INSERT INTO save_rollups ({key}, pending, saved, lost, mrr)
    SELECT x.site_id, g.grain, date_trunc(g.grain, report_day(x.site_id, x.accepted_at))::date,
           {", ".join(f"x.{d}" for d in dims.split(", "))}, coalesce(x.currency, ''),
           count(*) FILTER (WHERE x.state = 'pending'), count(*) FILTER (WHERE x.state = 'saved'),
           count(*) FILTER (WHERE x.state = 'lost'),
           coalesce(sum(x.mrr) FILTER (WHERE x.state = 'saved'), 0)
    FROM offer_saves x, (VALUES ('day'), ('week'), ('month')) g(grain)
    GROUP BY {", ".join(str(i) for i in range(1, len(key.split(", ")) + 1))};
    """


def upgrade() -> None:
    op.execute(f"""
    DROP TRIGGER save_rollup_count ON offer_saves;
    DROP FUNCTION save_rollup_add(offer_saves, int);

    ALTER TABLE offer_saves
        ADD COLUMN processing_type text NOT NULL DEFAULT '',
        ADD COLUMN business_entity_id text NOT NULL DEFAULT '',
        ADD COLUMN brand_id text NOT NULL DEFAULT '';
    UPDATE offer_saves x
    SET processing_type = f.processing_type,
        business_entity_id = coalesce(po.business_entity_id, ''),
        brand_id = coalesce(po.brand_id, '')
    FROM offer_fulfillments f JOIN personalized_offers po ON po.id = f.personalized_offer_id
    WHERE f.site_id = x.site_id AND f.id = x.fulfillment_id;

    ALTER TABLE save_rollups
        ADD COLUMN processing_type text NOT NULL DEFAULT '',
        ADD COLUMN business_entity_id text NOT NULL DEFAULT '',
        ADD COLUMN brand_id text NOT NULL DEFAULT '',
        DROP CONSTRAINT save_rollups_pkey,
        ADD PRIMARY KEY ({KEY});
    {_rollups(KEY, DIMS)}
    """)


def downgrade() -> None:
    op.execute(f"""
    DROP TRIGGER save_rollup_count ON offer_saves;
    DROP FUNCTION save_rollup_add(offer_saves, int);
    DELETE FROM save_rollups;
    ALTER TABLE save_rollups
        DROP CONSTRAINT save_rollups_pkey,
        DROP COLUMN processing_type,
        DROP COLUMN business_entity_id,
        DROP COLUMN brand_id,
        ADD PRIMARY KEY ({OLD_KEY});
    ALTER TABLE offer_saves
        DROP COLUMN processing_type,
        DROP COLUMN business_entity_id,
        DROP COLUMN brand_id;
    {_rollups(OLD_KEY, "offer_id, option_id, experiment_arm")}
    """)
