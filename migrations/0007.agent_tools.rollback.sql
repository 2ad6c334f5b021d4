-- migrations/0007.agent_tools.rollback.sql
-- Undo 0007.agent_tools.sql: drop versioned prompts, bug escalations (and
-- error_logs.bug_id) and the vision cache, every row, with their functions.
-- The view in views/60_agent_tools.sql goes with them (cascade) and comes
-- back with the next migrate. Undoing this migration is what a rollback is
-- for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, require-concurrent-index-deletion

drop function if exists toolsdb.prompt_get(text, text, integer);
drop function if exists toolsdb.prompt_activate(text, integer);
drop function if exists toolsdb.prompt_set_label(text, integer, text);
drop function if exists toolsdb.prompt_create_version(text, text, jsonb, text[]);
drop table if exists toolsdb.prompt_versions cascade;
drop function if exists toolsdb_private.tg__prompt_version();
drop table if exists toolsdb.prompts cascade;

drop function if exists toolsdb.bug_escalation_move(text, text, uuid);
drop function if exists toolsdb.report_bug(text, text, text, text);
drop index if exists toolsdb.error_logs_bug_id_idx;
alter table toolsdb.error_logs drop column if exists bug_id;
drop table if exists toolsdb.bug_escalations cascade;
drop function if exists toolsdb_private.tg__bug_lifecycle();

drop function if exists toolsdb.vision_cache_stats();
drop function if exists toolsdb.vision_cache_purge_expired();
drop function if exists toolsdb.vision_cache_flush_hits();
drop function if exists toolsdb.vision_cache_get(text, text);
drop function if exists toolsdb.vision_cache_store(text, jsonb, double precision, text, interval);
drop table if exists toolsdb.vision_cache_hits;
drop table if exists toolsdb.vision_cache;

delete from toolsdb_private.audit_exemptions
where table_name in ('toolsdb.vision_cache', 'toolsdb.vision_cache_hits');
