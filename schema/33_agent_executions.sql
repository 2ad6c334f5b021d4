-- schema/33_agent_executions.sql
-- Tier 30: an agent working on a task (the agent_executions of engineering
-- platforms and the task_executions of CI/CD task trackers, one table).
-- Defines toolsdb.agent_executions, its append-only log
-- toolsdb.agent_execution_logs, the rules trigger (status moves, timestamps and
-- cost set by the database) and the functions that drive a run:
-- execution_create, execution_start, execution_log, execution_complete,
-- execution_fail, execution_time_out, execution_cancel. Audited (the log is
-- exempt: high-volume, append-only); row-level security per project on both
-- tables.
-- Its functions, triggers and row-level security: repeatable/33_agent_executions.sql.
-- Needs: schema/21_projects.sql, schema/22_agents.sql, schema/30_tasks.sql,
--        schema/32_evidence.sql.

create table if not exists toolsdb.agent_executions (
    execution_id uuid not null default gen_random_uuid(),
    agent_id uuid not null,
    task_id uuid not null,
    project_id uuid not null,
    agent_type text not null,
    agent_config jsonb not null default '{}',
    model_provider text,
    model_name text,
    status text not null default 'pending',
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cached_tokens bigint not null default 0,
    cost_usd numeric(14, 6),
    cost_is_given boolean not null default false,
    error_details jsonb,
    result jsonb,
    evidence_id uuid,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint agent_executions_pkey primary key (execution_id),
    constraint agent_executions_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete restrict,
    constraint agent_executions_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint agent_executions_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint agent_executions_evidence_id_fkey foreign key (evidence_id)
    references toolsdb.evidence (evidence_id) on delete set null,
    constraint agent_type_length_is_valid check (char_length(agent_type) between 1 and 63),
    constraint agent_config_is_object check (jsonb_typeof(agent_config) = 'object'),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint status_is_valid check (
        status in ('pending', 'running', 'success', 'failure', 'timeout', 'cancelled')
    ),
    constraint tokens_are_not_negative check (input_tokens >= 0 and output_tokens >= 0 and cached_tokens >= 0),
    constraint cost_usd_is_not_negative check (cost_usd >= 0),
    constraint error_details_is_object check (jsonb_typeof(error_details) = 'object'),
    constraint started_at_matches_status check ((status = 'pending') = (started_at is null) or status = 'cancelled'),
    constraint completed_at_matches_status check (
        (status in ('success', 'failure', 'timeout', 'cancelled')) = (completed_at is not null)
    ),
    constraint completed_at_is_after_started_at check (completed_at >= started_at)
);

-- The two covering indexes serve the reports (repeatable/82_work_views.sql) per agent and
-- per project from the index alone, once vacuum has marked pages all-visible.
create index if not exists agent_executions_agent_id_idx on toolsdb.agent_executions (agent_id, created_at)
include (
    model_provider, model_name, status, started_at, completed_at, input_tokens, output_tokens, cached_tokens, cost_usd
);

create index if not exists agent_executions_evidence_id_idx on toolsdb.agent_executions (evidence_id);

create index if not exists agent_executions_task_id_idx on toolsdb.agent_executions (task_id);

create index if not exists agent_executions_project_id_idx on toolsdb.agent_executions (project_id, created_at)
include (agent_type, status, started_at, completed_at, input_tokens, output_tokens, cached_tokens, cost_usd);

-- Cost per day (toolsdb.cost_by_day) of one project over a date range.
create index if not exists agent_executions_project_id_completed_day_idx
on toolsdb.agent_executions (project_id, ((completed_at at time zone 'UTC')::date))
where completed_at is not null;

create index if not exists agent_executions_status_idx on toolsdb.agent_executions (status);

-- The newest run of each group of task_execution_summary (project, agent type, status),
-- one probe per group.
create index if not exists agent_executions_project_id_agent_type_status_idx
on toolsdb.agent_executions (project_id, agent_type, status, created_at);

comment on table toolsdb.agent_executions is
'One run of an agent on a task, with its tokens and cost (one table for the agent_executions of '
'engineering platforms and the task_executions of CI/CD task trackers). Status pending -> running '
'-> success, failure or timeout; pending or running -> cancelled. Drive it with '
'toolsdb.execution_create/start/log/complete/fail/time_out/cancel; the database sets the times and '
'the cost. The application sees its project''s runs only.';

comment on column toolsdb.agent_executions.execution_id is 'Primary key: a random UUID.';

comment on column toolsdb.agent_executions.agent_id is 'The agent that ran (retire agents, do not delete them).';

comment on column toolsdb.agent_executions.task_id is 'The task it worked on; runs go with their task.';

comment on column toolsdb.agent_executions.project_id is
'The task''s project, filled in by the database (for row-level security and reports).';

comment on column toolsdb.agent_executions.agent_type is
'The agent''s type when it ran (e.g. claude-code); copied from the agent unless given.';

comment on column toolsdb.agent_executions.agent_config is 'Configuration of this run (JSON object).';

comment on column toolsdb.agent_executions.model_provider is 'Model provider of the run; copied from the agent.';

comment on column toolsdb.agent_executions.model_name is 'Model of the run; copied from the agent; prices it.';

comment on column toolsdb.agent_executions.status is
'pending, running, success, failure, timeout or cancelled; moves only forward (see the table).';

comment on column toolsdb.agent_executions.input_tokens is 'Uncached input tokens used.';

comment on column toolsdb.agent_executions.output_tokens is 'Output tokens produced.';

comment on column toolsdb.agent_executions.cached_tokens is 'Cached input tokens read.';

comment on column toolsdb.agent_executions.cost_usd is
'Cost in USD: given by the caller, else computed at the end from the tokens at the price in force '
'when the run started (toolsdb.token_cost); null while running or when the model has no price.';

comment on column toolsdb.agent_executions.cost_is_given is 'True when the caller gave cost_usd.';

comment on column toolsdb.agent_executions.error_details is 'JSON object describing the failure, if any.';

comment on column toolsdb.agent_executions.result is 'What the run produced (JSON).';

comment on column toolsdb.agent_executions.evidence_id is 'Supporting evidence of the result, if any.';

comment on column toolsdb.agent_executions.started_at is 'When it started running; set by the database.';

comment on column toolsdb.agent_executions.completed_at is
'When it ended (success, failure, timeout or cancelled); set by the database; never before started_at.';

comment on column toolsdb.agent_executions.created_at is 'When it was created; set by trigger _100_timestamps.';

comment on column toolsdb.agent_executions.updated_at is 'When it last changed; set by trigger _100_timestamps.';

create table if not exists toolsdb.agent_execution_logs (
    log_id bigint generated always as identity,
    execution_id uuid not null,
    project_id uuid not null,
    logged_at timestamptz not null default clock_timestamp(),
    level text not null default 'info',
    message text not null,
    data jsonb not null default '{}',
    constraint agent_execution_logs_pkey primary key (log_id),
    constraint agent_execution_logs_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete cascade,
    constraint agent_execution_logs_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint level_is_valid check (level in ('debug', 'info', 'warning', 'error')),
    constraint message_length_is_valid check (char_length(message) between 1 and 100000),
    constraint data_is_object check (jsonb_typeof(data) = 'object')
);

create index if not exists agent_execution_logs_execution_id_idx
on toolsdb.agent_execution_logs (execution_id, log_id);

create index if not exists agent_execution_logs_project_id_idx on toolsdb.agent_execution_logs (project_id);

comment on table toolsdb.agent_execution_logs is
'Log entries of agent executions, appended as a run goes (toolsdb.execution_log) and never '
'rewritten: UPDATE is refused. Not audited: high-volume and append-only. Entries go with their run.';

comment on column toolsdb.agent_execution_logs.log_id is 'Increasing id: the order of the entries.';

comment on column toolsdb.agent_execution_logs.execution_id is 'The run (toolsdb.agent_executions).';

comment on column toolsdb.agent_execution_logs.project_id is 'The run''s project, for row-level security.';

comment on column toolsdb.agent_execution_logs.logged_at is 'When the entry was written.';

comment on column toolsdb.agent_execution_logs.level is 'debug, info (default), warning or error.';

comment on column toolsdb.agent_execution_logs.message is 'The entry, 1-100,000 characters.';

comment on column toolsdb.agent_execution_logs.data is 'Structured data of the entry (JSON object).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.agent_execution_logs', 'high-volume, append-only log entries of executions (never updated)')
on conflict (table_name) do nothing;

-- ---------------------------------------------------------------------------
-- Rollups of the runs (docs/work-tracking.md, "Rollups of the runs"): additive
-- rows kept by the statement triggers of repeatable/33_agent_executions.sql
-- and folded by toolsdb.maintain(); the reports read them instead of the runs.
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.execution_rollups (
    rollup_id bigint generated always as identity,
    project_id uuid not null,
    agent_id uuid not null,
    agent_type text not null,
    model_provider text,
    model_name text,
    status text not null,
    executions bigint not null,
    timed_runs bigint not null,
    duration_seconds numeric not null,
    input_tokens numeric not null,
    output_tokens numeric not null,
    cached_tokens numeric not null,
    priced_runs bigint not null,
    cost_usd numeric not null,
    constraint execution_rollups_pkey primary key (rollup_id),
    constraint agent_type_length_is_valid check (char_length(agent_type) between 1 and 63),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint status_is_valid check (
        status in ('pending', 'running', 'success', 'failure', 'timeout', 'cancelled')
    )
);

create index if not exists execution_rollups_project_id_idx on toolsdb.execution_rollups (project_id);

create index if not exists execution_rollups_agent_id_idx on toolsdb.execution_rollups (agent_id);

comment on table toolsdb.execution_rollups is
'Rollups of toolsdb.agent_executions per project, agent, agent type, provider, model and status: '
'the figures of a group are the sums of its rows. The triggers _800_execution_rollups_* append a '
'row per group each change of runs moves (+ the new rows, - the old ones); toolsdb.maintain() folds '
'each group into one row (toolsdb.execution_rollups_fold()). task_execution_summary, '
'agent_performance and project_health read it. Row-level security as on the runs. Derived data: '
'rebuild with toolsdb.execution_rollups_rebuild() after writes that skipped triggers.';

comment on column toolsdb.execution_rollups.rollup_id is 'Primary key (identity): one appended or folded row.';

comment on column toolsdb.execution_rollups.project_id is 'The runs'' project.';

comment on column toolsdb.execution_rollups.agent_id is 'The runs'' agent.';

comment on column toolsdb.execution_rollups.agent_type is 'The runs'' agent type.';

comment on column toolsdb.execution_rollups.model_provider is 'The runs'' model provider (null when unknown).';

comment on column toolsdb.execution_rollups.model_name is 'The runs'' model (null when unknown).';

comment on column toolsdb.execution_rollups.status is 'The runs'' status.';

comment on column toolsdb.execution_rollups.executions is
'How many runs this row adds to the group (negative: removes).';

comment on column toolsdb.execution_rollups.timed_runs is 'How many of them have both started_at and completed_at.';

comment on column toolsdb.execution_rollups.duration_seconds is
'Sum of completed_at - started_at of those timed runs, in seconds (exact).';

comment on column toolsdb.execution_rollups.input_tokens is 'Sum of their input_tokens.';

comment on column toolsdb.execution_rollups.output_tokens is 'Sum of their output_tokens.';

comment on column toolsdb.execution_rollups.cached_tokens is 'Sum of their cached_tokens.';

comment on column toolsdb.execution_rollups.priced_runs is 'How many of them have a cost_usd.';

comment on column toolsdb.execution_rollups.cost_usd is 'Sum of their cost_usd (0 when none is priced).';

create table if not exists toolsdb.execution_duration_rollups (
    rollup_id bigint generated always as identity,
    agent_id uuid not null,
    model_provider text,
    model_name text,
    bucket integer not null,
    runs bigint not null,
    constraint execution_duration_rollups_pkey primary key (rollup_id),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200)
);

create index if not exists execution_duration_rollups_agent_id_idx
on toolsdb.execution_duration_rollups (agent_id);

comment on table toolsdb.execution_duration_rollups is
'How long the timed runs of toolsdb.agent_executions took, per agent, provider, model and '
'duration bucket (toolsdb_private.metric_bucket of the seconds: 1% relative accuracy), across '
'projects: the count of a bucket is the sum of its rows. Kept and folded with '
'toolsdb.execution_rollups; agent_performance interpolates p50 and p95 from it for agents with '
'many runs, for callers who see every run. Not row-secured, so hidden from the application role.';

comment on column toolsdb.execution_duration_rollups.rollup_id is
'Primary key (identity): one appended or folded row.';

comment on column toolsdb.execution_duration_rollups.agent_id is 'The runs'' agent.';

comment on column toolsdb.execution_duration_rollups.model_provider is
'The runs'' model provider (null when unknown).';

comment on column toolsdb.execution_duration_rollups.model_name is 'The runs'' model (null when unknown).';

comment on column toolsdb.execution_duration_rollups.bucket is
'The duration bucket, toolsdb_private.metric_bucket(seconds); buckets order like durations.';

comment on column toolsdb.execution_duration_rollups.runs is
'How many runs this row adds to the bucket (negative: removes).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
(
    'toolsdb.execution_rollups',
    'derived from toolsdb.agent_executions by triggers, rebuilt at will: the runs are the record'
),
(
    'toolsdb.execution_duration_rollups',
    'derived from toolsdb.agent_executions by triggers, rebuilt at will: the runs are the record'
)
on conflict (table_name) do nothing;
