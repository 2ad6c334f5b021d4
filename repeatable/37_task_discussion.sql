-- repeatable/37_task_discussion.sql
-- Tier 30: what people and agents attach to a task:
-- toolsdb.task_comments (written by a user or an agent) and
-- toolsdb.task_attachments (files stored elsewhere, described here).
-- Audited; row-level security per project (the project is filled in from
-- the task by the database).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/37_task_discussion.sql.

create or replace trigger _050_project_from_task
before insert or update on toolsdb.task_comments
for each row
execute function toolsdb_private.tg__project_from_task();

create or replace trigger _100_timestamps
before insert or update on toolsdb.task_comments
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.task_comments');

select toolsdb.isolate_rows('toolsdb.task_comments', 'project_id');

create or replace trigger _050_project_from_task
before insert or update on toolsdb.task_attachments
for each row
execute function toolsdb_private.tg__project_from_task();

create or replace trigger _100_timestamps
before insert or update on toolsdb.task_attachments
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.task_attachments');

select toolsdb.isolate_rows('toolsdb.task_attachments', 'project_id');
