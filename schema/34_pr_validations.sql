-- schema/34_pr_validations.sql
-- Tier 30: validations of a task's pull request (pr_validations):
-- per-check results recorded as checks report, then settled to passed or
-- failed. Functions: toolsdb.validation_record_check(),
-- toolsdb.validation_settle(), toolsdb.validation_cancel(). Audited; row-level
-- security per project.
-- Its functions, triggers and row-level security: repeatable/34_pr_validations.sql.
-- Needs: schema/21_projects.sql, schema/30_tasks.sql,
--        schema/33_agent_executions.sql.

create table if not exists toolsdb.pr_validations (
    validation_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    execution_id uuid,
    project_id uuid not null,
    pr_number integer not null,
    repository text not null,
    branch_name text,
    status text not null default 'pending',
    validation_results jsonb not null default '{}',
    webhook_payload jsonb,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint pr_validations_pkey primary key (validation_id),
    constraint pr_validations_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint pr_validations_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete set null,
    constraint pr_validations_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint pr_number_is_positive check (pr_number > 0),
    constraint repository_is_valid check (
        repository ~ '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$' and char_length(repository) <= 200
    ),
    constraint branch_name_length_is_valid check (char_length(branch_name) between 1 and 255),
    constraint status_is_valid check (status in ('pending', 'running', 'passed', 'failed', 'cancelled')),
    constraint validation_results_is_object check (jsonb_typeof(validation_results) = 'object'),
    constraint webhook_payload_is_object check (jsonb_typeof(webhook_payload) = 'object'),
    constraint completed_at_matches_status check (
        (status in ('passed', 'failed', 'cancelled')) = (completed_at is not null)
    ),
    constraint completed_at_is_after_started_at check (completed_at >= started_at)
);

create index if not exists pr_validations_task_id_idx on toolsdb.pr_validations (task_id);

create index if not exists pr_validations_execution_id_idx on toolsdb.pr_validations (execution_id);

create index if not exists pr_validations_project_id_idx on toolsdb.pr_validations (project_id, created_at);

create index if not exists pr_validations_repository_pr_number_idx
on toolsdb.pr_validations (repository, pr_number);

comment on table toolsdb.pr_validations is
'Validations of a pull request of a task: each check (tests, lint, ...) records its result in '
'validation_results, then the validation is settled: passed when every check passed. Status '
'pending -> running (first check) -> passed or failed; pending or running -> cancelled.';

comment on column toolsdb.pr_validations.validation_id is 'Primary key: a random UUID.';

comment on column toolsdb.pr_validations.task_id is 'The task whose pull request is validated.';

comment on column toolsdb.pr_validations.execution_id is 'The agent run that produced the pull request, if any.';

comment on column toolsdb.pr_validations.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.pr_validations.pr_number is 'Pull request number.';

comment on column toolsdb.pr_validations.repository is 'Repository as owner/name, e.g. example/toolsdb.';

comment on column toolsdb.pr_validations.branch_name is 'The pull request''s branch.';

comment on column toolsdb.pr_validations.status is 'pending, running, passed, failed or cancelled.';

comment on column toolsdb.pr_validations.validation_results is
'Results per check: {"tests": {"passed": true, "details": {...}, "recorded_at": "..."}, "lint": ...}.';

comment on column toolsdb.pr_validations.webhook_payload is 'The webhook that triggered it (JSON object), if any.';

comment on column toolsdb.pr_validations.started_at is 'When the first check reported; set by the database.';

comment on column toolsdb.pr_validations.completed_at is 'When it was settled or cancelled; set by the database.';

comment on column toolsdb.pr_validations.created_at is 'When it was created; set by trigger _100_timestamps.';

comment on column toolsdb.pr_validations.updated_at is 'When it last changed; set by trigger _100_timestamps.';
