-- schema/30_tasks.sql
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
-- Its functions, triggers and row-level security: repeatable/30_tasks.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql.

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

create table if not exists toolsdb.tasks (
    task_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    parent_task_id uuid,
    title text not null,
    description text,
    type text not null default 'task',
    status text not null default 'open',
    priority smallint not null default 5,
    priority_label text not null,
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
'Work items of a project: issues, pull requests and tasks (of issue trackers and CI/CD task '
'trackers). One lifecycle (status, moves in toolsdb.task_status_transitions), priority 0-10 with '
'its issue-tracker label, subtasks through parent_task_id (no cycles), full-text search in '
'search_vector. The application sees the tasks of its project only (toolsdb.project_id).';

comment on column toolsdb.tasks.task_id is 'Primary key: a random UUID.';

comment on column toolsdb.tasks.project_id is 'The project (toolsdb.projects); tasks go with it (on delete cascade).';

comment on column toolsdb.tasks.parent_task_id is
'The parent task (the CI/CD task-tracker hierarchy), in the same project; never the task itself or '
'one of its descendants. Null for a top-level task; set to null when the parent is deleted.';

comment on column toolsdb.tasks.title is 'Short title, 1-500 characters; weighted A in search_vector.';

comment on column toolsdb.tasks.description is 'Longer text, up to 100,000 characters; weighted B in search_vector.';

comment on column toolsdb.tasks.type is 'bug, feature, refactor, test, documentation, task (default) or chore.';

comment on column toolsdb.tasks.status is
'draft, open (default; pending in CI/CD task trackers), in_progress, in_review, blocked, completed '
'(closed as done in issue trackers), failed, cancelled (closed as dropped in issue trackers). '
'Changes only along toolsdb.task_status_transitions. Writing closed stores completed from '
'in_progress or in_review (and on insert), cancelled from draft, open or blocked, and keeps a '
'closed status as it is.';

comment on column toolsdb.tasks.priority is
'0 (lowest) to 10 (highest), the scale of CI/CD task trackers; default 5.';

comment on column toolsdb.tasks.priority_label is
'The issue-tracker label of priority (toolsdb.priority_label_of): low 0-3, medium 4-6, high 7-8, '
'critical 9-10, kept by the database. Writable: writing a label that disagrees with priority sets '
'priority to toolsdb.priority_from_label(label) (high 7); writing both, disagreeing, in one update '
'raises 22023.';

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
