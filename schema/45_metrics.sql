-- schema/45_metrics.sql
-- Tier 40: measurements (seed 001's metrics): a name, a value, an optional
-- session, a time. Partitioned by day so a stats window reads only its days
-- and retention drops whole days; get_metric_stats() gives count, avg, min,
-- max and p50/p95/p99 over a window from an index-only scan. Row-level
-- security: the application sees and writes its session's metrics and the
-- global ones (no session). Append-only; not audited.
-- Needs: schema/40_sessions.sql, schema/12_audit.sql (tg__append_only),
--        schema/13_config.sql (metrics.retention),
--        schema/14_partitions.sql (create_range_partitions).

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
'Measurements (seed 001): notification_latency_ms, hook_duration_ms, ... with an optional session. '
'Partitioned by day (UTC); toolsdb.metrics_apply_retention() drops whole days (config '
'metrics.retention, default 30 days). Stats with toolsdb.get_metric_stats(). Append-only.';
comment on column toolsdb.metrics.metric_id is 'Increasing id (unique with created_at).';
comment on column toolsdb.metrics.metric_name is
'What was measured, lowercase dotted snake_case, e.g. notification_latency_ms.';
comment on column toolsdb.metrics.metric_value is 'The value, a finite number.';
comment on column toolsdb.metrics.session_id is 'The session measured, or null for a global metric.';
comment on column toolsdb.metrics.tags is 'Dimensions of the measurement, e.g. {"backend": "slack"} (JSON object).';
comment on column toolsdb.metrics.created_at is 'When it was measured; the partition key.';

create or replace trigger _010_append_only
before update on toolsdb.metrics
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.metrics', 'measurements are never rewritten; old days leave through toolsdb.metrics_apply_retention()'
);

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metrics', 'high-volume measurements, append-only: the rows are the record')
on conflict (table_name) do nothing;

-- Session metrics are isolated per session; global ones (no session) are
-- shared by all.
select toolsdb.isolate_rows('toolsdb.metrics', 'session_id', shared_when_null => true);

create or replace function toolsdb_private.metrics_partition_name(day date)
returns text
language sql
immutable
return 'metrics_' || pg_catalog.to_char(day, '"y"YYYY"m"MM"d"DD');

comment on function toolsdb_private.metrics_partition_name(date) is
'Name of the daily partition of toolsdb.metrics holding the given day: metrics_yYYYYmMMdDD.';

create or replace function toolsdb.metrics_create_partitions(days_ahead integer default 7)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if days_ahead is null or days_ahead not between 0 and 366 then
        raise exception 'days_ahead must be between 0 and 366, not %', days_ahead
            using errcode = 'invalid_parameter_value';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.metrics_create_partitions'));
    return toolsdb_private.create_range_partitions('toolsdb.metrics', 'day', days_ahead);
end;
$function$;

comment on function toolsdb.metrics_create_partitions(integer) is
'Creates the daily partitions of toolsdb.metrics for today and the next days_ahead days (default '
'7, UTC), and for any day whose rows landed in the default partition (they are moved). Returns how '
'many it created. Run by every toolsdb migrate; schedule it daily too.';

create or replace function toolsdb.metrics_apply_retention(max_age interval default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    age interval := max_age;
    cutoff date;
    part record;
    dropped bigint := 0;
    part_rows bigint;
begin
    if age is null then
        select (c.value #>> '{}')::interval into age
        from toolsdb.config as c
        where c.key = 'metrics.retention' and not c.is_secret;
    end if;
    age := coalesce(age, interval '30 days');
    if age < interval '1 day' then
        raise exception 'metrics retention must keep at least one day, not %', age
            using errcode = 'invalid_parameter_value';
    end if;
    -- Whole days strictly before the cutoff day go.
    cutoff := ((pg_catalog.now() - age) at time zone 'UTC')::date;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.metrics_create_partitions'));
    for part in
        select c.relname
        from pg_catalog.pg_inherits as i
        inner join pg_catalog.pg_class as c on i.inhrelid = c.oid
        where i.inhparent = 'toolsdb.metrics'::regclass
            and c.relname ~ '^metrics_y[0-9]{4}m[0-9]{2}d[0-9]{2}$'
            and pg_catalog.to_date(pg_catalog.substring(c.relname, 9), '"y"YYYY"m"MM"d"DD') < cutoff
        order by c.relname
    loop
        execute pg_catalog.format('select pg_catalog.count(*) from toolsdb.%I', part.relname) into part_rows;
        execute pg_catalog.format('drop table toolsdb.%I', part.relname);
        dropped := dropped + part_rows;
    end loop;
    delete from toolsdb.metrics_default as d
    where d.created_at < cutoff::timestamp at time zone 'UTC';
    get diagnostics part_rows = row_count;
    return dropped + part_rows;
end;
$function$;

comment on function toolsdb.metrics_apply_retention(interval) is
'Retention of toolsdb.metrics: drops the daily partitions older than max_age (default: config '
'metrics.retention, else 30 days; at least 1 day) and such rows of the default partition. Returns '
'how many rows went.';

create or replace function toolsdb.insert_metric(
    metric_name text,
    metric_value double precision,
    session_id text default null,
    tags jsonb default '{}',
    measured_at timestamptz default null
)
returns bigint
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.metrics (metric_name, metric_value, session_id, tags, created_at)
    values ($1, $2, $3, coalesce($4, '{}'), coalesce($5, pg_catalog.now()))
    returning metric_id;
$function$;

comment on function toolsdb.insert_metric(text, double precision, text, jsonb, timestamptz) is
'Records a measurement (seed 001''s insert_metric), now unless measured_at says when. Returns its metric_id.';

create or replace function toolsdb.get_metric_stats(
    metric_name text,
    since timestamptz default null,
    until timestamptz default null
)
returns table (
    metric_name text,
    count bigint,
    avg double precision,
    min double precision,
    max double precision,
    p50 double precision,
    p95 double precision,
    p99 double precision
)
language sql
stable
set search_path = ''
set work_mem = '64MB'
as $function$
    select
        $1,
        pg_catalog.count(*),
        pg_catalog.avg(m.metric_value),
        pg_catalog.min(m.metric_value),
        pg_catalog.max(m.metric_value),
        pg_catalog.percentile_cont(0.5) within group (order by m.metric_value),
        pg_catalog.percentile_cont(0.95) within group (order by m.metric_value),
        pg_catalog.percentile_cont(0.99) within group (order by m.metric_value)
    from toolsdb.metrics as m
    where m.metric_name = $1
        and m.created_at >= coalesce($2, '-infinity')
        and m.created_at < coalesce($3, 'infinity');
$function$;

comment on function toolsdb.get_metric_stats(text, timestamptz, timestamptz) is
'Statistics of one metric over [since, until) (seed 001''s get_metric_stats; default: all kept '
'rows): count, avg, min, max and the continuous percentiles p50, p95, p99 (null when there are '
'no rows). Reads only the window''s daily partitions; runs with work_mem 64MB so the percentile '
'sort of a week of values stays in memory.';
