-- repeatable/49_execution_rollups.sql
-- Tier 30: the rollups of the runs (docs/work-tracking.md, "Rollups of the
-- runs"). The statement triggers that keep toolsdb.execution_rollups and
-- toolsdb.execution_duration_rollups (tables: schema/33_agent_executions.sql)
-- as the runs change, their folding (a step of toolsdb.maintain()), their
-- rebuild, and their row-level security. After 45_metrics.sql: durations go
-- into the metrics' buckets (toolsdb_private.metric_bucket).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb_private.execution_rollup_row(run toolsdb.agent_executions, sign integer)
returns toolsdb.execution_rollups
language sql
immutable
parallel safe
return row(
    null, run.project_id, run.agent_id, run.agent_type, run.model_provider, run.model_name, run.status,
    sign,
    case when run.started_at is not null and run.completed_at is not null then sign else 0 end,
    sign * coalesce(extract(epoch from run.completed_at - run.started_at), 0),
    sign * run.input_tokens,
    sign * run.output_tokens,
    sign * run.cached_tokens,
    case when run.cost_usd is not null then sign else 0 end,
    sign * coalesce(run.cost_usd, 0)
)::toolsdb.execution_rollups;

comment on function toolsdb_private.execution_rollup_row(toolsdb.agent_executions, integer) is
'What one run adds to its group of toolsdb.execution_rollups (sign 1) or takes away from it (sign '
'-1): the one place that says how a run counts. duration_seconds of a timed run is its duration, '
'which execution_rollups_add() also files into toolsdb.execution_duration_rollups.';

create or replace function toolsdb_private.execution_rollups_add(changes toolsdb.execution_rollups[])
returns void
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- One per duration bucket whose count moves: a single run's change carries its own
    -- duration (its timed_runs is its sign). On Citus the runs' trigger runs on a worker,
    -- where this table (on the coordinator) is out of reach: there are none (docs/citus.md).
    if pg_catalog.current_setting('citus.version', true) is null then
        insert into toolsdb.execution_duration_rollups (agent_id, model_provider, model_name, bucket, runs)
        select
            c.agent_id, c.model_provider, c.model_name,
            toolsdb_private.metric_bucket(pg_catalog.abs(c.duration_seconds)::double precision),
            pg_catalog.sum(c.timed_runs)
        from pg_catalog.unnest(changes) as c
        where c.timed_runs <> 0
        group by 1, 2, 3, 4
        having pg_catalog.sum(c.timed_runs) <> 0;
    end if;
    -- One row per group whose figures move (a change that moves none adds nothing).
    with c as (
        select * from pg_catalog.unnest(changes)
    )
    insert into toolsdb.execution_rollups (
        project_id, agent_id, agent_type, model_provider, model_name, status, executions, timed_runs,
        duration_seconds, input_tokens, output_tokens, cached_tokens, priced_runs, cost_usd
    )
    select
        c.project_id, c.agent_id, c.agent_type, c.model_provider, c.model_name, c.status,
        pg_catalog.sum(c.executions), pg_catalog.sum(c.timed_runs), pg_catalog.sum(c.duration_seconds),
        pg_catalog.sum(c.input_tokens), pg_catalog.sum(c.output_tokens), pg_catalog.sum(c.cached_tokens),
        pg_catalog.sum(c.priced_runs), pg_catalog.sum(c.cost_usd)
    from c
    group by c.project_id, c.agent_id, c.agent_type, c.model_provider, c.model_name, c.status
    having pg_catalog.sum(c.executions) <> 0 or pg_catalog.sum(c.timed_runs) <> 0
        or pg_catalog.sum(c.duration_seconds) <> 0 or pg_catalog.sum(c.input_tokens) <> 0
        or pg_catalog.sum(c.output_tokens) <> 0 or pg_catalog.sum(c.cached_tokens) <> 0
        or pg_catalog.sum(c.priced_runs) <> 0 or pg_catalog.sum(c.cost_usd) <> 0;
end;
$function$;

comment on function toolsdb_private.execution_rollups_add(toolsdb.execution_rollups[]) is
'Appends the changes of single runs (toolsdb_private.execution_rollup_row() of each, + for what '
'comes, - for what goes) to the rollups: one toolsdb.execution_rollups row per group whose '
'figures move, one toolsdb.execution_duration_rollups row per duration bucket whose count moves.';

create or replace function toolsdb_private.tg__execution_rollups()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if tg_op = 'INSERT' then
        perform toolsdb_private.execution_rollups_add(
            array(select toolsdb_private.execution_rollup_row(n, 1) from new_rows as n)
        );
    elsif tg_op = 'UPDATE' then
        perform toolsdb_private.execution_rollups_add(
            array(select toolsdb_private.execution_rollup_row(o, -1) from old_rows as o)
            || array(select toolsdb_private.execution_rollup_row(n, 1) from new_rows as n)
        );
    elsif tg_op = 'DELETE' then
        perform toolsdb_private.execution_rollups_add(
            array(select toolsdb_private.execution_rollup_row(o, -1) from old_rows as o)
        );
    else
        delete from toolsdb.execution_rollups;
        delete from toolsdb.execution_duration_rollups;
    end if;
    return null;
end;
$function$;

comment on function toolsdb_private.tg__execution_rollups() is
'Statement triggers _800_execution_rollups_* on toolsdb.agent_executions: the rows a statement '
'inserts count +1 in the rollups, those it deletes -1, an update both (old -1, new +1), in the '
'writer''s transaction; a truncate empties the rollups. Security definer: the rollups are not '
'writable by the application.';

create or replace trigger _800_execution_rollups_insert
after insert on toolsdb.agent_executions
referencing new table as new_rows
for each statement
execute function toolsdb_private.tg__execution_rollups();

comment on trigger _800_execution_rollups_insert on toolsdb.agent_executions is
'New runs count in toolsdb.execution_rollups and execution_duration_rollups.';

create or replace trigger _800_execution_rollups_update
after update on toolsdb.agent_executions
referencing old table as old_rows new table as new_rows
for each statement
execute function toolsdb_private.tg__execution_rollups();

comment on trigger _800_execution_rollups_update on toolsdb.agent_executions is
'Changed runs move their figures in toolsdb.execution_rollups and execution_duration_rollups.';

create or replace trigger _800_execution_rollups_delete
after delete on toolsdb.agent_executions
referencing old table as old_rows
for each statement
execute function toolsdb_private.tg__execution_rollups();

comment on trigger _800_execution_rollups_delete on toolsdb.agent_executions is
'Deleted runs (their task''s or project''s deletion included) leave toolsdb.execution_rollups '
'and execution_duration_rollups.';

create or replace trigger _800_execution_rollups_truncate
after truncate on toolsdb.agent_executions
for each statement
execute function toolsdb_private.tg__execution_rollups();

comment on trigger _800_execution_rollups_truncate on toolsdb.agent_executions is
'A truncate of the runs empties toolsdb.execution_rollups and execution_duration_rollups.';

create or replace function toolsdb.execution_rollups_fold()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    folded bigint := 0;
    n bigint;
begin
    -- One folder at a time; writers only append and are never held back.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.execution_rollups_fold'));
    with groups as (
        select r.project_id, r.agent_id, r.agent_type, r.model_provider, r.model_name, r.status
        from toolsdb.execution_rollups as r
        group by 1, 2, 3, 4, 5, 6
        having pg_catalog.count(*) > 1 or pg_catalog.sum(r.executions) = 0
    ),
    gone as (
        delete from toolsdb.execution_rollups as r
        using groups as g
        where r.project_id = g.project_id and r.agent_id = g.agent_id and r.agent_type = g.agent_type
            and r.model_provider is not distinct from g.model_provider
            and r.model_name is not distinct from g.model_name and r.status = g.status
        returning r.*
    ),
    kept as (
        insert into toolsdb.execution_rollups (
            project_id, agent_id, agent_type, model_provider, model_name, status, executions, timed_runs,
            duration_seconds, input_tokens, output_tokens, cached_tokens, priced_runs, cost_usd
        )
        select
            r.project_id, r.agent_id, r.agent_type, r.model_provider, r.model_name, r.status,
            pg_catalog.sum(r.executions), pg_catalog.sum(r.timed_runs), pg_catalog.sum(r.duration_seconds),
            pg_catalog.sum(r.input_tokens), pg_catalog.sum(r.output_tokens), pg_catalog.sum(r.cached_tokens),
            pg_catalog.sum(r.priced_runs), pg_catalog.sum(r.cost_usd)
        from gone as r
        group by 1, 2, 3, 4, 5, 6
        having pg_catalog.sum(r.executions) <> 0
        returning 1
    )
    select pg_catalog.count(*) into n from gone;
    folded := folded + n;
    with buckets as (
        select r.agent_id, r.model_provider, r.model_name, r.bucket
        from toolsdb.execution_duration_rollups as r
        group by 1, 2, 3, 4
        having pg_catalog.count(*) > 1 or pg_catalog.sum(r.runs) = 0
    ),
    gone as (
        delete from toolsdb.execution_duration_rollups as r
        using buckets as b
        where r.agent_id = b.agent_id and r.model_provider is not distinct from b.model_provider
            and r.model_name is not distinct from b.model_name and r.bucket = b.bucket
        returning r.*
    ),
    kept as (
        insert into toolsdb.execution_duration_rollups (agent_id, model_provider, model_name, bucket, runs)
        select r.agent_id, r.model_provider, r.model_name, r.bucket, pg_catalog.sum(r.runs)
        from gone as r
        group by 1, 2, 3, 4
        having pg_catalog.sum(r.runs) <> 0
        returning 1
    )
    select pg_catalog.count(*) into n from gone;
    return folded + n;
end;
$function$;

comment on function toolsdb.execution_rollups_fold() is
'Folds toolsdb.execution_rollups and execution_duration_rollups: every group (bucket) with more '
'than one row becomes one row of their sums, and groups that sum to no run go. No figure changes, '
'so readers see the same before, during and after; writers keep appending meanwhile. Returns how '
'many rows it replaced. A step of toolsdb.maintain().';

create or replace function toolsdb.execution_rollups_rebuild()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    project uuid;
begin
    -- Writers of runs wait until the rebuild commits, so no change slips between the
    -- runs it reads and the rollups it writes; a fold waits too (its lock).
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.execution_rollups_fold'));
    lock table toolsdb.agent_executions in share mode;
    delete from toolsdb.execution_rollups;
    delete from toolsdb.execution_duration_rollups;
    for project in select distinct e.project_id from toolsdb.agent_executions as e loop
        perform toolsdb_private.execution_rollups_add(
            array(
                select toolsdb_private.execution_rollup_row(e, 1)
                from toolsdb.agent_executions as e
                where e.project_id = project
            )
        );
    end loop;
    perform toolsdb.execution_rollups_fold();
    return (select pg_catalog.count(*) from toolsdb.execution_rollups);
end;
$function$;

comment on function toolsdb.execution_rollups_rebuild() is
'Recomputes toolsdb.execution_rollups and execution_duration_rollups from toolsdb.agent_executions, '
'one project at a time, holding writers of runs back until it commits (share lock). Needed only '
'after writes that skipped triggers (session_replication_role = replica); a migrate that finds '
'runs and no rollups runs it. Returns the rollup rows.';

create or replace function toolsdb.execution_duration_percentiles(
    agent_id uuid,
    model_provider text default null,
    model_name text default null
)
returns table (p50 numeric, p95 numeric)
language plpgsql
stable
set search_path = ''
as $function$
#variable_conflict use_variable
declare
    agent uuid := agent_id;
    provider text := model_provider;
    model text := model_name;
    timed_runs numeric;
    total numeric;
    q numeric;
    h numeric;
    bucket_values double precision[];
    running_counts numeric[];
    lo_value double precision;
    hi_value double precision;
    results numeric[] := '{}';
begin
    select pg_catalog.sum(r.timed_runs) into timed_runs
    from toolsdb.execution_rollups as r
    where r.agent_id = agent and r.model_provider is not distinct from provider
        and r.model_name is not distinct from model;
    -- Exact while cheap, and whenever row-level security narrows what the caller sees
    -- (the duration rollups span projects).
    -- On Citus the duration rollups are not kept (docs/citus.md): always exact there.
    if coalesce(timed_runs, 0) <= 10000
        or pg_catalog.current_setting('citus.version', true) is not null
        or (
            pg_catalog.row_security_active('toolsdb.agent_executions')
            and not pg_catalog.pg_has_role('toolsdb_readonly', 'member')
        )
        or not pg_catalog.has_table_privilege('toolsdb.execution_duration_rollups', 'select')
    then
        return query
        select
            pg_catalog.round((pg_catalog.percentile_cont(0.5) within group (
                order by extract(epoch from e.completed_at - e.started_at)
            ))::numeric, 3),
            pg_catalog.round((pg_catalog.percentile_cont(0.95) within group (
                order by extract(epoch from e.completed_at - e.started_at)
            ))::numeric, 3)
        from toolsdb.agent_executions as e
        where e.agent_id = agent and e.model_provider is not distinct from provider
            and e.model_name is not distinct from model;
        return;
    end if;
    -- percentile_cont over the buckets: the values of ranks floor(h) and floor(h) + 1
    -- (0-based, h = q * (n - 1)), each within 1% of the true one, interpolated alike.
    -- The merged histogram is read once. A bucket's value is
    -- toolsdb_private.metric_bucket_value()'s, written out here for the callers who may
    -- read the rollups but not call toolsdb's internals (the readonly role): durations are
    -- never negative, and bucket 0 holds the zeros.
    select
        pg_catalog.array_agg(c.value order by c.bucket),
        pg_catalog.array_agg(c.running order by c.bucket)
    into bucket_values, running_counts
    from (
        select
            b.bucket,
            case when b.bucket > 0 then pg_catalog.exp(
                (b.bucket - 50000) * pg_catalog.ln(1.01::float8 / 0.99) + pg_catalog.ln(0.99::float8)
            ) else 0 end as value,
            pg_catalog.sum(b.n) over (order by b.bucket) as running
        from (
            select r.bucket, pg_catalog.sum(r.runs) as n
            from toolsdb.execution_duration_rollups as r
            where r.agent_id = agent and r.model_provider is not distinct from provider
                and r.model_name is not distinct from model
            group by r.bucket
            having pg_catalog.sum(r.runs) > 0
        ) as b
    ) as c;
    total := running_counts[pg_catalog.cardinality(running_counts)];
    foreach q in array array[0.5, 0.95]::numeric[] loop
        h := q * (total - 1);
        -- values rise with buckets: the smallest value reaching a rank is that rank's
        select
            pg_catalog.min(u.v) filter (where u.running >= pg_catalog.floor(h) + 1),
            pg_catalog.min(u.v) filter (where u.running >= least(pg_catalog.floor(h) + 2, total))
        into lo_value, hi_value
        from unnest(bucket_values, running_counts) as u (v, running);  -- multi-argument: unqualified
        results := results || pg_catalog.round(
            (lo_value + (h - pg_catalog.floor(h))::double precision * (hi_value - lo_value))::numeric, 3
        );
    end loop;
    return query select results[1], results[2];
end;
$function$;

comment on function toolsdb.execution_duration_percentiles(uuid, text, text) is
'p50 and p95 of the durations in seconds (percentile_cont, 3 decimals) of an agent''s runs on a '
'model (null provider or model: the runs without one), as toolsdb.agent_performance shows them, e.g. '
'select * from toolsdb.execution_duration_percentiles(''<agent id>'', ''anthropic'', ''claude-sonnet-4''). '
'Exact (over the runs) when the agent and model have at most '
'10,000 timed runs, on Citus, or when row-level security limits what the caller sees; otherwise '
'interpolated from toolsdb.execution_duration_rollups, within 1% of the exact value.';

-- Runs without rollups: the triggers were just installed, or writes skipped them.
do $rebuild$
begin
    if exists (select 1 from toolsdb.agent_executions) and not exists (select 1 from toolsdb.execution_rollups) then
        perform toolsdb.execution_rollups_rebuild();
    end if;
end
$rebuild$;

select toolsdb.isolate_rows('toolsdb.execution_rollups', 'project_id');
