"""Report periods: the rollups summed per ISO week and per month (``report_periods``), so a
report over months or years reads one row per week or month and key instead of one per day;
and each day's totals over every dimension (grain ``day``, offer ``*``), so a report by day
without grouping reads one row per day instead of one per key.

Kept by the compaction (``reporting.store.COMPACT``): the rows it folds into a day's compacted
row are added to their week's and month's rows in the same statement. So the invariant is
``report_periods`` = the sum of the *compacted* daily rows. The compacted shard is now -1
(it was 0): the triggers count on shards 0..15 (``pg_backend_pid() % 16``), and a trigger's row
on shard 0 was indistinguishable from a compacted one. Existing shard-0 rows become -1 here (all
of them counted already) and fill the periods.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

DIMS = "offer_id, option_id, experiment_arm, processing_type, business_entity_id, brand_id"
COUNTERS = "decisions, viewed, dismissed, accepted, fulfilled, failed"
HIST = ", ".join(f"sum(fulfil_hist[{i}])" for i in range(1, 19))
CODES = """coalesce((SELECT jsonb_object_agg(k, s) FROM (
        SELECT k, sum(v::bigint) AS s FROM unnest(array_agg(failed_by_code)) j,
            jsonb_each_text(j) x(k, v) GROUP BY k) y), '{}'::jsonb)"""


def _fill(grain: str) -> str:
    return f"""
    INSERT INTO report_periods (site_id, grain, period, {DIMS}, {COUNTERS}, failed_by_code,
        fulfil_seconds, fulfil_hist)
    SELECT site_id, '{grain}', date_trunc('{grain}', day)::date, {DIMS},
        {", ".join(f"sum({c})" for c in COUNTERS.split(", "))}, {CODES},
        sum(fulfil_seconds), ARRAY[{HIST}]::bigint[]
    FROM report_rollups WHERE shard = -1
    GROUP BY site_id, date_trunc('{grain}', day)::date, {DIMS};
    """


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE report_periods (
        site_id            text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
        grain              text NOT NULL CHECK (grain IN ('day', 'week', 'month')),
        period             date NOT NULL,
        offer_id           text NOT NULL,
        option_id          text NOT NULL DEFAULT '',
        experiment_arm     text NOT NULL DEFAULT '',
        processing_type    text NOT NULL DEFAULT '',
        business_entity_id text NOT NULL DEFAULT '',
        brand_id           text NOT NULL DEFAULT '',
        decisions          bigint NOT NULL DEFAULT 0,
        viewed             bigint NOT NULL DEFAULT 0,
        dismissed          bigint NOT NULL DEFAULT 0,
        accepted           bigint NOT NULL DEFAULT 0,
        fulfilled          bigint NOT NULL DEFAULT 0,
        failed             bigint NOT NULL DEFAULT 0,
        failed_by_code     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        fulfil_seconds     double precision NOT NULL DEFAULT 0,
        fulfil_hist        bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[18]),
        PRIMARY KEY (site_id, grain, period, {DIMS})
    );
    COMMENT ON TABLE report_periods IS
        'owned by offerd.reporting: the compacted report_rollups summed per week and month';

    UPDATE report_rollups SET shard = -1 WHERE shard = 0;
    DROP INDEX report_rollups_shards;
    -- the rows not compacted yet: what a compaction folds, and what a report adds to the periods
    CREATE INDEX report_rollups_live ON report_rollups (site_id, day) WHERE shard <> -1;
    {_fill("week")}
    {_fill("month")}
    INSERT INTO report_periods (site_id, grain, period, offer_id, {COUNTERS}, failed_by_code,
        fulfil_seconds, fulfil_hist)
    SELECT site_id, 'day', day, '*', {", ".join(f"sum({c})" for c in COUNTERS.split(", "))},
        {CODES}, sum(fulfil_seconds), ARRAY[{HIST}]::bigint[]
    FROM report_rollups WHERE shard = -1
    GROUP BY site_id, day;
    """)


def downgrade() -> None:
    # The compacted rows become a shard no trigger writes (16): the old compaction folds them
    # into shard 0 with their codes and histograms, and the old reports sum every shard anyway.
    op.execute("""
    DROP TABLE report_periods;
    DROP INDEX report_rollups_live;
    UPDATE report_rollups SET shard = 16 WHERE shard = -1;
    CREATE INDEX report_rollups_shards ON report_rollups (day) WHERE shard <> 0;
    """)
