-- repeatable/60_maintenance.sql
-- Tier 60: operations. One maintenance entry point, toolsdb.maintain(), for
-- a scheduler (pg_cron, cron + `toolsdb maintain`): partitions ahead for the
-- time-partitioned tables, each table's retention, the audit seal and the
-- cache purge, reported step by step. And the storage settings of the
-- tables that churn (queues, sessions, caches): autovacuum by absolute
-- counts instead of a fraction of the table.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb_private.settle_dangling_references(
    referrer text, referrer_column text, referenced text, referenced_column text, on_delete text
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    named uuid[];
    present uuid[];
    settled bigint;
begin
    -- What a key from toolsdb.<referrer>(<referrer_column>) to toolsdb.<referenced> did on
    -- delete, for a key Citus drops (docs/citus.md). Each read names one kind of table
    -- only, which Citus plans: the ids named, then those of them that still exist.
    if on_delete not in ('cascade', 'set null') then
        raise exception 'on_delete is cascade or set null, not %', pg_catalog.quote_nullable(on_delete)
            using errcode = 'invalid_parameter_value';
    end if;
    execute pg_catalog.format(
        'select array(select distinct r.%I from toolsdb.%I as r where r.%1$I is not null)', referrer_column, referrer
    ) into named;
    execute pg_catalog.format(
        'select array(select x.%I from toolsdb.%I as x where x.%1$I = any($1))', referenced_column, referenced
    ) into present using named;
    execute pg_catalog.format(
        case on_delete
            when 'cascade' then 'delete from toolsdb.%I as r where r.%I = any($1) and r.%2$I <> all($2)'
            else 'update toolsdb.%I as r set %I = null where r.%2$I = any($1) and r.%2$I <> all($2)'
        end,
        referrer, referrer_column
    ) using named, present;
    get diagnostics settled = row_count;
    return settled;
end;
$function$;

comment on function toolsdb_private.settle_dangling_references(text, text, text, text, text) is
'On Citus, for toolsdb.maintain(): deletes (on_delete cascade) or nulls (set null) the rows of '
'toolsdb.<referrer> whose <referrer_column> names a toolsdb.<referenced> row that no longer '
'exists, as a key Citus drops would have (docs/citus.md). Returns how many rows it changed.';

create or replace function toolsdb_private.remove_unreferenced_routes()
returns bigint
language sql
volatile
set search_path = ''
as $function$
    -- On Citus, users and projects are reference tables and the notification tables plain
    -- ones on the coordinator, with no key between them (docs/citus.md).
    select toolsdb_private.settle_dangling_references(
        'notification_destinations', 'user_id', 'users', 'user_id', 'cascade'
    ) + toolsdb_private.settle_dangling_references(
        'notification_rules', 'match_project_id', 'projects', 'project_id', 'cascade'
    );
$function$;

comment on function toolsdb_private.remove_unreferenced_routes() is
'On Citus, called by toolsdb.maintain(): deletes the notification destinations whose user and the '
'notification rules whose project was deleted, as the keys that Citus drops there would have '
'(docs/citus.md). Returns how many rows it deleted. On one node the keys cascade, and it finds none.';

create or replace function toolsdb_private.null_unreferenced_error_links()
returns bigint
language sql
volatile
security definer
set search_path = ''
as $function$
    -- On Citus, error_logs stays on the coordinator and its keys to the tasks and runs on
    -- the workers are dropped (docs/citus.md): what their `on delete set null` did.
    select toolsdb_private.settle_dangling_references('error_logs', 'task_id', 'tasks', 'task_id', 'set null')
        + toolsdb_private.settle_dangling_references(
            'error_logs', 'execution_id', 'agent_executions', 'execution_id', 'set null'
        );
$function$;

comment on function toolsdb_private.null_unreferenced_error_links() is
'On Citus, called by toolsdb.maintain(): nulls the task and the run of errors whose task or run was '
'deleted, as the keys of toolsdb.error_logs that Citus drops there would have (docs/citus.md). '
'Returns how many references it nulled. On one node the keys do it, and it finds none. Runs as the '
'owner, as the rollups'' fold before it: Citus refuses one transaction''s access to the same workers'' '
'shards as two roles.';

create or replace function toolsdb_private.forget_deleted_sessions(sessions text[], deleted_at timestamptz[])
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    -- Exactly the records read: a session deleted again meanwhile has a newer
    -- deleted_at, and its record waits for the next run.
    execute 'delete from toolsdb_private.deleted_sessions as d'
        ' where d.session_id = any($1)'
        ' and (d.session_id, d.deleted_at) in (select * from rows from (pg_catalog.unnest($1), pg_catalog.unnest($2)))'
    using sessions, deleted_at;
end;
$function$;

comment on function toolsdb_private.forget_deleted_sessions(text[], timestamptz[]) is
'On Citus, for remove_deleted_sessions_rows(): deletes the records of deleted sessions it read, '
'each by session and time, so that a deletion recorded meanwhile stays for the next run.';

create or replace function toolsdb_private.remove_deleted_sessions_rows()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    recorded text[];
    stamps timestamptz[];
    back text[];
    gone text[];
    removed bigint := 0;
    n bigint;
begin
    -- On Citus, a session deleted on its worker is recorded there
    -- (toolsdb_private.deleted_sessions, docs/citus.md); what named it on the
    -- coordinator is removed here, as delete_session() and one node's keys do.
    if pg_catalog.to_regclass('toolsdb_private.deleted_sessions') is null then
        return 0;
    end if;
    -- One connection per node for the rest of the transaction: Citus refuses
    -- to write a Citus local table (transcript_files) after reading shards in
    -- parallel in the same transaction.
    perform pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    execute 'select pg_catalog.array_agg(d.session_id order by d.session_id),'
        ' pg_catalog.array_agg(d.deleted_at order by d.session_id) from toolsdb_private.deleted_sessions as d'
    into recorded, stamps;
    if recorded is null then
        return 0;
    end if;
    -- A session heard of again since (the hook creates it anew) keeps its rows.
    back := array(select s.session_id from toolsdb.sessions as s where s.session_id = any(recorded));
    gone := array(select r from pg_catalog.unnest(recorded) as r where r <> all(back));
    if pg_catalog.cardinality(gone) = 0 then
        perform toolsdb_private.forget_deleted_sessions(recorded, stamps);
        return 0;
    end if;
    delete from toolsdb.notifications as t where t.session_id = any(gone);
    get diagnostics n = row_count;
    removed := removed + n;
    delete from toolsdb.events as t where t.session_id = any(gone);
    get diagnostics n = row_count;
    removed := removed + n;
    delete from toolsdb.metrics as t where t.session_id = any(gone);
    get diagnostics n = row_count;
    removed := removed + n;
    delete from toolsdb.api_usage as t where t.session_id = any(gone);
    get diagnostics n = row_count;
    removed := removed + n;
    update toolsdb.transcript_files as t set session_id = null where t.session_id = any(gone);
    get diagnostics n = row_count;
    removed := removed + n;
    perform toolsdb_private.forget_deleted_sessions(recorded, stamps);
    return removed;
end;
$function$;

comment on function toolsdb_private.remove_deleted_sessions_rows() is
'On Citus, called by toolsdb.maintain(): for each session deleted since the last run '
'(toolsdb_private.deleted_sessions) and not created again, deletes its events, notifications, '
'metrics and API usage and detaches its transcript file, as the keys Citus drops would have '
'(docs/citus.md); returns how many rows it changed. Returns 0 elsewhere. Runs as the owner, as '
'toolsdb.purge_processed_events() does before it: Citus refuses one transaction''s access to the '
'same workers'' shards as two roles.';

create or replace function toolsdb.maintain(
    audit_months_ahead integer default 3,
    metrics_days_ahead integer default 7
)
returns table (step text, target text, affected bigint, detail text)
language plpgsql
volatile
set search_path = ''
as $function$
declare
    n bigint;
    events_age interval;
begin
    if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('toolsdb.maintain')) then
        raise exception 'toolsdb.maintain() is already running in another session'
            using errcode = 'lock_not_available';
    end if;
    -- On Citus, one connection per node for the whole transaction: Citus
    -- refuses to write a Citus local table (transcript_files, below) after a
    -- parallel multi-shard statement (the events' retention) in the same
    -- transaction.
    if pg_catalog.current_setting('citus.version', true) is not null then
        perform pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    end if;
    select (c.value #>> '{}')::interval into events_age
    from toolsdb.config as c
    where c.key = 'events.retention' and not c.is_secret;
    events_age := coalesce(events_age, interval '30 days');

    n := toolsdb.audit_create_partitions(audit_months_ahead);
    return query select 'partitions', 'toolsdb.audit_logs', n,
        pg_catalog.format('%s monthly partition(s) created; this month and %s ahead exist', n, audit_months_ahead);
    n := toolsdb.metrics_create_partitions(metrics_days_ahead);
    return query select 'partitions', 'toolsdb.metrics', n,
        pg_catalog.format('%s daily partition(s) created; today and %s day(s) ahead exist', n, metrics_days_ahead);

    n := toolsdb.audit_apply_retention();
    return query select 'retention', 'toolsdb.audit_logs', n,
        pg_catalog.format('%s month(s) dropped past audit.retention (default 13 months)', n);
    n := toolsdb.metrics_apply_retention();
    return query select 'retention', 'toolsdb.metrics', n,
        pg_catalog.format('%s day(s) dropped past metrics.retention (default 30 days)', n);
    n := toolsdb.purge_processed_events(events_age);
    return query select 'retention', 'toolsdb.events', n,
        pg_catalog.format('%s event(s) processed more than %s ago deleted (events.retention)', n, events_age);

    n := toolsdb.audit_seal();
    return query select 'seal', 'toolsdb.audit_logs', n, pg_catalog.format('%s new range(s) sealed', n);

    n := toolsdb.metrics_build_rollups();
    return query select 'rollups', 'toolsdb.metric_rollups', n,
        pg_catalog.format('%s metric-day(s) rolled up for get_metric_stats()', n);
    n := toolsdb.execution_rollups_fold();
    return query select 'rollups', 'toolsdb.execution_rollups', n,
        pg_catalog.format('%s appended rollup row(s) of the runs folded into one per group', n);

    n := toolsdb.vision_cache_flush_hits();
    return query select 'cache', 'toolsdb.vision_cache_hits', n,
        pg_catalog.format('%s hit(s) folded into vision_cache', n);
    n := toolsdb.vision_cache_purge_expired();
    return query select 'cache', 'toolsdb.vision_cache', n, pg_catalog.format('%s expired entries deleted', n);

    if exists (select from pg_catalog.pg_extension where extname = 'citus') then
        n := toolsdb_private.remove_unreferenced_routes();
        return query select 'citus', 'toolsdb.notification_destinations', n,
            pg_catalog.format('%s destination(s) of a deleted user and rule(s) of a deleted project removed', n);
        n := toolsdb_private.null_unreferenced_error_links();
        return query select 'citus', 'toolsdb.error_logs', n,
            pg_catalog.format('%s reference(s) of errors to a deleted task or run nulled', n);
        n := toolsdb_private.remove_deleted_sessions_rows();
        return query select 'citus', 'toolsdb.events', n,
            pg_catalog.format('%s event, notification, metric, usage or transcript row(s) of deleted sessions', n);
    end if;
end;
$function$;

comment on function toolsdb.maintain(integer, integer) is
'The one maintenance entry point (toolsdb maintain; schedule it hourly, e.g. with pg_cron: select * '
'from toolsdb.maintain()). In one transaction: creates the audit log''s monthly and metrics'' daily '
'partitions ahead (and moves rows stranded in default partitions), applies the retention of the audit '
'log (audit.retention), metrics (metrics.retention) and processed events (events.retention, default 30 '
'days), seals the audit log, rolls up the metrics of closed days for get_metric_stats(), folds '
'vision cache hits and deletes expired cache entries; on Citus, removes the notification destinations of '
'deleted users, the rules of deleted projects and the rows of deleted sessions, and nulls the references '
'of errors to deleted tasks and runs (keys Citus drops there, '
'docs/citus.md). Returns one '
'row per step with how many things it changed. Running it again at once changes nothing but the '
'audit_retention entry each run writes (the record that retention ran), which the next run seals. Refuses '
'with lock_not_available (55P03) while another run is in progress. For the owner (toolsdb_owner).';
