-- schema/30_tasks.sql
-- Tier 30: work tracking, first table. Defines toolsdb.tasks (seeds 002 and
-- 004 merged: one status lifecycle, one priority scale, a hierarchy without
-- cycles, full-text search), its lifecycle rules in
-- toolsdb.task_status_transitions (a lookup table: add a row to allow a move),
-- the trigger that enforces them, toolsdb.task_transition() and
-- toolsdb.priority_from_label(), and toolsdb_private.tg__project_from_task()
-- for the rows that hang off a task. Audited; row-level security per project.
-- Status mapping (docs/work-tracking.md): 002's open, in_progress, in_review,
-- blocked, draft keep their names and 002's closed is completed (done) or
-- cancelled (dropped); 004's pending is open, its in_progress, completed,
-- failed and cancelled keep their names.
-- Needs: schema/10_timestamps.sql, schema/11_context.sql, schema/12_audit.sql,
--        schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql.

create table if not exists toolsdb.task_status_transitions (
    from_status text not null,
    to_status text not null,
    constraint task_status_transitions_pkey primary key (from_status, to_status),
    constraint from_status_is_valid check (
        from_status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint to_status_is_valid check (
        to_status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint transition_changes_status check (from_status <> to_status)
);

comment on table toolsdb.task_status_transitions is
'The moves a task''s status may make (from_status -> to_status); any other move is refused. '
'A lookup table: insert a row to allow a move, delete one to forbid it.';
comment on column toolsdb.task_status_transitions.from_status is 'Status the task is in.';
comment on column toolsdb.task_status_transitions.to_status is 'Status it may move to.';

insert into toolsdb.task_status_transitions (from_status, to_status) values
('draft', 'open'),
('draft', 'cancelled'),
('open', 'draft'),
('open', 'in_progress'),
('open', 'blocked'),
('open', 'cancelled'),
('in_progress', 'open'),
('in_progress', 'in_review'),
('in_progress', 'blocked'),
('in_progress', 'completed'),
('in_progress', 'failed'),
('in_progress', 'cancelled'),
('in_review', 'in_progress'),
('in_review', 'completed'),
('in_review', 'failed'),
('in_review', 'cancelled'),
('blocked', 'open'),
('blocked', 'in_progress'),
('blocked', 'cancelled'),
('completed', 'open'),
('failed', 'open'),
('cancelled', 'open')
on conflict on constraint task_status_transitions_pkey do nothing;

select toolsdb.audit_table('toolsdb.task_status_transitions');

create table if not exists toolsdb.tasks (
    task_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    parent_task_id uuid,
    title text not null,
    description text,
    type text not null default 'task',
    status text not null default 'open',
    priority smallint not null default 5,
    priority_label text generated always as (
        case
            when priority >= 9 then 'critical'
            when priority >= 7 then 'high'
            when priority >= 4 then 'medium'
            else 'low'
        end
    ) stored,
    requirements jsonb not null default '{}',
    labels text[] not null default '{}',
    assigned_to_user_id uuid,
    assigned_to_agent_id uuid,
    github_issue_number integer,
    github_pr_number integer,
    ai_analysis jsonb not null default '{}',
    ai_suggestions jsonb not null default '[]',
    created_by text not null default coalesce(nullif(current_setting('toolsdb.actor', true), ''), session_user),
    closed_at timestamptz,
    search_vector tsvector generated always as (
        setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tasks_pkey primary key (task_id),
    constraint tasks_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint tasks_parent_task_id_fkey foreign key (parent_task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint tasks_assigned_to_user_id_fkey foreign key (assigned_to_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint tasks_assigned_to_agent_id_fkey foreign key (assigned_to_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint title_length_is_valid check (char_length(title) between 1 and 500),
    constraint description_length_is_valid check (char_length(description) between 1 and 100000),
    constraint type_is_valid check (
        type in ('bug', 'feature', 'refactor', 'test', 'documentation', 'task', 'chore')
    ),
    constraint status_is_valid check (
        status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint priority_is_valid check (priority between 0 and 10),
    constraint priority_label_is_valid check (priority_label in ('low', 'medium', 'high', 'critical')),
    constraint requirements_is_object check (jsonb_typeof(requirements) = 'object'),
    constraint labels_are_valid check (
        cardinality(labels) <= 50 and array_position(labels, null) is null and array_position(labels, '') is null
    ),
    constraint github_issue_number_is_positive check (github_issue_number > 0),
    constraint github_pr_number_is_positive check (github_pr_number > 0),
    constraint ai_analysis_is_object check (jsonb_typeof(ai_analysis) = 'object'),
    constraint ai_suggestions_is_array_or_object check (jsonb_typeof(ai_suggestions) in ('array', 'object')),
    constraint created_by_length_is_valid check (char_length(created_by) between 1 and 200),
    constraint parent_is_not_self check (parent_task_id <> task_id),
    constraint closed_at_matches_status check (
        (status in ('completed', 'failed', 'cancelled')) = (closed_at is not null)
    )
);

create index if not exists tasks_project_id_status_idx on toolsdb.tasks (project_id, status)
include (github_pr_number);

create index if not exists tasks_parent_task_id_idx on toolsdb.tasks (parent_task_id);

create index if not exists tasks_assigned_to_user_id_idx on toolsdb.tasks (assigned_to_user_id);

create index if not exists tasks_assigned_to_agent_id_idx on toolsdb.tasks (assigned_to_agent_id);

create index if not exists tasks_priority_idx on toolsdb.tasks (priority);

create unique index if not exists tasks_project_id_github_issue_number_key
on toolsdb.tasks (project_id, github_issue_number);

create index if not exists tasks_labels_idx on toolsdb.tasks using gin (labels);

create index if not exists tasks_requirements_idx on toolsdb.tasks using gin (requirements jsonb_path_ops);

create index if not exists tasks_search_vector_idx on toolsdb.tasks using gin (search_vector);

comment on table toolsdb.tasks is
'Work items of a project: issues, pull requests and tasks (seeds 002 and 004). One lifecycle '
'(status, moves in toolsdb.task_status_transitions), priority 0-10 with its 002 label, subtasks '
'through parent_task_id (no cycles), full-text search in search_vector. The application sees the '
'tasks of its project only (toolsdb.project_id).';
comment on column toolsdb.tasks.task_id is 'Primary key: a random UUID.';
comment on column toolsdb.tasks.project_id is 'The project (toolsdb.projects); tasks go with it (on delete cascade).';
comment on column toolsdb.tasks.parent_task_id is
'The parent task (004''s hierarchy), in the same project; never the task itself or one of its '
'descendants. Null for a top-level task; set to null when the parent is deleted.';
comment on column toolsdb.tasks.title is 'Short title, 1-500 characters; weighted A in search_vector.';
comment on column toolsdb.tasks.description is 'Longer text, up to 100,000 characters; weighted B in search_vector.';
comment on column toolsdb.tasks.type is 'bug, feature, refactor, test, documentation, task (default) or chore.';
comment on column toolsdb.tasks.status is
'draft, open (002 open, 004 pending; default), in_progress, in_review, blocked, completed (004 '
'completed, 002 closed as done), failed, cancelled (002 closed as dropped). Changes only along '
'toolsdb.task_status_transitions.';
comment on column toolsdb.tasks.priority is '0 (lowest) to 10 (highest), 004''s scale; default 5.';
comment on column toolsdb.tasks.priority_label is
'002''s label, derived from priority: low 0-3, medium 4-6, high 7-8, critical 9-10. Set a label '
'with priority = toolsdb.priority_from_label(''high'').';
comment on column toolsdb.tasks.requirements is 'JSON object of requirements (acceptance criteria, constraints).';
comment on column toolsdb.tasks.labels is 'Free labels, at most 50, none empty; GIN-indexed (labels @> array[...]).';
comment on column toolsdb.tasks.assigned_to_user_id is 'The user it is assigned to, if any (one at most).';
comment on column toolsdb.tasks.assigned_to_agent_id is 'The agent it is assigned to, if any (one at most).';
comment on column toolsdb.tasks.github_issue_number is 'GitHub issue number; unique within the project.';
comment on column toolsdb.tasks.github_pr_number is 'GitHub pull request number, if any.';
comment on column toolsdb.tasks.ai_analysis is 'JSON object: an AI''s analysis of the task.';
comment on column toolsdb.tasks.ai_suggestions is 'JSON array or object: an AI''s suggestions.';
comment on column toolsdb.tasks.created_by is
'Who created it: setting toolsdb.actor at insert, else the database login role.';
comment on column toolsdb.tasks.closed_at is
'When it reached completed, failed or cancelled; null while it is not closed. Set by the database.';
comment on column toolsdb.tasks.search_vector is
'Full-text search vector (english) of title (A) and description (B), GIN-indexed: '
'where search_vector @@ websearch_to_tsquery(''english'', ''login bug'').';
comment on column toolsdb.tasks.created_at is 'When the task was created; set by trigger _100_timestamps.';
comment on column toolsdb.tasks.updated_at is 'When it last changed; set by trigger _100_timestamps.';

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
                where p.task_id = new.parent_task_id
                union
                select p.task_id, p.parent_task_id
                from toolsdb.tasks as p
                inner join ancestors as a on p.task_id = a.parent_task_id
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
    select t.project_id into new.project_id from toolsdb.tasks as t where t.task_id = new.task_id;
    if new.project_id is null then
        raise exception 'task % not found', new.task_id
            using errcode = 'foreign_key_violation', constraint = tg_table_name || '_task_id_fkey',
            hint = 'is toolsdb.project_id set to its project?';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__project_from_task() is
'Trigger (_050_project_from_task) of rows that hang off a task (runs, validations, comments, '
'attachments): project_id is the task''s, set on insert; task and project cannot change afterwards. '
'An unknown or invisible task raises 23503 naming <table>_task_id_fkey.';

create or replace function toolsdb.task_transition(task_id uuid, to_status text)
returns text
language plpgsql
volatile
set search_path = ''
as $function$
declare
    previous text;
begin
    select t.status into previous
    from toolsdb.tasks as t
    where t.task_id = task_transition.task_id
    for update;
    if not found then
        raise exception 'task % not found', task_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    update toolsdb.tasks as t set status = to_status where t.task_id = task_transition.task_id;
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
'002''s priority labels on 004''s 0-10 scale: low 2, medium 5, high 7, critical 9 (the middle of '
'each label''s range in tasks.priority_label). Unknown labels raise 22023.';
