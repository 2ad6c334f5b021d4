-- schema/45_metrics.sql
-- Tier 40: measurements (metrics): a name, a value, an optional
-- session, a time. Partitioned by day so a stats window reads only its days
-- and retention drops whole days; get_metric_stats() gives count, avg, min,
-- max and p50/p95/p99 over a window from an index-only scan. Row-level
-- security: the application sees and writes its session's metrics and the
-- global ones (no session). Append-only; not audited.
-- Its functions, triggers and row-level security: repeatable/45_metrics.sql.
-- Needs: schema/40_sessions.sql.

create table if not exists toolsdb.metrics (
    metric_id bigint generated always as identity,
    metric_name text not null,
    metric_value double precision not null,
    session_id text,
    tags jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint metrics_pkey primary key (metric_id, created_at),
    constraint metrics_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint metric_name_is_valid check (metric_name ~ '^[a-z][a-z0-9_.]*$' and char_length(metric_name) <= 200),
    constraint metric_value_is_finite check (metric_value not in ('NaN', 'Infinity', '-Infinity')),
    constraint tags_is_object check (jsonb_typeof(tags) = 'object')
) partition by range (created_at);

create table if not exists toolsdb.metrics_default
partition of toolsdb.metrics default;

comment on table toolsdb.metrics_default is
'Default partition of toolsdb.metrics: rows of days without their own partition land here until '
'toolsdb.metrics_create_partitions() moves them.';

-- Stats by name over a window: an index-only scan of the window's days.
create index if not exists metrics_name_created_at_idx on toolsdb.metrics (metric_name, created_at)
include (metric_value);

create index if not exists metrics_session_id_idx on toolsdb.metrics (session_id, created_at);

comment on table toolsdb.metrics is
'Measurements: notification_latency_ms, hook_duration_ms, ... with an optional session. '
'Partitioned by day (UTC); toolsdb.metrics_apply_retention() drops whole days (config '
'metrics.retention, default 30 days). Stats with toolsdb.get_metric_stats(). Append-only.';

comment on column toolsdb.metrics.metric_id is 'Increasing id (unique with created_at).';

comment on column toolsdb.metrics.metric_name is
'What was measured, lowercase dotted snake_case, e.g. notification_latency_ms.';

comment on column toolsdb.metrics.metric_value is 'The value, a finite number.';

comment on column toolsdb.metrics.session_id is 'The session measured, or null for a global metric.';

comment on column toolsdb.metrics.tags is 'Dimensions of the measurement, e.g. {"backend": "slack"} (JSON object).';

comment on column toolsdb.metrics.created_at is 'When it was measured; the partition key.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metrics', 'high-volume measurements, append-only: the rows are the record')
on conflict (table_name) do nothing;

-- One row per metric and closed day: the day's exact count, sum, min and max,
-- and a histogram of its values in buckets of 1% relative width, built by
-- toolsdb.metrics_build_rollups() (toolsdb maintain). get_metric_stats() reads
-- a window's whole days here and scans only the rest; a row counts only while
-- max_metric_id is still the day's highest (no row added since), and deletes
-- from toolsdb.metrics remove the rows of the days they touch.
create table if not exists toolsdb.metric_rollups (
    metric_name text not null,
    day date not null,
    row_count bigint not null,
    value_sum numeric not null,
    value_min double precision not null,
    value_max double precision not null,
    buckets integer[] not null,
    bucket_counts bigint[] not null,
    max_metric_id bigint not null,
    built_at timestamptz not null default now(),
    constraint metric_rollups_pkey primary key (metric_name, day),
    constraint metric_name_is_valid check (metric_name ~ '^[a-z][a-z0-9_.]*$' and char_length(metric_name) <= 200),
    constraint row_count_is_positive check (row_count > 0),
    constraint value_range_is_valid check (value_min <= value_max),
    constraint buckets_match_counts check (
        cardinality(buckets) = cardinality(bucket_counts) and cardinality(buckets) between 1 and 100000
    )
);

comment on table toolsdb.metric_rollups is
'Per metric and closed day (UTC) of toolsdb.metrics: exact count, sum, min, max and a histogram of '
'the values in buckets 1% wide (relative), built by toolsdb.metrics_build_rollups(). '
'toolsdb.get_metric_stats() reads the whole days of a window here; a row is used only while no '
'row was added to its day since (max_metric_id), and deleting metrics removes the rows of their '
'days. Derived data: not audited, not row-secured (only its functions read it).';

comment on column toolsdb.metric_rollups.metric_name is 'The metric (toolsdb.metrics.metric_name).';

comment on column toolsdb.metric_rollups.day is 'The UTC day, one daily partition of toolsdb.metrics.';

comment on column toolsdb.metric_rollups.row_count is 'How many measurements of the metric the day holds.';

comment on column toolsdb.metric_rollups.value_sum is 'Their exact sum (numeric).';

comment on column toolsdb.metric_rollups.value_min is 'Their smallest value.';

comment on column toolsdb.metric_rollups.value_max is 'Their largest value.';

comment on column toolsdb.metric_rollups.buckets is
'Histogram buckets in value order, toolsdb_private.metric_bucket() of each value (ascending).';

comment on column toolsdb.metric_rollups.bucket_counts is 'How many values fell in each bucket of buckets.';

comment on column toolsdb.metric_rollups.max_metric_id is
'The highest metric_id of the whole day (every metric) when built: a higher one now means rows '
'were added since, and the rollup is not used.';

comment on column toolsdb.metric_rollups.built_at is 'When it was built.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metric_rollups', 'derived from toolsdb.metrics by maintenance, rebuilt at will: the metrics are the record')
on conflict (table_name) do nothing;
