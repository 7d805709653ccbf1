"""Report rollups: funnel counters per site, day (in the site's time zone), offer, option,
experiment arm, processing type, business entity and brand, kept by the reporting slice.

They are written by triggers owned by this revision (the reporting slice's SQL, in the
database): ``personalized_offers`` inserts count decisions, ``offer_events`` inserts count the
funnel, in the transaction that writes them.

A trigger rather than a fragment composed into each writer's statement: the event log is written
by four statements in three slices (the accept, a transition, a reported view, the bench and
tests' fixtures), and a trigger counts every one of them with ``report_rollups`` written down in
one place; the accept stays one statement and one round trip. The events' trigger is per row,
one plan-cached upsert per case (~58 us on the accept statement, bench/bench_rollup_cost.py; a
statement-level one with a transition table cost ~240 us). The decisions' trigger is
per statement: a bulk insert of personalized offers (a benchmark's setup, an import) adds once
per statement instead of updating one rollup row N times in one transaction (each update leaves
a version the next must step over: quadratic).

Every counter is bucketed by the *personalized offer's* issue day (a cohort): an event that
arrives late or out of order lands on the day its offer was shown, so a day's rates compare the
same subscribers. ``viewed``/``dismissed`` count personalized offers with at least one such event
(a per-offer advisory lock settles two first views at once); ``accepted``/``fulfilled``/``failed``
count fulfillments. ``shard`` spreads a hot row over connections (``pg_backend_pid() % 16``) so
that concurrent accepts of one offer do not queue on one row lock; reports sum the shards.

A rebuild (``offerd reports rebuild``) recomputes a range of days under the site's advisory lock,
which the triggers take shared: no event is counted twice or missed while it runs.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Upper bounds (seconds) of the time-to-fulfil histogram's buckets; the last is open.
# Kept equal to offerd.reporting.metrics.FULFIL_BUCKETS (a test holds them equal).
BUCKETS = "ARRAY[1,2,5,10,30,60,120,300,600,1800,3600,7200,21600,43200,86400,172800,604800]"
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
    -- the shards a compaction folds (reporting/sweeps.py)
    CREATE INDEX report_rollups_shards ON report_rollups (day) WHERE shard <> 0;
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

    -- Per row, with one plan-cached statement per case: the accept's event costs a lock, two
    -- primary-key reads and one upsert (a statement-level trigger's transition-table query
    -- cost the accept five times more; see bench/bench_rollup_cost.py).
    CREATE FUNCTION report_count_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        po record;
        f record;
        option text;
        pt text;
        secs double precision;
        b int;
        code text;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(report_site_lock(NEW.site_id));
        SELECT coalesce(p.experiment_arm, '') AS arm, coalesce(p.business_entity_id, '') AS be,
               coalesce(p.brand_id, '') AS brand,
               (p.created_at AT TIME ZONE coalesce(s.settings->>'time_zone', 'UTC'))::date AS day
        INTO po FROM personalized_offers p JOIN sites s ON s.id = p.site_id
        WHERE p.id = NEW.personalized_offer_id;
        IF NOT FOUND THEN
            RETURN NULL;  -- an event of no personalized offer counts nowhere (a rebuild agrees)
        END IF;
        IF NEW.type IN ('viewed', 'dismissed') THEN
            -- once per personalized offer: the first transaction to take the offer's lock
            -- counts, the next sees its event (a new snapshot after the lock)
            PERFORM pg_advisory_xact_lock(hashtextextended(
                'offerd.reports.po:' || NEW.personalized_offer_id, 0));
            IF EXISTS (SELECT 1 FROM offer_events e
                       WHERE e.personalized_offer_id = NEW.personalized_offer_id
                         AND e.type = NEW.type AND e.id <> NEW.id) THEN
                RETURN NULL;
            END IF;
            INSERT INTO report_rollups ({KEY}, viewed, dismissed)
            VALUES (NEW.site_id, po.day, NEW.offer_id, '', po.arm, '', po.be, po.brand,
                    pg_backend_pid() % 16, (NEW.type = 'viewed')::int,
                    (NEW.type = 'dismissed')::int)
            ON CONFLICT ({KEY}) DO UPDATE SET
                viewed = report_rollups.viewed + excluded.viewed,
                dismissed = report_rollups.dismissed + excluded.dismissed;
            RETURN NULL;
        END IF;
        SELECT fl.option_id, fl.processing_type, fl.created_at, fl.error_code
        INTO f FROM offer_fulfillments fl WHERE fl.id = NEW.fulfillment_id;
        option := coalesce(f.option_id, NEW.option_id, '');
        pt := coalesce(f.processing_type, '');
        IF NEW.type = 'accepted' THEN
            INSERT INTO report_rollups ({KEY}, accepted)
            VALUES (NEW.site_id, po.day, NEW.offer_id, option, po.arm, pt, po.be, po.brand,
                    pg_backend_pid() % 16, 1)
            ON CONFLICT ({KEY}) DO UPDATE SET accepted = report_rollups.accepted + 1;
        ELSIF NEW.type = 'fulfilled' THEN
            secs := greatest(0, extract(epoch FROM NEW.occurred_at - f.created_at));
            b := report_bucket(secs);
            INSERT INTO report_rollups ({KEY}, fulfilled, fulfil_seconds, fulfil_hist)
            VALUES (NEW.site_id, po.day, NEW.offer_id, option, po.arm, pt, po.be, po.brand,
                    pg_backend_pid() % 16, 1, secs,
                    array_fill(0::bigint, ARRAY[b - 1]) || 1::bigint
                        || array_fill(0::bigint, ARRAY[18 - b]))
            ON CONFLICT ({KEY}) DO UPDATE SET
                fulfilled = report_rollups.fulfilled + 1,
                fulfil_seconds = report_rollups.fulfil_seconds + excluded.fulfil_seconds,
                fulfil_hist[b] = report_rollups.fulfil_hist[b] + 1;
        ELSE
            code := coalesce(f.error_code, 'unknown');
            INSERT INTO report_rollups ({KEY}, failed, failed_by_code)
            VALUES (NEW.site_id, po.day, NEW.offer_id, option, po.arm, pt, po.be, po.brand,
                    pg_backend_pid() % 16, 1, jsonb_build_object(code, 1))
            ON CONFLICT ({KEY}) DO UPDATE SET
                failed = report_rollups.failed + 1,
                failed_by_code = report_rollups.failed_by_code || jsonb_build_object(code,
                    coalesce((report_rollups.failed_by_code->>code)::bigint, 0) + 1);
        END IF;
        RETURN NULL;
    END $$;

    CREATE TRIGGER report_count_decisions AFTER INSERT ON personalized_offers
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION report_count_decisions();
    CREATE TRIGGER report_count_event AFTER INSERT ON offer_events
        FOR EACH ROW EXECUTE FUNCTION report_count_event();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER report_count_event ON offer_events;
    DROP TRIGGER report_count_decisions ON personalized_offers;
    DROP FUNCTION report_count_event();
    DROP FUNCTION report_count_decisions();
    DROP FUNCTION report_bucket(double precision);
    DROP FUNCTION report_day(text, timestamptz);
    DROP FUNCTION report_site_lock(text);
    DROP TABLE report_rollups;
    """)
