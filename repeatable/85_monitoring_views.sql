-- repeatable/85_monitoring_views.sql
-- The monitoring views (the usual PostgreSQL monitoring queries, made
-- permanent): index usage and unused indexes, table and index sizes, dead
-- tuples and autovacuum lag, the oldest open transactions, long-running
-- queries, lock waits and slow statements. They read PostgreSQL's own
-- statistics of the current database; `toolsdb monitor` prints them.
-- Re-applied after every migrate. Views are security_invoker: a role sees
-- other sessions' query texts only as a member of pg_read_all_stats (or
-- pg_monitor), as in pg_stat_activity itself.

create or replace view toolsdb_monitoring.index_usage
with (security_invoker = true) as
select
    s.schemaname::text as schema_name,
    s.relname::text as table_name,
    s.indexrelname::text as index_name,
    s.idx_scan as index_scans,
    s.idx_tup_read as tuples_read,
    s.idx_tup_fetch as tuples_fetched,
    t.seq_scan as table_scans,
    pg_catalog.pg_relation_size(s.indexrelid) as index_bytes,
    i.indisunique as is_unique,
    i.indisprimary as is_primary
from pg_catalog.pg_stat_user_indexes as s
inner join pg_catalog.pg_index as i on s.indexrelid = i.indexrelid
inner join pg_catalog.pg_stat_user_tables as t on s.relid = t.relid
order by s.idx_scan, pg_catalog.pg_relation_size(s.indexrelid) desc;

comment on view toolsdb_monitoring.index_usage is
'Every index of the current database with how often it was scanned since the statistics were last '
'reset (the usual "check index usage" query), least used first.';
comment on column toolsdb_monitoring.index_usage.schema_name is 'Schema of the table.';
comment on column toolsdb_monitoring.index_usage.table_name is 'The indexed table (or partition).';
comment on column toolsdb_monitoring.index_usage.index_name is 'The index.';
comment on column toolsdb_monitoring.index_usage.index_scans is 'Index scans started on it.';
comment on column toolsdb_monitoring.index_usage.tuples_read is 'Index entries returned by its scans.';
comment on column toolsdb_monitoring.index_usage.tuples_fetched is 'Live table rows fetched by simple scans of it.';
comment on column toolsdb_monitoring.index_usage.table_scans is 'Sequential scans of its table, for comparison.';
comment on column toolsdb_monitoring.index_usage.index_bytes is 'Size on disk.';
comment on column toolsdb_monitoring.index_usage.is_unique is 'It enforces uniqueness.';
comment on column toolsdb_monitoring.index_usage.is_primary is 'It is the primary key.';

create or replace view toolsdb_monitoring.unused_indexes
with (security_invoker = true) as
select
    s.schemaname::text as schema_name,
    s.relname::text as table_name,
    s.indexrelname::text as index_name,
    pg_catalog.pg_relation_size(s.indexrelid) as index_bytes,
    exists(
        select from pg_catalog.pg_constraint as k
        where
            k.contype = 'f' and k.conrelid = s.relid
            and k.conkey <@ (i.indkey::int2[])[0:pg_catalog.cardinality(k.conkey) - 1]
    ) as supports_foreign_key,
    d.stats_reset as unused_since
from pg_catalog.pg_stat_user_indexes as s
inner join pg_catalog.pg_index as i on s.indexrelid = i.indexrelid
cross join pg_catalog.pg_stat_database as d
where
    d.datname = pg_catalog.current_database()
    and s.idx_scan = 0
    and not i.indisunique
    and not i.indisprimary
    and not exists (
        select from pg_catalog.pg_constraint as c
        where c.conindid = s.indexrelid
    )
order by pg_catalog.pg_relation_size(s.indexrelid) desc;

comment on view toolsdb_monitoring.unused_indexes is
'Indexes never scanned since the statistics were reset, leaving out those that enforce a primary key, '
'unique or exclusion constraint; largest first. One that supports a foreign key still serves deletes '
'and key updates of the referenced table: keep it unless the parent never changes.';
comment on column toolsdb_monitoring.unused_indexes.schema_name is 'Schema of the table.';
comment on column toolsdb_monitoring.unused_indexes.table_name is 'The indexed table (or partition).';
comment on column toolsdb_monitoring.unused_indexes.index_name is 'The index never scanned.';
comment on column toolsdb_monitoring.unused_indexes.index_bytes is 'What dropping it would free.';
comment on column toolsdb_monitoring.unused_indexes.supports_foreign_key is
'Its leading columns are a foreign key of the table (keep it if the referenced rows are deleted or re-keyed).';
comment on column toolsdb_monitoring.unused_indexes.unused_since is
'When this database''s statistics were last reset (null: since it was created).';

create or replace view toolsdb_monitoring.table_sizes
with (security_invoker = true) as
with tables as (
    select
        c.oid,
        n.nspname::text as schema_name,
        c.relname::text as table_name,
        c.relkind,
        (
            select p.inhparent::regclass::text from pg_catalog.pg_inherits as p
            where p.inhrelid = c.oid
        ) as parent
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where
        c.relkind in ('r', 'p', 'm')
        and n.nspname not in ('pg_catalog', 'information_schema')
        and n.nspname !~ '^pg_toast'
),

sized as (
    select
        t.schema_name,
        t.table_name,
        t.parent as partition_of,
        pg_catalog.sum(greatest(c.reltuples, 0)) filter (where c.relkind <> 'p')::bigint as estimated_rows,
        pg_catalog.sum(pg_catalog.pg_table_size(c.oid))::bigint as table_bytes,
        pg_catalog.sum(pg_catalog.pg_indexes_size(c.oid))::bigint as index_bytes
    from tables as t
    -- A partitioned table is the sum of its tree; any other table is itself.
    cross join
        lateral (
            select pt.relid as oid
            from pg_catalog.pg_partition_tree(t.oid) as pt
            where t.relkind = 'p'
            union all
            select t.oid
            where t.relkind <> 'p'
        ) as member
    inner join pg_catalog.pg_class as c on member.oid = c.oid
    group by t.schema_name, t.table_name, t.parent
)

select
    s.schema_name,
    s.table_name,
    s.partition_of,
    s.estimated_rows,
    s.table_bytes,
    s.index_bytes,
    s.table_bytes + s.index_bytes as total_bytes,
    pg_catalog.pg_size_pretty(s.table_bytes + s.index_bytes) as total_size
from sized as s
order by s.table_bytes + s.index_bytes desc, s.schema_name asc, s.table_name asc;

comment on view toolsdb_monitoring.table_sizes is
'Every table of the current database with its size (the usual "check table sizes" query), largest '
'first. A partitioned table counts all its partitions; each partition is also listed, with '
'partition_of.';
comment on column toolsdb_monitoring.table_sizes.schema_name is 'Schema of the table.';
comment on column toolsdb_monitoring.table_sizes.table_name is 'The table, partitioned table or materialized view.';
comment on column toolsdb_monitoring.table_sizes.partition_of is 'The partitioned table it belongs to, if any.';
comment on column toolsdb_monitoring.table_sizes.estimated_rows is
'Rows as of the last VACUUM or ANALYZE (pg_class.reltuples), partitions summed; null before the first.';
comment on column toolsdb_monitoring.table_sizes.table_bytes is 'Heap, TOAST, free space and visibility maps.';
comment on column toolsdb_monitoring.table_sizes.index_bytes is 'All its indexes.';
comment on column toolsdb_monitoring.table_sizes.total_bytes is 'table_bytes + index_bytes.';
comment on column toolsdb_monitoring.table_sizes.total_size is 'total_bytes for humans (pg_size_pretty).';

create or replace view toolsdb_monitoring.vacuum_health
with (security_invoker = true) as
with settings as (
    select
        s.relid,
        s.schemaname::text as schema_name,
        s.relname::text as table_name,
        s.n_live_tup,
        s.n_dead_tup,
        s.n_mod_since_analyze,
        s.last_vacuum,
        s.last_autovacuum,
        s.last_analyze,
        s.last_autoanalyze,
        s.autovacuum_count,
        greatest(c.reltuples, 0) as reltuples,
        pg_catalog.age(c.relfrozenxid) as xid_age,
        coalesce(
            (
                select o.option_value::bigint
                from pg_catalog.pg_options_to_table(c.reloptions) as o
                where o.option_name = 'autovacuum_vacuum_threshold'
            ),
            pg_catalog.current_setting('autovacuum_vacuum_threshold')::bigint
        ) as vacuum_threshold,
        coalesce(
            (
                select o.option_value::double precision
                from pg_catalog.pg_options_to_table(c.reloptions) as o
                where o.option_name = 'autovacuum_vacuum_scale_factor'
            ),
            pg_catalog.current_setting('autovacuum_vacuum_scale_factor')::double precision
        ) as vacuum_scale_factor
    from pg_catalog.pg_stat_user_tables as s
    inner join pg_catalog.pg_class as c on s.relid = c.oid
)

select
    s.schema_name,
    s.table_name,
    s.n_live_tup as live_tuples,
    s.n_dead_tup as dead_tuples,
    round((s.n_dead_tup::numeric / nullif(s.n_live_tup + s.n_dead_tup, 0)) * 100, 1) as dead_percent,
    (s.vacuum_threshold + s.vacuum_scale_factor * s.reltuples)::bigint as autovacuum_trigger,
    s.n_dead_tup > s.vacuum_threshold + s.vacuum_scale_factor * s.reltuples as autovacuum_due,
    greatest(s.last_vacuum, s.last_autovacuum) as last_vacuumed_at,
    pg_catalog.now() - greatest(s.last_vacuum, s.last_autovacuum) as since_vacuum,
    greatest(s.last_analyze, s.last_autoanalyze) as last_analyzed_at,
    s.n_mod_since_analyze as changed_since_analyze,
    s.autovacuum_count,
    s.xid_age
from settings as s
order by s.n_dead_tup desc, s.schema_name asc, s.table_name asc;

comment on view toolsdb_monitoring.vacuum_health is
'Dead tuples and autovacuum lag per table: how many dead rows wait, the dead-row count at which '
'autovacuum starts on it (its own reloptions or the server''s settings), whether that is passed, and '
'how long ago it was vacuumed. Most dead rows first.';
comment on column toolsdb_monitoring.vacuum_health.schema_name is 'Schema of the table.';
comment on column toolsdb_monitoring.vacuum_health.table_name is 'The table (or partition).';
comment on column toolsdb_monitoring.vacuum_health.live_tuples is 'Estimated live rows.';
comment on column toolsdb_monitoring.vacuum_health.dead_tuples is 'Estimated dead rows not yet vacuumed.';
comment on column toolsdb_monitoring.vacuum_health.dead_percent is 'dead / (live + dead), in percent.';
comment on column toolsdb_monitoring.vacuum_health.autovacuum_trigger is
'Dead rows at which autovacuum vacuums it: threshold + scale factor x rows.';
comment on column toolsdb_monitoring.vacuum_health.autovacuum_due is
'dead_tuples is past autovacuum_trigger: autovacuum is behind (or busy elsewhere, or disabled).';
comment on column toolsdb_monitoring.vacuum_health.last_vacuumed_at is 'Latest manual or automatic VACUUM.';
comment on column toolsdb_monitoring.vacuum_health.since_vacuum is 'Time since last_vacuumed_at.';
comment on column toolsdb_monitoring.vacuum_health.last_analyzed_at is 'Latest manual or automatic ANALYZE.';
comment on column toolsdb_monitoring.vacuum_health.changed_since_analyze is 'Rows changed since that ANALYZE.';
comment on column toolsdb_monitoring.vacuum_health.autovacuum_count is 'Times autovacuum has vacuumed it.';
comment on column toolsdb_monitoring.vacuum_health.xid_age is
'Transactions since its oldest unfrozen row (wraparound protection starts at autovacuum_freeze_max_age).';

create or replace view toolsdb_monitoring.oldest_transactions
with (security_invoker = true) as
select
    a.pid,
    a.usename::text as user_name,
    a.application_name,
    a.state,
    a.xact_start as started_at,
    pg_catalog.now() - a.xact_start as transaction_age,
    pg_catalog.age(a.backend_xmin) as xmin_age,
    a.wait_event_type,
    pg_catalog.left(a.query, 300) as last_query
from pg_catalog.pg_stat_activity as a
where
    a.datname = pg_catalog.current_database()
    and a.xact_start is not null
    and a.pid <> pg_catalog.pg_backend_pid()
union all
select
    null::integer as pid,
    p.owner::text as user_name,
    'prepared transaction ' || p.gid as application_name,
    'prepared' as state,
    p.prepared as started_at,
    pg_catalog.now() - p.prepared as transaction_age,
    pg_catalog.age(p.transaction) as xmin_age,
    null as wait_event_type,
    null as last_query
from pg_catalog.pg_prepared_xacts as p
where p.database = pg_catalog.current_database()
order by 5 nulls last;

comment on view toolsdb_monitoring.oldest_transactions is
'Open transactions of the current database, oldest first, prepared transactions included: an old one '
'holds back VACUUM everywhere (its xmin), so dead rows pile up until it ends.';
comment on column toolsdb_monitoring.oldest_transactions.pid is 'Backend process id (null for a prepared transaction).';
comment on column toolsdb_monitoring.oldest_transactions.user_name is 'The role.';
comment on column toolsdb_monitoring.oldest_transactions.application_name is
'The client''s application_name, or the prepared transaction''s gid.';
comment on column toolsdb_monitoring.oldest_transactions.state is 'active, idle in transaction, ... or prepared.';
comment on column toolsdb_monitoring.oldest_transactions.started_at is 'When the transaction began.';
comment on column toolsdb_monitoring.oldest_transactions.transaction_age is 'How long it has been open.';
comment on column toolsdb_monitoring.oldest_transactions.xmin_age is
'Transactions since the oldest snapshot it holds: how far it holds back VACUUM.';
comment on column toolsdb_monitoring.oldest_transactions.wait_event_type is 'What it waits on now, if anything.';
comment on column toolsdb_monitoring.oldest_transactions.last_query is
'Its current or last statement (300 characters; hidden without pg_read_all_stats for other roles).';

create or replace view toolsdb_monitoring.long_running_queries
with (security_invoker = true) as
select
    a.pid,
    a.usename::text as user_name,
    a.application_name,
    a.query_start as started_at,
    pg_catalog.now() - a.query_start as duration,
    a.wait_event_type,
    a.wait_event,
    pg_catalog.left(a.query, 300) as query
from pg_catalog.pg_stat_activity as a
where
    a.datname = pg_catalog.current_database()
    and a.state = 'active'
    and a.backend_type = 'client backend'
    and a.pid <> pg_catalog.pg_backend_pid()
    and pg_catalog.now() - a.query_start
    >= coalesce(nullif(pg_catalog.current_setting('toolsdb.long_query_threshold', true), ''), '1 minute')::interval
order by a.query_start;

comment on view toolsdb_monitoring.long_running_queries is
'Statements of the current database running for longer than toolsdb.long_query_threshold '
'(default 1 minute; e.g. set local toolsdb.long_query_threshold = ''5s'' in the transaction), longest first. '
'Cancel one with pg_cancel_backend(pid).';
comment on column toolsdb_monitoring.long_running_queries.pid is 'Backend process id.';
comment on column toolsdb_monitoring.long_running_queries.user_name is 'The role.';
comment on column toolsdb_monitoring.long_running_queries.application_name is 'The client''s application_name.';
comment on column toolsdb_monitoring.long_running_queries.started_at is 'When the statement began.';
comment on column toolsdb_monitoring.long_running_queries.duration is 'How long it has been running.';
comment on column toolsdb_monitoring.long_running_queries.wait_event_type is 'What kind of wait, if waiting.';
comment on column toolsdb_monitoring.long_running_queries.wait_event is 'The wait event, if waiting.';
comment on column toolsdb_monitoring.long_running_queries.query is 'The statement (300 characters).';

create or replace view toolsdb_monitoring.lock_waits
with (security_invoker = true) as
select
    w.pid as waiting_pid,
    w.usename::text as waiting_user,
    pg_catalog.now() - w.query_start as waiting_for,
    pg_catalog.left(w.query, 300) as waiting_query,
    b.pid as blocking_pid,
    b.usename::text as blocking_user,
    b.state as blocking_state,
    pg_catalog.now() - b.xact_start as blocking_transaction_age,
    pg_catalog.left(b.query, 300) as blocking_query
from pg_catalog.pg_stat_activity as w
cross join lateral pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) as bp (pid)
inner join pg_catalog.pg_stat_activity as b on bp.pid = b.pid
where w.datname = pg_catalog.current_database() and w.wait_event_type = 'Lock'
order by w.query_start, b.pid;

comment on view toolsdb_monitoring.lock_waits is
'Sessions waiting for a lock, one row per session blocking each (pg_blocking_pids), longest wait '
'first. A blocking session "idle in transaction" is the usual culprit.';
comment on column toolsdb_monitoring.lock_waits.waiting_pid is 'The waiting backend.';
comment on column toolsdb_monitoring.lock_waits.waiting_user is 'Its role.';
comment on column toolsdb_monitoring.lock_waits.waiting_for is 'How long its statement has been running.';
comment on column toolsdb_monitoring.lock_waits.waiting_query is 'The statement that waits (300 characters).';
comment on column toolsdb_monitoring.lock_waits.blocking_pid is 'A backend holding (or first in line for) the lock.';
comment on column toolsdb_monitoring.lock_waits.blocking_user is 'Its role.';
comment on column toolsdb_monitoring.lock_waits.blocking_state is 'Its state (active, idle in transaction, ...).';
comment on column toolsdb_monitoring.lock_waits.blocking_transaction_age is 'How long its transaction has been open.';
comment on column toolsdb_monitoring.lock_waits.blocking_query is 'Its current or last statement (300 characters).';

-- Over pg_stat_statements where it is installed (in whichever schema; see
-- schema/00_bootstrap.sql); otherwise the same columns and no rows. A
-- function finds it at query time, so the view itself never changes.
create or replace function toolsdb_monitoring.statement_stats()
returns table (
    query_id bigint,
    user_name text,
    calls bigint,
    total_ms double precision,
    mean_ms double precision,
    max_ms double precision,
    total_rows bigint,
    cache_hit_percent numeric,
    query text
)
language plpgsql
stable
set search_path = ''
as $function$
declare
    source text;
begin
    select pg_catalog.format('%I.pg_stat_statements', n.nspname) into source
    from pg_catalog.pg_extension as e
    inner join pg_catalog.pg_namespace as n on e.extnamespace = n.oid
    where e.extname = 'pg_stat_statements';
    if source is null then
        return;
    end if;
    return query execute pg_catalog.format(
        $source$
            select
                s.queryid,
                r.rolname::text,
                s.calls,
                s.total_exec_time,
                s.mean_exec_time,
                s.max_exec_time,
                s.rows,
                round(100.0 * s.shared_blks_hit / nullif(s.shared_blks_hit + s.shared_blks_read, 0), 1),
                pg_catalog.left(s.query, 500)
            from %s as s
            inner join pg_catalog.pg_database as d on s.dbid = d.oid
            left join pg_catalog.pg_roles as r on s.userid = r.oid
            where d.datname = pg_catalog.current_database()
            order by s.mean_exec_time desc
        $source$,
        source
    );
end;
$function$;

comment on function toolsdb_monitoring.statement_stats() is
'The rows of toolsdb_monitoring.slow_statements: pg_stat_statements of the current database, '
'slowest mean first, from whichever schema the extension is in; no rows where it is not installed.';

create or replace view toolsdb_monitoring.slow_statements
with (security_invoker = true) as
select
    s.query_id,
    s.user_name,
    s.calls,
    s.total_ms,
    s.mean_ms,
    s.max_ms,
    s.total_rows,
    s.cache_hit_percent,
    s.query
from toolsdb_monitoring.statement_stats() as s
order by s.mean_ms desc;

comment on view toolsdb_monitoring.slow_statements is
'Statements of the current database by mean execution time, slowest first (the usual "check slow '
'queries" query), from pg_stat_statements; empty where the extension is not installed. Reset with '
'pg_stat_statements_reset() (superuser).';
comment on column toolsdb_monitoring.slow_statements.query_id is 'pg_stat_statements'' queryid.';
comment on column toolsdb_monitoring.slow_statements.user_name is 'The role that ran it.';
comment on column toolsdb_monitoring.slow_statements.calls is 'Times it ran.';
comment on column toolsdb_monitoring.slow_statements.total_ms is 'Total execution time, milliseconds.';
comment on column toolsdb_monitoring.slow_statements.mean_ms is 'Mean execution time, milliseconds.';
comment on column toolsdb_monitoring.slow_statements.max_ms is 'Slowest execution, milliseconds.';
comment on column toolsdb_monitoring.slow_statements.total_rows is 'Rows returned or changed, all calls.';
comment on column toolsdb_monitoring.slow_statements.cache_hit_percent is 'Shared buffer hits / block reads, percent.';
comment on column toolsdb_monitoring.slow_statements.query is 'Normalized statement text (500 characters).';

-- Readers: toolsdb_readonly (and every role that includes it). Granted only
-- when missing, so a migrate with nothing to do rewrites no catalog row.
do $monitoring$
declare
    view_name text;
begin
    if not pg_catalog.has_schema_privilege('toolsdb_readonly', 'toolsdb_monitoring', 'USAGE') then
        grant usage on schema toolsdb_monitoring to toolsdb_readonly;
    end if;
    for view_name in
        select c.oid::regclass::text from pg_catalog.pg_class as c
        where
            c.relnamespace = 'toolsdb_monitoring'::regnamespace and c.relkind = 'v'
            and not exists (
                select from pg_catalog.pg_depend as d
                where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
            )
            and not pg_catalog.has_table_privilege('toolsdb_readonly', c.oid, 'SELECT')
    loop
        execute pg_catalog.format('grant select on %s to toolsdb_readonly', view_name);
    end loop;
    if exists (
        select from pg_catalog.pg_proc as p
        where p.oid = 'toolsdb_monitoring.statement_stats()'::regprocedure
            and (p.proacl is null or exists (select from pg_catalog.aclexplode(p.proacl) as a where a.grantee = 0))
    ) then
        revoke execute on function toolsdb_monitoring.statement_stats() from public;
    end if;
    if not pg_catalog.has_function_privilege(
        'toolsdb_readonly', 'toolsdb_monitoring.statement_stats()', 'EXECUTE'
    ) then
        grant execute on function toolsdb_monitoring.statement_stats() to toolsdb_readonly;
    end if;
end
$monitoring$;
