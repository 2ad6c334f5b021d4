-- repeatable/45_metrics.sql
-- Tier 40: measurements (metrics): a name, a value, an optional
-- session, a time. Partitioned by day so a stats window reads only its days
-- and retention drops whole days; get_metric_stats() gives count, avg, min,
-- max and p50/p95/p99 over a window from an index-only scan. Row-level
-- security: the application sees and writes its session's metrics and the
-- global ones (no session). Append-only; not audited.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/45_metrics.sql.

create or replace trigger _010_append_only
before update on toolsdb.metrics
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.metrics', 'measurements are never rewritten; old days leave through toolsdb.metrics_apply_retention()'
);

-- Session metrics are isolated per session; global ones (no session) are
-- shared by all.
select toolsdb.isolate_rows('toolsdb.metrics', 'session_id', shared_when_null => true);

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
        select p.partition_name as relname
        from toolsdb_private.range_partitions('toolsdb.metrics') as p
        where p.ends_at <= cutoff::timestamp at time zone 'UTC'
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
'Records a measurement (insert_metric, as in the hook-notification API), now unless measured_at '
'says when. Returns its metric_id.';

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
'Statistics of one metric over [since, until) (get_metric_stats, as in the hook-notification API; '
'default: all kept rows): count, avg, min, max and the continuous percentiles p50, p95, p99 (null '
'when there are no rows). Reads only the window''s daily partitions; runs with work_mem 64MB so '
'the percentile sort of a week of values stays in memory.';

-- Today's and the next seven days' partitions, on every migrate (a no-op
-- when they exist); toolsdb.maintain() keeps them ahead after that.
select toolsdb.metrics_create_partitions(7);
