-- repeatable/30_tasks.sql
-- Tier 30: work tracking, first table. Defines toolsdb.tasks (issue-tracker
-- and CI/CD task-tracker tasks merged: one status lifecycle, one priority
-- scale, a hierarchy without cycles, full-text search), its lifecycle rules in
-- toolsdb.task_status_transitions (a lookup table: add a row to allow a move),
-- the trigger that enforces them, toolsdb.task_transition(),
-- toolsdb.priority_from_label() and toolsdb.priority_label_of(), the issue
-- trackers' closed and priority labels accepted on input
-- (tg__task_vocabulary), and toolsdb_private.tg__project_from_task()
-- for the rows that hang off a task. Audited; row-level security per project.
-- Status mapping (docs/work-tracking.md, docs/names.md): the issue-tracker
-- statuses open, in_progress, in_review, blocked, draft keep their names and
-- its closed is completed (done) or cancelled (dropped); the CI/CD task
-- tracker's pending is open, its in_progress, completed, failed and
-- cancelled keep their names.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/30_tasks.sql.

select toolsdb.audit_table('toolsdb.task_status_transitions');

create or replace trigger _100_timestamps
before insert or update on toolsdb.tasks
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__task_rules()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- The lifecycle: only moves listed in toolsdb.task_status_transitions.
    if tg_op = 'UPDATE' and new.status is distinct from old.status and not exists (
        select from toolsdb.task_status_transitions as t
        where t.from_status = old.status and t.to_status = new.status
    ) then
        raise exception 'task % cannot move from % to %', old.task_id, old.status, new.status
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'allowed moves are listed in toolsdb.task_status_transitions';
    end if;
    if tg_op = 'INSERT' or new.status is distinct from old.status then
        new.closed_at := case when new.status in ('completed', 'failed', 'cancelled') then pg_catalog.now() end;
    else
        new.closed_at := old.closed_at;
    end if;
    -- The hierarchy: a parent in the same project, and no cycle. Changes to
    -- one project's hierarchy are serialized, so two moves cannot close a
    -- cycle together.
    if new.parent_task_id is not null and (
        tg_op = 'INSERT' or new.parent_task_id is distinct from old.parent_task_id
        or new.project_id is distinct from old.project_id
    ) then
        if new.parent_task_id = new.task_id then
            raise exception 'task % cannot be its own parent', new.task_id
                using errcode = 'check_violation', constraint = 'parent_is_not_self';
        end if;
        perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(new.project_id::text, 0));
        if not exists (
            select from toolsdb.tasks as p
            where p.task_id = new.parent_task_id and p.project_id = new.project_id
        ) then
            raise exception 'task %: parent task % is not a task of project %',
                new.task_id, new.parent_task_id, new.project_id
                using errcode = 'check_violation', constraint = 'parent_task_is_in_same_project';
        end if;
        if exists (
            with recursive ancestors as (
                select p.task_id, p.parent_task_id
                from toolsdb.tasks as p
                where p.project_id = new.project_id and p.task_id = new.parent_task_id
                union
                select p.task_id, p.parent_task_id
                from toolsdb.tasks as p
                inner join ancestors as a on p.task_id = a.parent_task_id
                where p.project_id = new.project_id
            )
            select from ancestors where ancestors.task_id = new.task_id
        ) then
            raise exception 'task % cannot be its own ancestor (parent %)', new.task_id, new.parent_task_id
                using errcode = 'check_violation', constraint = 'task_hierarchy_is_acyclic';
        end if;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__task_rules() is
'Trigger of toolsdb.tasks (_200_task_rules, BEFORE INSERT OR UPDATE): status moves only along '
'toolsdb.task_status_transitions (else 55000 naming both states), closed_at kept by the database, '
'parent in the same project (23514 parent_task_is_in_same_project) and no cycle (23514 '
'task_hierarchy_is_acyclic).';

create or replace trigger _200_task_rules
before insert or update on toolsdb.tasks
for each row
execute function toolsdb_private.tg__task_rules();

select toolsdb.audit_table('toolsdb.tasks');

select toolsdb.isolate_rows('toolsdb.tasks', 'project_id');

create or replace function toolsdb.project_of_task(task_id uuid)
returns uuid
language plpgsql
stable
set search_path = ''
as $function$
declare
    acting constant uuid := toolsdb.current_project_id();
    project uuid;
begin
    -- The project the transaction acts for first (toolsdb.project_id, as the application
    -- sets it): on Citus a read of that project's shard only, where the id alone reads every
    -- shard (docs/citus.md).
    if acting is not null then
        select t.project_id into project from toolsdb.tasks as t
        where t.project_id = acting and t.task_id = project_of_task.task_id;
        if project is not null then
            return project;
        end if;
    end if;
    select t.project_id into project from toolsdb.tasks as t
    where t.task_id = project_of_task.task_id;
    return project;
end;
$function$;

comment on function toolsdb.project_of_task(uuid) is
'The project of a task the caller sees, or null, e.g. select toolsdb.project_of_task(''<task>''). '
'On Citus the tasks are distributed by project: rows of a task name its project when inserted, and '
'functions given a task look its project up first, to reach its shard. The project the transaction '
'acts for (toolsdb.project_id) is tried first: on Citus one shard read, where the id alone reads all '
'(docs/citus.md).';

-- Rows that hang off a task take its project (for row-level security).
create or replace function toolsdb_private.tg__project_from_task()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'UPDATE' then
        new.project_id := old.project_id;
        new.task_id := old.task_id;
        return new;
    end if;
    if new.project_id is null or pg_catalog.current_setting('citus.version', true) is null then
        select t.project_id into new.project_id from toolsdb.tasks as t where t.task_id = new.task_id;
    elsif not exists (
        -- On Citus a distributed row was routed by the project it names (as Citus requires),
        -- which must be the task's: the lookup stays on the row's own shard (docs/citus.md).
        select 1 from toolsdb.tasks as t where t.project_id = new.project_id and t.task_id = new.task_id
    ) then
        new.project_id := null;
    end if;
    if new.project_id is null then
        raise exception 'task % not found', new.task_id
            using errcode = 'foreign_key_violation', constraint = tg_argv[0] || '_task_id_fkey',
            hint = 'is toolsdb.project_id set to its project?';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__project_from_task() is
'Trigger (_050_project_from_task) of rows that hang off a task (runs, validations, comments, '
'attachments), whose name is its argument: project_id is the task''s, set on insert (on Citus, where '
'the insert names it, another project than the task''s is refused); task and project cannot change '
'afterwards. An unknown or invisible task raises 23503 naming <table>_task_id_fkey.';

create or replace function toolsdb_private.tg__null_references()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
declare
    i integer;
begin
    -- Arguments: this row's key column, then pairs of (table, column) that reference it
    -- with its project.
    for i in 1 .. tg_nargs - 1 by 2 loop
        execute pg_catalog.format(
            'update toolsdb.%I set %I = null where project_id = $1 and %2$I = $2', tg_argv[i], tg_argv[i + 1]
        ) using old.project_id, (pg_catalog.to_jsonb(old) ->> tg_argv[0])::uuid;
    end loop;
    return old;
end;
$function$;

comment on function toolsdb_private.tg__null_references() is
'On Citus only, trigger _900_null_references (BEFORE DELETE, FOR EACH ROW) of tasks, evidence and '
'agent_executions: what `on delete set null` does on one node, which Citus refuses on a key that '
'holds the distribution column. Its arguments: the row''s key column, then pairs (table, column) of '
'the references to null, in the row''s project, on its shard (docs/citus.md).';

do $citus$
declare
    wanted constant text[] := array[
        ['tasks', 'task_id', 'tasks', 'parent_task_id', 'evidence', 'task_id'],
        ['evidence', 'evidence_id', 'agent_executions', 'evidence_id', 'task_attachments', 'evidence_id'],
        ['agent_executions', 'execution_id', 'pr_validations', 'execution_id', null, null]
    ];
    w text[];
begin
    if pg_catalog.current_setting('citus.version', true) is null or not exists (
        select 1 from pg_catalog.pg_constraint as c
        where c.conrelid = 'toolsdb.evidence'::regclass and c.conname = 'evidence_task_id_fkey'
            and c.confdeltype = 'r'
    ) then
        return;
    end if;
    foreach w slice 1 in array wanted loop
        if not exists (
            select 1 from pg_catalog.pg_trigger as t
            where t.tgrelid = pg_catalog.format('toolsdb.%I', w[1])::regclass and t.tgname = '_900_null_references'
        ) then
            execute pg_catalog.format(
                'create trigger _900_null_references before delete on toolsdb.%I for each row '
                'execute function toolsdb_private.tg__null_references(%s)',
                w[1],
                pg_catalog.array_to_string(
                    array(select pg_catalog.quote_literal(a) from pg_catalog.unnest(w[2:]) as a), ', '
                )
            );
        end if;
    end loop;
end
$citus$;

create or replace function toolsdb.task_transition(task_id uuid, to_status text)
returns text
language plpgsql
volatile
set search_path = ''
as $function$
declare
    previous text;
    -- The task's project first: on Citus it names the task's shard, and a row
    -- is locked there only (docs/citus.md).
    project constant uuid := toolsdb.project_of_task(task_transition.task_id);
begin
    select t.status into previous
    from toolsdb.tasks as t
    where t.project_id = project and t.task_id = task_transition.task_id
    for update;
    if not found then
        raise exception 'task % not found', task_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    update toolsdb.tasks as t set status = to_status
    where t.project_id = project and t.task_id = task_transition.task_id;
    return previous;
end;
$function$;

comment on function toolsdb.task_transition(uuid, text) is
'Moves a task to another status, e.g. select toolsdb.task_transition(''<task>'', ''in_review''); '
'returns the status it left. A move not in toolsdb.task_status_transitions fails with 55000 '
'naming both states; closed_at is set by the database.';

create or replace function toolsdb.priority_from_label(label text)
returns smallint
language plpgsql
immutable
set search_path = ''
as $function$
declare
    mapped smallint := case label
        when 'critical' then 9
        when 'high' then 7
        when 'medium' then 5
        when 'low' then 2
    end;
begin
    if mapped is null then
        raise exception 'unknown priority label %: use low, medium, high or critical', pg_catalog.quote_literal(label)
            using errcode = 'invalid_parameter_value';
    end if;
    return mapped;
end;
$function$;

comment on function toolsdb.priority_from_label(text) is
'The issue-tracker priority labels on the 0-10 scale of CI/CD task trackers: low 2, medium 5, high '
'7, critical 9 (the middle of each label''s range in tasks.priority_label). Unknown labels raise '
'22023.';

-- The issue trackers' words on input (docs/work-tracking.md): status closed
-- and a writable priority label, mapped to the one vocabulary before the
-- lifecycle rules run.
create or replace function toolsdb.priority_label_of(priority smallint)
returns text
language sql
immutable
strict
set search_path = ''
return case
    when priority >= 9 then 'critical'
    when priority >= 7 then 'high'
    when priority >= 4 then 'medium'
    else 'low'
end;

comment on function toolsdb.priority_label_of(smallint) is
'The issue-tracker label of a 0-10 priority: low 0-3, medium 4-6, high 7-8, critical 9-10 '
'(tasks.priority_label).';

create or replace function toolsdb_private.tg__task_vocabulary()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.status = 'closed' then
        new.status := case
            when tg_op = 'INSERT' or old.status in ('in_progress', 'in_review') then 'completed'
            when old.status in ('draft', 'open', 'blocked') then 'cancelled'
            else old.status
        end;
    end if;
    if tg_op = 'UPDATE' and new.priority is distinct from old.priority then
        if new.priority_label is distinct from old.priority_label
            and new.priority_label is distinct from toolsdb.priority_label_of(new.priority) then
            raise exception 'priority % is %, not %', new.priority, toolsdb.priority_label_of(new.priority),
                pg_catalog.quote_literal(new.priority_label)
                using errcode = 'invalid_parameter_value',
                hint = 'set either priority or priority_label';
        end if;
    elsif new.priority_label is not null
        and new.priority_label is distinct from toolsdb.priority_label_of(new.priority) then
        new.priority := toolsdb.priority_from_label(new.priority_label);
    end if;
    new.priority_label := toolsdb.priority_label_of(new.priority);
    return new;
end;
$function$;

comment on function toolsdb_private.tg__task_vocabulary() is
'Trigger of toolsdb.tasks (_150_task_vocabulary, BEFORE INSERT OR UPDATE): status closed becomes '
'completed (on insert, from in_progress or in_review), cancelled (from draft, open or blocked) or '
'stays closed as it was; a priority_label written alone sets priority '
'(toolsdb.priority_from_label, 22023 for an unknown label), priority_label always follows '
'priority; both changed and disagreeing raise 22023.';

create or replace trigger _150_task_vocabulary
before insert or update on toolsdb.tasks
for each row
execute function toolsdb_private.tg__task_vocabulary();
