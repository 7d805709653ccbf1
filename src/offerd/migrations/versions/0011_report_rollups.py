"""Report rollups: funnel counters per site, day (in the site's time zone), offer, option,
experiment arm, processing type, business entity and brand, kept by the reporting slice.

They are written by statement-level triggers owned by this revision (the reporting slice's SQL,
in the database): ``personalized_offers`` inserts count decisions, ``offer_events`` inserts count
the funnel, in the transaction that writes them.

A trigger rather than a fragment composed into each writer's statement: the event log is written
by four statements in three slices (the accept, a transition, a reported view, the bench and
tests' fixtures), and a trigger counts every one of them with ``report_rollups`` written down in
one place; the accept stays one statement and one round trip. Statement-level with a transition
table rather than per row: a bulk insert (a benchmark's, an import's) adds to each rollup row
once per statement instead of updating one row N times in one transaction (each update leaves a
version the next must step over: quadratic).

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
HIST_COUNTS = ", ".join(
    f"count(*) FILTER (WHERE secs IS NOT NULL AND report_bucket(secs) = {i})" for i in range(1, 19)
)
KEY = (
    "site_id, day, offer_id, option_id, experiment_arm, processing_type, business_entity_id, "
    "brand_id, shard"
)


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

    CREATE FUNCTION report_count_decisions() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(report_site_lock(site_id))
        FROM (SELECT DISTINCT site_id FROM new_rows ORDER BY 1) s;
        INSERT INTO report_rollups (site_id, day, offer_id, experiment_arm, business_entity_id,
                                    brand_id, shard, decisions)
        SELECT n.site_id, report_day(n.site_id, n.created_at), n.offer_id,
               coalesce(n.experiment_arm, ''), coalesce(n.business_entity_id, ''),
               coalesce(n.brand_id, ''), pg_backend_pid() % 16, count(*)
        FROM new_rows n
        GROUP BY 1, 2, 3, 4, 5, 6
        ON CONFLICT ({KEY}) DO UPDATE SET
            decisions = report_rollups.decisions + excluded.decisions;
        RETURN NULL;
    END $$;

    CREATE FUNCTION report_count_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(report_site_lock(site_id))
        FROM (SELECT DISTINCT site_id FROM new_rows ORDER BY 1) s;
        -- views and dismissals count once per personalized offer: the first transaction to
        -- take the offer's lock counts, the next sees its event (a new snapshot after the lock)
        PERFORM pg_advisory_xact_lock(hashtextextended('offerd.reports.po:' || po, 0))
        FROM (SELECT DISTINCT personalized_offer_id AS po FROM new_rows
              WHERE type IN ('viewed', 'dismissed') ORDER BY 1) v;
        INSERT INTO report_rollups
        SELECT site_id, day, offer_id, option_id, arm, pt, be, brand, pg_backend_pid() % 16, 0,
               count(DISTINCT po) FILTER (WHERE type = 'viewed' AND first),
               count(DISTINCT po) FILTER (WHERE type = 'dismissed' AND first),
               count(*) FILTER (WHERE type = 'accepted'),
               count(*) FILTER (WHERE type = 'fulfilled'),
               count(*) FILTER (WHERE type = 'failed'),
               coalesce((SELECT jsonb_object_agg(c, k) FROM (
                    SELECT c, count(*) AS k FROM unnest(array_agg(code)) c
                    WHERE c IS NOT NULL GROUP BY c) x), '{{}}'::jsonb),
               coalesce(sum(secs), 0),
               ARRAY[{HIST_COUNTS}]::bigint[]
        FROM (
            SELECT n.site_id, n.personalized_offer_id AS po, n.type, n.offer_id,
                   report_day(p.site_id, p.created_at) AS day,
                   CASE WHEN n.type IN ('viewed', 'dismissed') THEN ''
                        ELSE coalesce(f.option_id, n.option_id, '') END AS option_id,
                   CASE WHEN n.type IN ('viewed', 'dismissed') THEN ''
                        ELSE coalesce(f.processing_type, '') END AS pt,
                   coalesce(p.experiment_arm, '') AS arm, coalesce(p.business_entity_id, '') AS be,
                   coalesce(p.brand_id, '') AS brand,
                   n.type IN ('viewed', 'dismissed') AND NOT EXISTS (
                       SELECT 1 FROM offer_events e
                       WHERE e.personalized_offer_id = n.personalized_offer_id
                         AND e.type = n.type
                         AND e.id NOT IN (SELECT id FROM new_rows)) AS first,
                   CASE WHEN n.type = 'fulfilled' THEN greatest(0,
                       extract(epoch FROM n.occurred_at - f.created_at))::double precision
                   END AS secs,
                   CASE WHEN n.type = 'failed' THEN coalesce(f.error_code, 'unknown') END AS code
            -- an event of no personalized offer counts nowhere (a rebuild agrees)
            FROM new_rows n JOIN personalized_offers p ON p.id = n.personalized_offer_id
            LEFT JOIN offer_fulfillments f
                ON f.id = n.fulfillment_id AND n.type IN ('accepted', 'fulfilled', 'failed')
        ) ev
        GROUP BY site_id, day, offer_id, option_id, arm, pt, be, brand
        HAVING count(*) FILTER (WHERE type NOT IN ('viewed', 'dismissed') OR first) > 0
        ON CONFLICT ({KEY}) DO UPDATE SET
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
                        WITH ORDINALITY u(a, b, i)) END;
        RETURN NULL;
    END $$;

    CREATE TRIGGER report_count_decisions AFTER INSERT ON personalized_offers
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION report_count_decisions();
    CREATE TRIGGER report_count_events AFTER INSERT ON offer_events
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION report_count_events();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER report_count_events ON offer_events;
    DROP TRIGGER report_count_decisions ON personalized_offers;
    DROP FUNCTION report_count_events();
    DROP FUNCTION report_count_decisions();
    DROP FUNCTION report_bucket(double precision);
    DROP FUNCTION report_day(text, timestamptz);
    DROP FUNCTION report_site_lock(text);
    DROP TABLE report_rollups;
    """)
