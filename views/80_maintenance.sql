-- views/80_maintenance.sql
-- Re-applied after every migrate: routine maintenance that must never wait
-- for a cron job to be set up. Creates this month's and the next three
-- months' audit partitions and the next week's metrics partitions (a no-op
-- when they exist).
-- Needs: toolsdb.audit_create_partitions() (schema/12_audit.sql),
--        toolsdb.metrics_create_partitions() (schema/45_metrics.sql).

select toolsdb.audit_create_partitions(3);

select toolsdb.metrics_create_partitions(7);
