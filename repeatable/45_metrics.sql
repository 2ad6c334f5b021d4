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
    -- Dropping a partition fires no delete trigger: forget the days' rollups here.
    delete from toolsdb.metric_rollups as r where r.day < cutoff;
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

-- Histogram buckets of get_metric_stats(): DDSketch's logarithmic buckets
-- (Masson, Rim and Lee, VLDB 2019) with a relative accuracy of 1%: gamma =
-- 1.01 / 0.99, a positive value v falls in bucket k = ceil(log_gamma(v)),
-- the interval (gamma^(k-1), gamma^k], whose every value is within 1% of
-- 2 gamma^k / (gamma + 1). Bucket ids are in value order: 50000 + k for
-- positive values, 0 for zero, -(50000 + k(|v|)) for negative ones (every
-- finite double fits). Plain SQL bodies, not strict (a CASE is not), so a
-- scan inlines them: called per row instead, they cost 15 times the scan.
create or replace function toolsdb_private.metric_bucket(value double precision)
returns integer
language sql
immutable
parallel safe
return case
    when value > 0 then 50000 + pg_catalog.ceil(pg_catalog.ln(value) / pg_catalog.ln(1.01::float8 / 0.99))::integer
    when value < 0 then -50000 - pg_catalog.ceil(pg_catalog.ln(-value) / pg_catalog.ln(1.01::float8 / 0.99))::integer
    else 0
end;

comment on function toolsdb_private.metric_bucket(double precision) is
'The histogram bucket of a metric value (get_metric_stats, metric_rollups): DDSketch''s '
'logarithmic buckets of relative accuracy 1%; ids in value order (negative values below 0, zero '
'0, positive values above).';

create or replace function toolsdb_private.metric_bucket_value(bucket integer)
returns double precision
language sql
immutable
parallel safe
-- sign * 2 gamma^k / (gamma + 1), as exp(k ln gamma + ln 0.99), kept within the normal doubles
-- (exp raises an error past them; zero's bucket comes out as 0 * exp(-708))
return pg_catalog.sign(bucket::float8) * pg_catalog.exp(
    greatest(
        least(
            (pg_catalog.abs(bucket) - 50000) * pg_catalog.ln(1.01::float8 / 0.99) + pg_catalog.ln(0.99::float8),
            709.78::float8
        ),
        -708::float8
    )
);

comment on function toolsdb_private.metric_bucket_value(integer) is
'The value that stands for a histogram bucket of toolsdb_private.metric_bucket(): within 1% of '
'every value of the bucket.';

create or replace function toolsdb.metrics_build_rollups()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    part record;
    part_day date;
    top bigint;
    built integer := 0;
    n integer;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.metrics_create_partitions'));
    for part in
        select p.partition_name, p.starts_at
        from toolsdb_private.range_partitions('toolsdb.metrics') as p
        where p.ends_at <= pg_catalog.date_trunc('day', pg_catalog.now() at time zone 'UTC') at time zone 'UTC'
            and p.ends_at - p.starts_at = interval '1 day'
        order by p.starts_at
    loop
        part_day := (part.starts_at at time zone 'UTC')::date;
        -- The partition's primary key leads with metric_id: one index descent.
        execute pg_catalog.format('select pg_catalog.max(metric_id) from toolsdb.%I', part.partition_name) into top;
        -- Current: the day's rows are the ones its rollups were built from.
        if top is not null
            and exists (select from toolsdb.metric_rollups as r where r.day = part_day)
            and not exists (
                select from toolsdb.metric_rollups as r
                where r.day = part_day and r.max_metric_id <> top
            ) then
            continue;
        end if;
        -- No write to the day while its rollups are built (a late measurement
        -- waits for the commit, then makes them stale by its higher id).
        execute pg_catalog.format('lock table toolsdb.%I in share mode', part.partition_name);
        execute pg_catalog.format('select pg_catalog.max(metric_id) from toolsdb.%I', part.partition_name) into top;
        delete from toolsdb.metric_rollups as r where r.day = part_day;
        if top is null then
            continue;
        end if;
        execute pg_catalog.format(
            'insert into toolsdb.metric_rollups (metric_name, day, row_count, value_sum, value_min, value_max,'
            ' buckets, bucket_counts, max_metric_id)'
            ' select g.metric_name, $1, pg_catalog.sum(g.n), pg_catalog.sum(g.s), pg_catalog.min(g.lo),'
            ' pg_catalog.max(g.hi), pg_catalog.array_agg(g.b order by g.b), pg_catalog.array_agg(g.n order by g.b), $2'
            ' from (select m.metric_name, toolsdb_private.metric_bucket(m.metric_value) as b,'
            ' pg_catalog.count(*) as n, pg_catalog.sum(m.metric_value::numeric) as s,'
            ' pg_catalog.min(m.metric_value) as lo, pg_catalog.max(m.metric_value) as hi'
            ' from toolsdb.%I as m group by 1, 2) as g group by g.metric_name',
            part.partition_name
        ) using part_day, top;
        get diagnostics n = row_count;
        built := built + n;
    end loop;
    return built;
end;
$function$;

comment on function toolsdb.metrics_build_rollups() is
'Builds toolsdb.metric_rollups for every closed UTC day (a daily partition of toolsdb.metrics that '
'ended) whose rollups are missing or stale (rows added since); returns how many metric-days it '
'built (0 when all are current: it then writes nothing). Holds a share lock on a day''s partition '
'while building it. Run by toolsdb.maintain().';

create or replace function toolsdb_private.tg__metric_rollups_forget()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if tg_op = 'TRUNCATE' then
        delete from toolsdb.metric_rollups;
    else
        -- Every metric's rollups of the days touched: a day holds rollups of all
        -- its metrics or of none, so a metric missing from a rolled-up day has
        -- no rows there (metric_stats_rolled relies on it).
        delete from toolsdb.metric_rollups as r
        using (select distinct (o.created_at at time zone 'UTC')::date as day from old_rows as o) as gone
        where r.day = gone.day;
    end if;
    return null;
end;
$function$;

comment on function toolsdb_private.tg__metric_rollups_forget() is
'Statement triggers _800_metric_rollups(_truncate) on toolsdb.metrics: rows deleted (a session''s '
'cascade, the default partition''s retention) or truncated make the rollups of their days go (every '
'metric''s), so get_metric_stats() scans those days again until the next '
'toolsdb.metrics_build_rollups().';

create or replace trigger _800_metric_rollups
after delete on toolsdb.metrics
referencing old table as old_rows
for each statement
execute function toolsdb_private.tg__metric_rollups_forget();

comment on trigger _800_metric_rollups on toolsdb.metrics is
'Deleted measurements make the rollups of their days go (toolsdb.metric_rollups).';

create or replace trigger _800_metric_rollups_truncate
after truncate on toolsdb.metrics
for each statement
execute function toolsdb_private.tg__metric_rollups_forget();

comment on trigger _800_metric_rollups_truncate on toolsdb.metrics is
'A truncate of the measurements empties toolsdb.metric_rollups.';

create or replace function toolsdb.metric_window_stats_exact(
    wanted_name text,
    window_start timestamptz,
    window_end timestamptz
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

comment on function toolsdb.metric_window_stats_exact(text, timestamptz, timestamptz) is
'toolsdb.get_metric_stats() by one scan of the window''s rows the caller sees: every figure '
'exact, the percentiles by percentile_cont (the window''s values sorted, in work_mem 64MB).';

create or replace function toolsdb.metric_window_stats(
    wanted_name text,
    window_start timestamptz,
    window_end timestamptz
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
language plpgsql
stable
set search_path = ''
set work_mem = '64MB'
as $function$
#variable_conflict use_column
declare
    wanted text := wanted_name;
    lo timestamptz := coalesce(window_start, '-infinity');
    hi timestamptz := coalesce(window_end, 'infinity');
    today timestamptz := pg_catalog.date_trunc('day', pg_catalog.now() at time zone 'UTC') at time zone 'UTC';
    total bigint := 0;
    value_sum numeric := 0;
    raw_sum double precision := 0;
    value_min double precision;
    value_max double precision;
    hist_b integer[] := '{}';
    hist_n bigint[] := '{}';
    part record;
    part_day date;
    top bigint;
    rollup toolsdb.metric_rollups;
    cursor_at timestamptz := lo;
    segments tstzrange[] := '{}';
    segment tstzrange;
    bucket record;
    used_rollups boolean := false;
    first_day_end timestamptz;
    b50 integer;
    b95 integer;
    b99 integer;
begin
    -- The first whole UTC day of the window ends here.
    first_day_end := pg_catalog.date_trunc('day', lo at time zone 'UTC') at time zone 'UTC' + interval '1 day';
    if lo > '-infinity' and first_day_end - interval '1 day' < lo then
        first_day_end := first_day_end + interval '1 day';  -- lo is within a day: the next one is the first whole
    end if;
    -- The rollups sum every session's rows: a caller under row-level security
    -- (the application in a session), or one that may not read them, gets the
    -- exact scan of the rows it sees; so does a window without a whole closed
    -- day (the last hours, today; an empty window), where nothing is to gain.
    if pg_catalog.row_security_active('toolsdb.metrics')
        or not pg_catalog.has_table_privilege('toolsdb.metric_rollups', 'select')
        or lo >= hi
        or (lo > '-infinity' and first_day_end > least(hi, today)) then
        return query select * from toolsdb.metric_window_stats_exact(wanted_name, window_start, window_end);
        return;
    end if;
    -- The window's whole closed days: from their current rollups, the rest scanned.
    for part in
        select p.partition_name, p.starts_at, p.ends_at
        from toolsdb_private.range_partitions('toolsdb.metrics') as p
        where p.starts_at >= lo and p.ends_at <= hi and p.ends_at <= today and p.ends_at - p.starts_at = interval '1 day'
        order by p.starts_at
    loop
        part_day := (part.starts_at at time zone 'UTC')::date;
        execute pg_catalog.format('select pg_catalog.max(metric_id) from toolsdb.%I', part.partition_name) into top;
        select r.* into rollup from toolsdb.metric_rollups as r where r.metric_name = wanted and r.day = part_day;
        if found and rollup.max_metric_id = top then
            used_rollups := true;
            total := total + rollup.row_count;
            value_sum := value_sum + rollup.value_sum;
            value_min := least(value_min, rollup.value_min);
            value_max := greatest(value_max, rollup.value_max);
            hist_b := hist_b || rollup.buckets;
            hist_n := hist_n || rollup.bucket_counts;
        elsif found or not exists (
            select from toolsdb.metric_rollups as r where r.day = part_day and r.max_metric_id = top
        ) then
            continue;  -- stale, or the day never rolled up: scanned below
        end if;
        -- (A day rolled up, current, without this metric holds none of its rows.)
        if cursor_at < part.starts_at then
            segments := segments || pg_catalog.tstzrange(cursor_at, part.starts_at, '[)');
        end if;
        cursor_at := part.ends_at;
    end loop;
    if not used_rollups then
        -- Nothing to gain: the exact scan, as a row-secured caller gets it.
        return query select * from toolsdb.metric_window_stats_exact(wanted_name, window_start, window_end);
        return;
    end if;
    if cursor_at < hi then
        segments := segments || pg_catalog.tstzrange(cursor_at, hi, '[)');
    end if;
    foreach segment in array segments loop
        for bucket in
            select toolsdb_private.metric_bucket(m.metric_value) as b, pg_catalog.count(*) as n,
                pg_catalog.sum(m.metric_value) as s, pg_catalog.min(m.metric_value) as mn,
                pg_catalog.max(m.metric_value) as mx
            from toolsdb.metrics as m
            where m.metric_name = wanted
                and m.created_at >= pg_catalog.lower(segment) and m.created_at < pg_catalog.upper(segment)
            group by 1
        loop
            total := total + bucket.n;
            raw_sum := raw_sum + bucket.s;
            value_min := least(value_min, bucket.mn);
            value_max := greatest(value_max, bucket.mx);
            hist_b := hist_b || bucket.b;
            hist_n := hist_n || bucket.n;
        end loop;
    end loop;
    -- (total > 0 here: a rollup holds at least one row.)
    -- The bucket of the ceil(q * total)-th smallest value (percentile_disc's).
    select
        pg_catalog.min(c.b) filter (where c.running >= pg_catalog.ceil(0.5 * total)),
        pg_catalog.min(c.b) filter (where c.running >= pg_catalog.ceil(0.95 * total)),
        pg_catalog.min(c.b) filter (where c.running >= pg_catalog.ceil(0.99 * total))
    into b50, b95, b99
    from (
        select h.b, pg_catalog.sum(pg_catalog.sum(h.n)) over (order by h.b) as running
        from unnest(hist_b, hist_n) as h (b, n)  -- multi-argument unnest: ROWS FROM syntax, unqualified
        group by h.b
    ) as c;
    return query select
        wanted,
        total,
        ((value_sum + raw_sum::numeric) / total)::double precision,
        value_min,
        value_max,
        least(greatest(toolsdb_private.metric_bucket_value(b50), value_min), value_max),
        least(greatest(toolsdb_private.metric_bucket_value(b95), value_min), value_max),
        least(greatest(toolsdb_private.metric_bucket_value(b99), value_min), value_max);
end;
$function$;

comment on function toolsdb.metric_window_stats(text, timestamptz, timestamptz) is
'toolsdb.get_metric_stats() itself (which keeps the parameter names of the hook-notification API). '
'For a caller who sees every row of toolsdb.metrics and may read toolsdb.metric_rollups (the '
'owner, an administrator): the window''s whole closed days from their current rollups, the rest '
'scanned; count, min and max exact, avg exact but for the last bits of a double, p50, p95, p99 '
'within 1% of the percentile_disc value (DDSketch buckets, toolsdb_private.metric_bucket). '
'Anyone else, and a window with no rolled-up day: toolsdb.metric_window_stats_exact().';

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
as $function$
    select * from toolsdb.metric_window_stats($1, $2, $3);
$function$;

comment on function toolsdb.get_metric_stats(text, timestamptz, timestamptz) is
'Statistics of one metric over [since, until) (get_metric_stats, as in the hook-notification API; '
'default: all kept rows): count, avg, min, max, p50, p95, p99 (null when there are no rows). For a '
'caller who sees every row (not under row-level security: the owner, an administrator): count, '
'min and max exact, avg exact to the last bits of a double, and the percentiles within 1% of the '
'exact percentile_disc value, from toolsdb.metric_rollups for the window''s whole past days '
'(toolsdb maintain builds them) and a scan of the rest; a window without such a day, and any '
'caller under row-level security (the application in a session), get an exact scan of the rows '
'they see, percentiles by percentile_cont.';

-- Today's and the next seven days' partitions, on every migrate (a no-op
-- when they exist); toolsdb.maintain() keeps them ahead after that.
select toolsdb.metrics_create_partitions(7);
