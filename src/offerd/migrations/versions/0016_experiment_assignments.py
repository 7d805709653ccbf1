"""Experiment assignments: each subscriber's first assignment to an experiment's arm
(``experiment_assignments``), whether they accepted, and (their save window over) whether they
were saved or lost; and their counts per site, experiment, arm and day of assignment in the site's
time zone (``experiment_rollups``), so the experiments report over years reads a row per day and
arm instead of every decision ``served``.

Neither is written on a request's path. The ``fold_experiments`` sweep folds new ``served`` rows
(``folded`` marks the ones done: existing rows are folded here, new ones start unfolded, and a
partial index holds only the unfolded) and acceptances (fulfillments with an experiment, from
the ``experiment_acceptances`` mark in ``report_marks``), then settles assignments as the saves
are settled. A trigger on ``experiment_assignments`` keeps the rollups: an insert counts the
assignment, an update moves it (accepted, its state, or an earlier first assignment found late).
A site's deletion removes both tables by cascade, so deletes are not counted.
``offerd reports rebuild`` recomputes the rollups.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

KEY = "site_id, experiment_id, experiment_arm, day"
WINDOW = "make_interval(days => coalesce((s.settings->>'save_window_days')::int, 30))"


def upgrade() -> None:
    op.execute(f"""
    -- Existing rows are folded by this migration (the default fills them without a rewrite);
    -- rows written from now on start unfolded.
    ALTER TABLE served ADD COLUMN folded boolean NOT NULL DEFAULT true;
    ALTER TABLE served ALTER COLUMN folded SET DEFAULT false;
    CREATE INDEX served_unfolded ON served (occurred_at) WHERE NOT folded;

    CREATE INDEX offer_fulfillments_experiment ON offer_fulfillments (created_at)
        WHERE experiment_id IS NOT NULL;

    CREATE TABLE report_marks (
        name text PRIMARY KEY,
        mark timestamptz NOT NULL
    );
    COMMENT ON TABLE report_marks IS 'owned by offerd.reporting: how far a sweep has read';

    CREATE TABLE experiment_assignments (
        site_id         text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        experiment_id   text NOT NULL,
        who             text NOT NULL,
        experiment_arm  text NOT NULL,
        holdout         boolean NOT NULL,
        subscription_id text,
        assigned_at     timestamptz NOT NULL,
        window_ends_at  timestamptz NOT NULL,
        accepted        boolean NOT NULL DEFAULT false,
        state           text NOT NULL CHECK (state IN ('pending', 'saved', 'lost', 'none')),
        settled_at      timestamptz,
        PRIMARY KEY (site_id, experiment_id, who)
    );
    CREATE INDEX experiment_assignments_due ON experiment_assignments (window_ends_at)
        WHERE state = 'pending';
    CREATE INDEX experiment_assignments_subscription
        ON experiment_assignments (site_id, subscription_id) WHERE state = 'pending';
    COMMENT ON TABLE experiment_assignments IS
        'owned by offerd.reporting: written by the fold_experiments sweep only';

    CREATE TABLE experiment_rollups (
        site_id        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        experiment_id  text NOT NULL,
        experiment_arm text NOT NULL,
        day            date NOT NULL,
        holdout        boolean NOT NULL DEFAULT false,
        assigned       bigint NOT NULL DEFAULT 0,
        accepted       bigint NOT NULL DEFAULT 0,
        pending        bigint NOT NULL DEFAULT 0,
        saved          bigint NOT NULL DEFAULT 0,
        lost           bigint NOT NULL DEFAULT 0,
        PRIMARY KEY ({KEY})
    );
    COMMENT ON TABLE experiment_rollups IS
        'owned by offerd.reporting: written by the experiment_rollup trigger and reporting/store.py';

    -- One assignment counted (sign 1) or taken back (-1) on its day.
    CREATE FUNCTION experiment_rollup_add(a experiment_assignments, sign int) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO experiment_rollups ({KEY}, holdout, assigned, accepted, pending, saved, lost)
        VALUES (a.site_id, a.experiment_id, a.experiment_arm, report_day(a.site_id, a.assigned_at),
                a.holdout, sign, sign * a.accepted::int, sign * (a.state = 'pending')::int,
                sign * (a.state = 'saved')::int, sign * (a.state = 'lost')::int)
        ON CONFLICT ({KEY}) DO UPDATE SET
            holdout = experiment_rollups.holdout OR excluded.holdout,
            assigned = experiment_rollups.assigned + excluded.assigned,
            accepted = experiment_rollups.accepted + excluded.accepted,
            pending = experiment_rollups.pending + excluded.pending,
            saved = experiment_rollups.saved + excluded.saved,
            lost = experiment_rollups.lost + excluded.lost
    $$;

    CREATE FUNCTION experiment_rollup_count() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF (OLD.experiment_arm, OLD.holdout, OLD.assigned_at, OLD.accepted, OLD.state)
               IS NOT DISTINCT FROM
               (NEW.experiment_arm, NEW.holdout, NEW.assigned_at, NEW.accepted, NEW.state) THEN
                RETURN NULL;
            END IF;
            PERFORM experiment_rollup_add(OLD, -1);
        END IF;
        PERFORM experiment_rollup_add(NEW, 1);
        RETURN NULL;
    END $$;

    -- What was served before this migration, folded at once.
    INSERT INTO experiment_assignments (site_id, experiment_id, who, experiment_arm, holdout,
        subscription_id, assigned_at, window_ends_at, accepted, state)
    SELECT DISTINCT ON (sv.site_id, sv.experiment_id, coalesce(sv.subscription_id, sv.customer_id))
        sv.site_id, sv.experiment_id, coalesce(sv.subscription_id, sv.customer_id),
        sv.experiment_arm, sv.offer_id IS NULL, sv.subscription_id, sv.occurred_at,
        sv.occurred_at + {WINDOW}, false,
        CASE WHEN sv.subscription_id IS NULL THEN 'none' ELSE 'pending' END
    FROM served sv JOIN sites s ON s.id = sv.site_id
    ORDER BY sv.site_id, sv.experiment_id, coalesce(sv.subscription_id, sv.customer_id),
        sv.occurred_at;

    UPDATE experiment_assignments a SET accepted = true
    FROM offer_fulfillments f JOIN personalized_offers po ON po.id = f.personalized_offer_id
    WHERE f.experiment_id IS NOT NULL AND a.site_id = f.site_id
      AND a.experiment_id = f.experiment_id
      AND a.who = coalesce(po.subscription_id, po.customer_id);

    INSERT INTO report_marks (name, mark) VALUES ('experiment_acceptances', now());

    INSERT INTO experiment_rollups ({KEY}, holdout, assigned, accepted, pending, saved, lost)
    SELECT site_id, experiment_id, experiment_arm, report_day(site_id, assigned_at),
        bool_or(holdout), count(*), count(*) FILTER (WHERE accepted),
        count(*) FILTER (WHERE state = 'pending'), 0, 0
    FROM experiment_assignments GROUP BY 1, 2, 3, 4;

    CREATE TRIGGER experiment_rollup_count AFTER INSERT OR UPDATE ON experiment_assignments
        FOR EACH ROW EXECUTE FUNCTION experiment_rollup_count();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE experiment_rollups;
    DROP TRIGGER experiment_rollup_count ON experiment_assignments;
    DROP FUNCTION experiment_rollup_count();
    DROP FUNCTION experiment_rollup_add(experiment_assignments, int);
    DROP TABLE experiment_assignments;
    DROP TABLE report_marks;
    DROP INDEX offer_fulfillments_experiment;
    DROP INDEX served_unfolded;
    ALTER TABLE served DROP COLUMN folded;
    """)
