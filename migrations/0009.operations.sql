-- migrations/0009.operations.sql
-- Operations (issue 8): the maintenance entry point toolsdb.maintain() and
-- the storage settings (autovacuum, fillfactor) of the tables that churn.
-- The same statements as schema/60_maintenance.sql. The monitoring schema
-- and pg_stat_statements come from schema/00_bootstrap.sql, the monitoring
-- views from views/70_monitoring.sql (re-applied after every migrate).
-- depends: 0008.schema_validator

-- ---- from schema/60_maintenance.sql ----

-- Storage of the churn tables. Autovacuum's default starts at 20% of the
-- table dead (autovacuum_vacuum_scale_factor 0.2): a queue keeping a month
-- of processed rows carries a fifth of its size in dead claims before any
-- vacuum, and its claim index bloats with them. These start at a fixed
-- count (a threshold with a scale factor of 0-2%) and analyze early.
-- fillfactor only where updates can be HOT: vision_cache's hit counters are
-- in no index; the queues' and sessions' updates all change an indexed
-- column (claim keys, partial-index predicates, last_activity_at), so a
-- fillfactor there would only waste space (tests/bench_churn.py measured
-- 0% HOT updates on them, 84% on vision_cache).
alter table toolsdb.events set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
-- (0006 gave notifications a fillfactor of 80: every update changes status,
-- a predicate column of its claim and dead-letter indexes, so none is HOT.)
alter table toolsdb.notifications reset (fillfactor);
alter table toolsdb.notifications set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
alter table toolsdb.sessions set (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 50,
    autovacuum_analyze_scale_factor = 0.05
);
alter table toolsdb.vision_cache set (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);
-- Appended, then emptied by every vision_cache_flush_hits(): vacuum after a
-- fixed count, whatever the (stale) row estimate says.
alter table toolsdb.vision_cache_hits set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_insert_scale_factor = 0.1,
    autovacuum_vacuum_cost_delay = 1
);

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

    n := toolsdb.vision_cache_flush_hits();
    return query select 'cache', 'toolsdb.vision_cache_hits', n,
        pg_catalog.format('%s hit(s) folded into vision_cache', n);
    n := toolsdb.vision_cache_purge_expired();
    return query select 'cache', 'toolsdb.vision_cache', n, pg_catalog.format('%s expired entries deleted', n);
end;
$function$;

comment on function toolsdb.maintain(integer, integer) is
'The one maintenance entry point (toolsdb maintain; schedule it hourly, e.g. with pg_cron: select * '
'from toolsdb.maintain()). In one transaction: creates the audit log''s monthly and metrics'' daily '
'partitions ahead (and moves rows stranded in default partitions), applies the retention of the audit '
'log (audit.retention), metrics (metrics.retention) and processed events (events.retention, default 30 '
'days), seals the audit log, folds vision cache hits and deletes expired cache entries. Returns one '
'row per step with how many things it changed. Running it again at once changes nothing but the '
'audit_retention entry each run writes (the record that retention ran), which the next run seals. Refuses '
'with lock_not_available (55P03) while another run is in progress. For the owner (toolsdb_owner).';
