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
execute function toolsdb_private.tg__project_from_task('task_comments');

create or replace trigger _100_timestamps
before insert or update on toolsdb.task_comments
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__comment_ai_generated()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.author_agent_id is not null then
        new.is_ai_generated := true;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__comment_ai_generated() is
'Trigger of toolsdb.task_comments (_060_ai_generated): a comment written by an agent is '
'is_ai_generated; the flag stays when the agent is deleted.';

create or replace trigger _060_ai_generated
before insert or update on toolsdb.task_comments
for each row
execute function toolsdb_private.tg__comment_ai_generated();

select toolsdb.audit_table('toolsdb.task_comments');

select toolsdb.isolate_rows('toolsdb.task_comments', 'project_id');

create or replace trigger _050_project_from_task
before insert or update on toolsdb.task_attachments
for each row
execute function toolsdb_private.tg__project_from_task('task_attachments');

create or replace function toolsdb_private.tg__attachment_evidence()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.evidence_id is null or (tg_op = 'UPDATE' and new.evidence_id is not distinct from old.evidence_id) then
        return new;
    end if;
    new.is_evidence := true;
    if not exists (
        select from toolsdb.evidence as e
        where e.evidence_id = new.evidence_id and e.project_id = new.project_id
    ) then
        raise exception 'attachment %: evidence % is not evidence of project %',
            new.attachment_id, new.evidence_id, new.project_id
            using errcode = 'check_violation', constraint = 'evidence_is_in_same_project';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__attachment_evidence() is
'Trigger of toolsdb.task_attachments (_060_evidence): an attachment given an evidence_id is '
'is_evidence, and the evidence must be of the attachment''s project (else 23514 '
'evidence_is_in_same_project).';

create or replace trigger _060_evidence
before insert or update on toolsdb.task_attachments
for each row
execute function toolsdb_private.tg__attachment_evidence();

create or replace trigger _100_timestamps
before insert or update on toolsdb.task_attachments
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.task_attachments');

select toolsdb.isolate_rows('toolsdb.task_attachments', 'project_id');
