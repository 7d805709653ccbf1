"""Report rollups: funnel counters per site, day (in the site's time zone), offer, option,
experiment arm, processing type, business entity and brand, kept by the reporting slice.

They are written by triggers owned by this revision (the reporting slice's SQL, in the database):
``personalized_offers`` inserts count decisions, ``offer_events`` inserts count the funnel.
A trigger rather than a fragment composed into each writer's statement: the event log is written
by four statements in three slices (the accept, a transition, a reported view, the bench and
tests' fixtures), and a trigger counts every one of them, in its transaction, with
``report_rollups`` written down in one place. The accept stays one statement and one round trip.

Every counter is bucketed by the *personalized offer's* issue day (a cohort): an event that
arrives late or out of order lands on the day its offer was shown, so a day's rates compare the
same subscribers. ``viewed``/``dismissed`` count personalized offers with at least one such event
(a per-offer advisory lock settles two first views at once); ``accepted``/``fulfilled``/``failed``
count fulfillments. ``shard`` spreads a hot row over connections (``pg_backend_pid() % 16``) so
that concurrent accepts of one offer do not queue on one row lock; reports sum the shards.

A rebuild (``offerd reports rebuild``) recomputes a range of days under the site's advisory lock,
which the triggers take shared: no event is counted twice or missed while it runs.

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

# Upper bounds (seconds) of the time-to-fulfil histogram's buckets; the last is open.
# Kept equal to offerd.reporting.metrics.FULFIL_BUCKETS (a test holds them equal).
BUCKETS = "ARRAY[1,2,5,10,30,60,120,300,600,1800,3600,7200,21600,43200,86400,172800,604800]"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE report_rollups (
        site_id            text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        day                date NOT NULL,
        offer_id           text NOT NULL,
        option_id          text NOT NULL DEFAULT '',
        experiment_arm     text NOT NULL DEFAULT '',
        processing_type    text NOT NULL DEFAULT '',
        business_entity_id text NOT NULL DEFAULT '',
        brand_id           text NOT NULL DEFAULT '',
        shard              smallint NOT NULL DEFAULT 0,
        decisions          bigint NOT NULL DEFAULT 0,
        viewed             bigint NOT NULL DEFAULT 0,
        dismissed          bigint NOT NULL DEFAULT 0,
        accepted           bigint NOT NULL DEFAULT 0,
        fulfilled          bigint NOT NULL DEFAULT 0,
        failed             bigint NOT NULL DEFAULT 0,
        failed_by_code     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        fulfil_seconds     double precision NOT NULL DEFAULT 0,
        fulfil_hist        bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[18]),
        PRIMARY KEY (site_id, day, offer_id, option_id, experiment_arm, processing_type,
                     business_entity_id, brand_id, shard)
    );
    COMMENT ON TABLE report_rollups IS
        'owned by offerd.reporting: written by the report_count_* triggers and reporting/store.py';

    -- The site's reporting lock: the triggers take it shared, a rebuild batch exclusively.
    CREATE FUNCTION report_site_lock(site text) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended('offerd.reports:' || site, 0) $$;

    CREATE FUNCTION report_day(site text, at timestamptz) RETURNS date
    LANGUAGE sql STABLE AS $$
        SELECT (at AT TIME ZONE coalesce((SELECT settings->>'time_zone' FROM sites
                                          WHERE id = site), 'UTC'))::date
    $$;

    CREATE FUNCTION report_bucket(seconds double precision) RETURNS int
    LANGUAGE sql IMMUTABLE AS $$
        SELECT coalesce((SELECT min(i) FROM unnest({BUCKETS}) WITH ORDINALITY b(bound, i)
                         WHERE seconds <= bound), 18)::int
    $$;

    -- Add one row's counters to the rollups (the only INSERT into report_rollups from a trigger).
    CREATE FUNCTION report_add(r report_rollups) RETURNS void
    LANGUAGE sql VOLATILE AS $$
        INSERT INTO report_rollups VALUES (r.*)
        ON CONFLICT (site_id, day, offer_id, option_id, experiment_arm, processing_type,
                     business_entity_id, brand_id, shard) DO UPDATE SET
            decisions = report_rollups.decisions + excluded.decisions,
            viewed = report_rollups.viewed + excluded.viewed,
            dismissed = report_rollups.dismissed + excluded.dismissed,
            accepted = report_rollups.accepted + excluded.accepted,
            fulfilled = report_rollups.fulfilled + excluded.fulfilled,
            failed = report_rollups.failed + excluded.failed,
            failed_by_code = CASE WHEN excluded.failed_by_code = '{{}}'::jsonb
                THEN report_rollups.failed_by_code
                ELSE (SELECT jsonb_object_agg(k, v) FROM (
                        SELECT k, sum(v::bigint) AS v FROM (
                            SELECT * FROM jsonb_each_text(report_rollups.failed_by_code)
                            UNION ALL SELECT * FROM jsonb_each_text(excluded.failed_by_code)
                        ) x(k, v) GROUP BY k) y) END,
            fulfil_seconds = report_rollups.fulfil_seconds + excluded.fulfil_seconds,
            fulfil_hist = CASE WHEN excluded.fulfilled = 0 THEN report_rollups.fulfil_hist
                ELSE (SELECT array_agg(a + b ORDER BY i) FROM unnest(
                        report_rollups.fulfil_hist, excluded.fulfil_hist)
                        WITH ORDINALITY u(a, b, i)) END
    $$;

    CREATE FUNCTION report_count_decision() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        r report_rollups;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(report_site_lock(NEW.site_id));
        r := ROW(NEW.site_id, report_day(NEW.site_id, NEW.created_at), NEW.offer_id, '',
                 coalesce(NEW.experiment_arm, ''), '', coalesce(NEW.business_entity_id, ''),
                 coalesce(NEW.brand_id, ''), pg_backend_pid() % 16,
                 1, 0, 0, 0, 0, 0, '{{}}'::jsonb, 0, array_fill(0::bigint, ARRAY[18]));
        PERFORM report_add(r);
        RETURN NULL;
    END $$;

    CREATE FUNCTION report_count_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        po record;
        f record;
        r report_rollups;
        seconds double precision;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(report_site_lock(NEW.site_id));
        SELECT p.created_at, p.experiment_arm, p.business_entity_id, p.brand_id,
               report_day(p.site_id, p.created_at) AS day
        INTO po FROM personalized_offers p WHERE p.id = NEW.personalized_offer_id;
        IF NOT FOUND THEN
            RETURN NULL;  -- an event of no personalized offer counts nowhere (a rebuild agrees)
        END IF;
        r := ROW(NEW.site_id, po.day, NEW.offer_id, '', coalesce(po.experiment_arm, ''), '',
                 coalesce(po.business_entity_id, ''), coalesce(po.brand_id, ''),
                 pg_backend_pid() % 16,
                 0, 0, 0, 0, 0, 0, '{{}}'::jsonb, 0, array_fill(0::bigint, ARRAY[18]));
        IF NEW.type IN ('viewed', 'dismissed') THEN
            -- counted once per personalized offer: the first to take the lock counts
            PERFORM pg_advisory_xact_lock(hashtextextended(
                'offerd.reports.po:' || NEW.personalized_offer_id, 0));
            IF EXISTS (SELECT 1 FROM offer_events e
                       WHERE e.personalized_offer_id = NEW.personalized_offer_id
                         AND e.type = NEW.type AND e.id <> NEW.id) THEN
                RETURN NULL;
            END IF;
            IF NEW.type = 'viewed' THEN r.viewed := 1; ELSE r.dismissed := 1; END IF;
        ELSE
            SELECT fl.option_id, fl.processing_type, fl.created_at, fl.error_code
            INTO f FROM offer_fulfillments fl WHERE fl.id = NEW.fulfillment_id;
            r.option_id := coalesce(f.option_id, NEW.option_id, '');
            r.processing_type := coalesce(f.processing_type, '');
            IF NEW.type = 'accepted' THEN
                r.accepted := 1;
            ELSIF NEW.type = 'fulfilled' THEN
                r.fulfilled := 1;
                seconds := greatest(0, extract(epoch FROM NEW.occurred_at - f.created_at));
                r.fulfil_seconds := coalesce(seconds, 0);
                r.fulfil_hist[report_bucket(coalesce(seconds, 0))] := 1;
            ELSE
                r.failed := 1;
                r.failed_by_code := jsonb_build_object(coalesce(f.error_code, 'unknown'), 1);
            END IF;
        END IF;
        PERFORM report_add(r);
        RETURN NULL;
    END $$;

    CREATE TRIGGER report_count_decision AFTER INSERT ON personalized_offers
        FOR EACH ROW EXECUTE FUNCTION report_count_decision();
    CREATE TRIGGER report_count_event AFTER INSERT ON offer_events
        FOR EACH ROW EXECUTE FUNCTION report_count_event();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER report_count_event ON offer_events;
    DROP TRIGGER report_count_decision ON personalized_offers;
    DROP FUNCTION report_count_event();
    DROP FUNCTION report_count_decision();
    DROP FUNCTION report_add(report_rollups);
    DROP FUNCTION report_bucket(double precision);
    DROP FUNCTION report_day(text, timestamptz);
    DROP FUNCTION report_site_lock(text);
    DROP TABLE report_rollups;
    """)
