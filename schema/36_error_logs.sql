-- schema/36_error_logs.sql
-- Tier 30: errors met while working (error_logs), with their
-- recovery attempts. Functions: toolsdb.error_record(),
-- toolsdb.error_record_recovery(). Audited; row-level security per project.
-- Its functions, triggers and row-level security: repeatable/36_error_logs.sql.
-- Needs: schema/21_projects.sql, schema/30_tasks.sql,
--        schema/33_agent_executions.sql, schema/35_bug_escalations.sql.

create table if not exists toolsdb.error_logs (
    error_id uuid not null default gen_random_uuid(),
    task_id uuid,
    execution_id uuid,
    project_id uuid,
    error_type text not null,
    error_message text not null,
    error_stack text,
    context jsonb not null default '{}',
    recovery_attempts integer not null default 0,
    resolved boolean not null default false,
    resolved_at timestamptz,
    bug_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint error_logs_pkey primary key (error_id),
    constraint error_logs_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint error_logs_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete set null,
    constraint error_logs_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint error_logs_bug_id_fkey foreign key (bug_id)
    references toolsdb.bug_escalations (bug_id) on delete set null,
    constraint error_type_is_valid check (
        error_type in (
            'database', 'api', 'validation', 'network', 'timeout', 'authentication', 'authorization', 'system'
        )
    ),
    constraint error_message_length_is_valid check (char_length(error_message) between 1 and 10000),
    constraint error_stack_length_is_valid check (char_length(error_stack) between 1 and 100000),
    constraint context_is_object check (jsonb_typeof(context) = 'object'),
    constraint recovery_attempts_is_valid check (recovery_attempts between 0 and 1000),
    constraint resolved_at_matches_resolved check (resolved = (resolved_at is not null))
);

create index if not exists error_logs_task_id_idx on toolsdb.error_logs (task_id);

create index if not exists error_logs_execution_id_idx on toolsdb.error_logs (execution_id);

create index if not exists error_logs_project_id_idx on toolsdb.error_logs (project_id, created_at);

create index if not exists error_logs_error_type_resolved_idx on toolsdb.error_logs (error_type, resolved);

create index if not exists error_logs_bug_id_idx on toolsdb.error_logs (bug_id);

comment on table toolsdb.error_logs is
'Errors met by agents and tasks, from the closed list of types of CI/CD task trackers, with '
'recovery attempts: toolsdb.error_record() logs one, toolsdb.error_record_recovery() counts an '
'attempt and resolves the error when it succeeds.';

comment on column toolsdb.error_logs.error_id is 'Primary key: a random UUID.';

comment on column toolsdb.error_logs.task_id is 'The task it happened on, if any.';

comment on column toolsdb.error_logs.execution_id is 'The agent run it happened in, if any.';

comment on column toolsdb.error_logs.project_id is
'The project, filled in from the run or task; null for errors outside any project (the '
'application then does not see them).';

comment on column toolsdb.error_logs.error_type is
'database, api, validation, network, timeout, authentication, authorization or system.';

comment on column toolsdb.error_logs.error_message is 'The message, 1-10,000 characters.';

comment on column toolsdb.error_logs.error_stack is 'The stack trace, if any.';

comment on column toolsdb.error_logs.context is 'Anything that helps reproduce it (JSON object).';

comment on column toolsdb.error_logs.recovery_attempts is 'How many recoveries were tried (0-1000).';

comment on column toolsdb.error_logs.resolved is 'True once a recovery succeeded or it was resolved by hand.';

comment on column toolsdb.error_logs.resolved_at is 'When it was resolved; set by the database.';

comment on column toolsdb.error_logs.bug_id is 'The escalated bug this error is an occurrence of, if any.';

comment on column toolsdb.error_logs.created_at is 'When it was logged; set by trigger _100_timestamps.';

comment on column toolsdb.error_logs.updated_at is 'When it last changed; set by trigger _100_timestamps.';
