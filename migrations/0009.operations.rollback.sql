-- migrations/0009.operations.rollback.sql
-- Undo 0009.operations.sql: drop toolsdb.maintain() and give the churn
-- tables the server's default storage settings back. Undoing this migration
-- is what a rollback is for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-function

drop function if exists toolsdb.maintain(integer, integer);

alter table toolsdb.events reset (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay
);
alter table toolsdb.notifications reset (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay
);
-- The fillfactor 0006 set.
alter table toolsdb.notifications set (fillfactor = 80);
alter table toolsdb.sessions reset (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor
);
alter table toolsdb.vision_cache reset (
    fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor
);
alter table toolsdb.vision_cache_hits reset (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_vacuum_cost_delay
);
