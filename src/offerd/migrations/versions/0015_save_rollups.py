"""Save rollups: the saves report's counts per site, day / ISO week / month of acceptance (in the
site's time zone), offer, option, arm and currency (``save_rollups``), so a saves report over
years reads a row per month and key instead of every save.

Kept by a trigger on ``offer_saves`` (written only by the settling sweep, never on a request's
path): an insert adds the save to its state's count, an update moves it (the old state's count
down, the new one's up, with the monthly revenue of a saved one). A site's deletion removes both
tables by cascade, so deletes are not counted. ``offerd reports rebuild`` recomputes them.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

KEY = "site_id, grain, period, offer_id, option_id, experiment_arm, currency"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE save_rollups (
        site_id        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        grain          text NOT NULL CHECK (grain IN ('day', 'week', 'month')),
        period         date NOT NULL,
        offer_id       text NOT NULL,
        option_id      text NOT NULL,
        experiment_arm text NOT NULL DEFAULT '',
        currency       text NOT NULL DEFAULT '',
        pending        bigint NOT NULL DEFAULT 0,
        saved          bigint NOT NULL DEFAULT 0,
        lost           bigint NOT NULL DEFAULT 0,
        mrr            bigint NOT NULL DEFAULT 0,
        PRIMARY KEY ({KEY})
    );
    COMMENT ON TABLE save_rollups IS
        'owned by offerd.reporting: written by the save_rollup trigger and reporting/store.py';

    -- One save counted (sign 1) or taken back (-1) in its day, week and month.
    CREATE FUNCTION save_rollup_add(s offer_saves, sign int) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO save_rollups ({KEY}, pending, saved, lost, mrr)
        SELECT s.site_id, g.grain, date_trunc(g.grain, d.day)::date, s.offer_id, s.option_id,
               s.experiment_arm, coalesce(s.currency, ''),
               sign * (s.state = 'pending')::int, sign * (s.state = 'saved')::int,
               sign * (s.state = 'lost')::int,
               CASE WHEN s.state = 'saved' THEN sign * coalesce(s.mrr, 0) ELSE 0 END
        FROM (SELECT report_day(s.site_id, s.accepted_at) AS day) d,
             (VALUES ('day'), ('week'), ('month')) g(grain)
        ON CONFLICT ({KEY}) DO UPDATE SET
            pending = save_rollups.pending + excluded.pending,
            saved = save_rollups.saved + excluded.saved,
            lost = save_rollups.lost + excluded.lost,
            mrr = save_rollups.mrr + excluded.mrr
    $$;

    CREATE FUNCTION save_rollup_count() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF (OLD.state, OLD.currency, OLD.mrr) IS NOT DISTINCT FROM
               (NEW.state, NEW.currency, NEW.mrr) THEN
                RETURN NULL;
            END IF;
            PERFORM save_rollup_add(OLD, -1);
        END IF;
        PERFORM save_rollup_add(NEW, 1);
        RETURN NULL;
    END $$;

    CREATE TRIGGER save_rollup_count AFTER INSERT OR UPDATE ON offer_saves
        FOR EACH ROW EXECUTE FUNCTION save_rollup_count();

    INSERT INTO save_rollups ({KEY}, pending, saved, lost, mrr)
    SELECT x.site_id, g.grain, date_trunc(g.grain, report_day(x.site_id, x.accepted_at))::date,
           x.offer_id, x.option_id, x.experiment_arm, coalesce(x.currency, ''),
           count(*) FILTER (WHERE x.state = 'pending'), count(*) FILTER (WHERE x.state = 'saved'),
           count(*) FILTER (WHERE x.state = 'lost'),
           coalesce(sum(x.mrr) FILTER (WHERE x.state = 'saved'), 0)
    FROM offer_saves x, (VALUES ('day'), ('week'), ('month')) g(grain)
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER save_rollup_count ON offer_saves;
    DROP FUNCTION save_rollup_count();
    DROP FUNCTION save_rollup_add(offer_saves, int);
    DROP TABLE save_rollups;
    """)
