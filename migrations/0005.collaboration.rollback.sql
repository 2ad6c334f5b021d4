-- migrations/0005.collaboration.rollback.sql
-- Undo 0005.collaboration.sql: drop the activity feed, comments,
-- attachments, evidence (and the run -> evidence foreign key), error logs and
-- PR validations, every row, with their functions. Views in views/ over them
-- go with them (cascade) and come back with the next migrate. Undoing this
-- migration is what a rollback is for, so squawk's drop rules (and the
-- concurrent index drop, impossible inside the migrate transaction) do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-constraint, require-concurrent-index-deletion

drop function if exists toolsdb.activity_record(uuid, text, text, uuid, jsonb, boolean);
delete from toolsdb_private.audit_exemptions
where table_name = 'toolsdb.activity_feed';
drop table if exists toolsdb.activity_feed cascade;
drop table if exists toolsdb.task_attachments cascade;
drop table if exists toolsdb.task_comments cascade;

drop index if exists toolsdb.agent_executions_evidence_id_idx;
alter table toolsdb.agent_executions drop constraint if exists agent_executions_evidence_id_fkey;
drop table if exists toolsdb.evidence cascade;
drop function if exists toolsdb_private.tg__evidence_verified_at();
drop function if exists toolsdb.error_record_recovery(uuid, boolean, jsonb);
drop function if exists toolsdb.error_record(text, text, uuid, uuid, jsonb, text);
drop table if exists toolsdb.error_logs cascade;
drop function if exists toolsdb_private.tg__error_rules();
drop function if exists toolsdb.validation_cancel(uuid);
drop function if exists toolsdb.validation_settle(uuid);
drop function if exists toolsdb.validation_record_check(uuid, text, boolean, jsonb);
drop table if exists toolsdb.pr_validations cascade;
drop function if exists toolsdb_private.tg__validation_rules();
