-- migrations/0005.collaboration.sql
-- Work tracking, third slice: PR validations, error logs, the evidence
-- registry (and the foreign key from agent_executions.evidence_id), task
-- comments and attachments, and the activity feed, with their state
-- functions. The same statements as schema/33..37.
-- depends: 0004.executions
--
-- Every index here is on a table created in this same migration, but one:
-- agent_executions_evidence_id_idx, on a table that is new since 0004 and
-- has no release with data behind it yet, so a plain create index is fine.
-- squawk-ignore-file require-concurrent-index-creation

-- ---- from schema/33_pr_validations.sql ----

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
'Validations of a pull request of a task (004): each check (tests, lint, ...) records its result '
'in validation_results, then the validation is settled: passed when every check passed. Status '
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

create or replace trigger _050_project_from_task
before insert or update on toolsdb.pr_validations
for each row
execute function toolsdb_private.tg__project_from_task();

create or replace trigger _100_timestamps
before insert or update on toolsdb.pr_validations
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__validation_rules()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'INSERT' then
        new.status := 'pending';
        new.started_at := null;
        new.completed_at := null;
        return new;
    end if;
    new.started_at := old.started_at;
    new.completed_at := old.completed_at;
    if new.status is distinct from old.status then
        if not (
            (old.status = 'pending' and new.status in ('running', 'cancelled'))
            or (old.status = 'running' and new.status in ('passed', 'failed', 'cancelled'))
        ) then
            raise exception 'validation % cannot move from % to %', old.validation_id, old.status, new.status
                using errcode = 'object_not_in_prerequisite_state',
                hint = 'pending -> running -> passed or failed; pending or running -> cancelled';
        end if;
        if new.status = 'running' then
            new.started_at := pg_catalog.clock_timestamp();
        else
            new.completed_at := pg_catalog.clock_timestamp();
        end if;
    elsif old.status in ('passed', 'failed', 'cancelled') then
        raise exception 'validation % is % and can no longer change', old.validation_id, old.status
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__validation_rules() is
'Trigger of toolsdb.pr_validations (_200_validation_rules): a new validation is pending (its '
'project comes from _050_project_from_task), status moves only forward (else 55000 naming both '
'states), a settled one is frozen, started_at and completed_at are the database''s.';

create or replace trigger _200_validation_rules
before insert or update on toolsdb.pr_validations
for each row
execute function toolsdb_private.tg__validation_rules();

select toolsdb.audit_table('toolsdb.pr_validations');

select toolsdb.isolate_rows('toolsdb.pr_validations', 'project_id');

create or replace function toolsdb.validation_record_check(
    validation_id uuid, check_name text, passed boolean, details jsonb default '{}'
)
returns toolsdb.pr_validations
language plpgsql
volatile
set search_path = ''
as $function$
declare
    recorded toolsdb.pr_validations;
begin
    if check_name is null or check_name !~ '^[a-z][a-z0-9_]*$' or char_length(check_name) > 63 or passed is null then
        raise exception 'a check needs a snake_case name and passed true or false, not % / %',
            pg_catalog.quote_nullable(check_name), pg_catalog.quote_nullable(passed)
            using errcode = 'invalid_parameter_value';
    end if;
    update toolsdb.pr_validations as v
    set
        status = case when v.status = 'pending' then 'running' else v.status end,
        validation_results = v.validation_results || pg_catalog.jsonb_build_object(
            check_name,
            pg_catalog.jsonb_build_object(
                'passed', passed, 'details', coalesce(details, '{}'), 'recorded_at', pg_catalog.clock_timestamp()
            )
        )
    where v.validation_id = validation_record_check.validation_id
    returning v.* into recorded;
    if not found then
        raise exception 'validation % not found', validation_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return recorded;
end;
$function$;

comment on function toolsdb.validation_record_check(uuid, text, boolean, jsonb) is
'Records one check''s result (e.g. ''tests'', true, ''{"passed": 128}''); the first check moves a '
'pending validation to running. Recording a check again replaces its result.';

create or replace function toolsdb.validation_settle(validation_id uuid)
returns toolsdb.pr_validations
language plpgsql
volatile
set search_path = ''
as $function$
declare
    settled toolsdb.pr_validations;
begin
    update toolsdb.pr_validations as v
    set status = case
        when v.validation_results <> '{}'
            and not pg_catalog.jsonb_path_exists(v.validation_results, '$.* ? (@.passed != true)')
            then 'passed'
        else 'failed'
    end
    where v.validation_id = validation_settle.validation_id
    returning v.* into settled;
    if not found then
        raise exception 'validation % not found', validation_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return settled;
end;
$function$;

comment on function toolsdb.validation_settle(uuid) is
'Settles a running validation: passed when at least one check was recorded and every check '
'passed, else failed. A pending validation (no check yet) cannot be settled (55000).';

create or replace function toolsdb.validation_cancel(validation_id uuid)
returns toolsdb.pr_validations
language plpgsql
volatile
set search_path = ''
as $function$
declare
    cancelled toolsdb.pr_validations;
begin
    update toolsdb.pr_validations as v set status = 'cancelled'
    where v.validation_id = validation_cancel.validation_id
    returning v.* into cancelled;
    if not found then
        raise exception 'validation % not found', validation_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return cancelled;
end;
$function$;

comment on function toolsdb.validation_cancel(uuid) is 'pending or running -> cancelled.';

-- ---- from schema/34_error_logs.sql ----

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
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint error_logs_pkey primary key (error_id),
    constraint error_logs_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint error_logs_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete set null,
    constraint error_logs_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
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

comment on table toolsdb.error_logs is
'Errors met by agents and tasks (004), from its closed list of types, with recovery attempts: '
'toolsdb.error_record() logs one, toolsdb.error_record_recovery() counts an attempt and resolves '
'the error when it succeeds.';
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
comment on column toolsdb.error_logs.created_at is 'When it was logged; set by trigger _100_timestamps.';
comment on column toolsdb.error_logs.updated_at is 'When it last changed; set by trigger _100_timestamps.';

create or replace trigger _100_timestamps
before insert or update on toolsdb.error_logs
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__error_rules()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'INSERT' then
        new.project_id := coalesce(
            (select e.project_id from toolsdb.agent_executions as e where e.execution_id = new.execution_id),
            (select t.project_id from toolsdb.tasks as t where t.task_id = new.task_id),
            new.project_id
        );
        new.resolved_at := case when new.resolved then pg_catalog.clock_timestamp() end;
        return new;
    end if;
    new.project_id := old.project_id;
    if new.recovery_attempts < old.recovery_attempts then
        raise exception 'error %: recovery attempts only grow (% -> %)',
            old.error_id, old.recovery_attempts, new.recovery_attempts
            using errcode = 'check_violation', constraint = 'recovery_attempts_only_grow';
    end if;
    if new.resolved and not old.resolved then
        new.resolved_at := pg_catalog.clock_timestamp();
    elsif not new.resolved then
        new.resolved_at := null;
    else
        new.resolved_at := old.resolved_at;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__error_rules() is
'Trigger of toolsdb.error_logs (_200_error_rules): project from the run or task; resolved_at kept '
'by the database; recovery_attempts never decreases (23514 recovery_attempts_only_grow).';

create or replace trigger _200_error_rules
before insert or update on toolsdb.error_logs
for each row
execute function toolsdb_private.tg__error_rules();

select toolsdb.audit_table('toolsdb.error_logs');

select toolsdb.isolate_rows('toolsdb.error_logs', 'project_id');

create or replace function toolsdb.error_record(
    error_type text,
    error_message text,
    task_id uuid default null,
    execution_id uuid default null,
    context jsonb default '{}',
    error_stack text default null
)
returns uuid
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.error_logs (error_type, error_message, task_id, execution_id, context, error_stack)
    values ($1, $2, $3, $4, coalesce($5, '{}'), $6)
    returning error_id;
$function$;

comment on function toolsdb.error_record(text, text, uuid, uuid, jsonb, text) is
'Logs an error, e.g. select toolsdb.error_record(''network'', ''GitHub API timed out'', '
'execution_id => ''<run>''); returns its error_id. The project comes from the run or task.';

create or replace function toolsdb.error_record_recovery(
    error_id uuid, succeeded boolean, details jsonb default '{}'
)
returns toolsdb.error_logs
language plpgsql
volatile
set search_path = ''
as $function$
declare
    recorded toolsdb.error_logs;
begin
    if succeeded is null then
        raise exception 'succeeded must be true or false' using errcode = 'invalid_parameter_value';
    end if;
    update toolsdb.error_logs as e
    set
        recovery_attempts = e.recovery_attempts + 1,
        resolved = e.resolved or succeeded,
        context = e.context || pg_catalog.jsonb_build_object(
            'last_recovery', pg_catalog.jsonb_build_object(
                'succeeded', succeeded, 'details', coalesce(details, '{}'), 'at', pg_catalog.clock_timestamp()
            )
        )
    where e.error_id = error_record_recovery.error_id
    returning e.* into recorded;
    if not found then
        raise exception 'error % not found', error_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return recorded;
end;
$function$;

comment on function toolsdb.error_record_recovery(uuid, boolean, jsonb) is
'Counts a recovery attempt on an error and keeps its outcome in context.last_recovery; a '
'successful attempt resolves the error (resolved_at set by the database).';

-- ---- from schema/35_evidence.sql ----

create table if not exists toolsdb.evidence (
    evidence_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    task_id uuid,
    source_type text not null,
    title text not null,
    content jsonb not null default '{}',
    source_url text,
    credibility_score numeric(3, 2) not null default 0.5,
    is_verified boolean not null default false,
    verified_by_user_id uuid,
    verified_at timestamptz,
    related_evidence uuid[] not null default '{}',
    contradicting_evidence uuid[] not null default '{}',
    tags text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint evidence_pkey primary key (evidence_id),
    constraint evidence_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint evidence_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint evidence_verified_by_user_id_fkey foreign key (verified_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint source_type_is_valid check (
        source_type in (
            'code_analysis', 'test_result', 'ai_output', 'human_review', 'documentation', 'log',
            'external', 'other'
        )
    ),
    constraint title_length_is_valid check (char_length(title) between 1 and 500),
    constraint content_is_object check (jsonb_typeof(content) = 'object'),
    constraint source_url_is_valid check (source_url ~ '^https?://\S+$' and char_length(source_url) <= 2048),
    constraint credibility_score_is_valid check (credibility_score between 0 and 1),
    constraint verified_at_matches_is_verified check (is_verified = (verified_at is not null)),
    constraint related_evidence_is_valid check (
        cardinality(related_evidence) <= 100 and array_position(related_evidence, null) is null
        and not evidence_id = any(related_evidence)
    ),
    constraint contradicting_evidence_is_valid check (
        cardinality(contradicting_evidence) <= 100 and array_position(contradicting_evidence, null) is null
        and not evidence_id = any(contradicting_evidence)
    ),
    constraint tags_are_valid check (
        cardinality(tags) <= 50 and array_position(tags, null) is null and array_position(tags, '') is null
    )
);

create index if not exists evidence_project_id_idx on toolsdb.evidence (project_id, created_at);

create index if not exists evidence_task_id_idx on toolsdb.evidence (task_id);

create index if not exists evidence_verified_by_user_id_idx on toolsdb.evidence (verified_by_user_id);

create index if not exists evidence_source_type_idx on toolsdb.evidence (source_type);

create index if not exists evidence_credibility_score_idx on toolsdb.evidence (credibility_score);

create index if not exists evidence_tags_idx on toolsdb.evidence using gin (tags);

comment on table toolsdb.evidence is
'Evidence registry (002): what decisions rest on (code analysis, test results, AI output, human '
'review, ...), with a credibility score from 0 to 1, verification, and links to evidence it '
'supports or contradicts. Agent runs point to it (agent_executions.evidence_id).';
comment on column toolsdb.evidence.evidence_id is 'Primary key: a random UUID.';
comment on column toolsdb.evidence.project_id is 'The project it belongs to.';
comment on column toolsdb.evidence.task_id is 'The task it is about, if any.';
comment on column toolsdb.evidence.source_type is
'code_analysis, test_result, ai_output, human_review, documentation, log, external or other.';
comment on column toolsdb.evidence.title is 'What it shows, 1-500 characters.';
comment on column toolsdb.evidence.content is 'The evidence itself or its summary (JSON object).';
comment on column toolsdb.evidence.source_url is 'Where it comes from (http or https URL), if anywhere.';
comment on column toolsdb.evidence.credibility_score is 'How reliable it is, from 0.00 to 1.00 (default 0.5).';
comment on column toolsdb.evidence.is_verified is 'True once someone attested it (verified_at is set with it).';
comment on column toolsdb.evidence.verified_by_user_id is 'Who verified it, if anyone.';
comment on column toolsdb.evidence.verified_at is 'When it was verified; set by the database.';
comment on column toolsdb.evidence.related_evidence is 'Evidence it supports or builds on (ids, never itself).';
comment on column toolsdb.evidence.contradicting_evidence is 'Evidence it contradicts (ids, never itself).';
comment on column toolsdb.evidence.tags is 'Free tags, GIN-indexed (tags @> array[...]).';
comment on column toolsdb.evidence.created_at is 'When it was recorded; set by trigger _100_timestamps.';
comment on column toolsdb.evidence.updated_at is 'When it last changed; set by trigger _100_timestamps.';

create or replace trigger _100_timestamps
before insert or update on toolsdb.evidence
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__evidence_verified_at()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.is_verified and (tg_op = 'INSERT' or not old.is_verified) then
        new.verified_at := pg_catalog.clock_timestamp();
    elsif not new.is_verified then
        new.verified_at := null;
    else
        new.verified_at := old.verified_at;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__evidence_verified_at() is
'Trigger of toolsdb.evidence (_200_verified_at): verified_at is set when is_verified becomes true '
'and cleared when it becomes false; clients cannot forge it.';

create or replace trigger _200_verified_at
before insert or update on toolsdb.evidence
for each row
execute function toolsdb_private.tg__evidence_verified_at();

select toolsdb.audit_table('toolsdb.evidence');

select toolsdb.isolate_rows('toolsdb.evidence', 'project_id');

-- An agent run's supporting evidence (the column exists since 0004).
do $evidence$
begin
    if not exists (
        select from pg_catalog.pg_constraint
        where conname = 'agent_executions_evidence_id_fkey' and conrelid = 'toolsdb.agent_executions'::regclass
    ) then
        alter table toolsdb.agent_executions
        add constraint agent_executions_evidence_id_fkey foreign key (evidence_id)
        references toolsdb.evidence (evidence_id) on delete set null;
    end if;
end
$evidence$;

create index if not exists agent_executions_evidence_id_idx on toolsdb.agent_executions (evidence_id);

-- ---- from schema/36_task_discussion.sql ----

create table if not exists toolsdb.task_comments (
    comment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    author_user_id uuid,
    author_agent_id uuid,
    body text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_comments_pkey primary key (comment_id),
    constraint task_comments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_comments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_comments_author_user_id_fkey foreign key (author_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_comments_author_agent_id_fkey foreign key (author_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint body_length_is_valid check (char_length(body) between 1 and 100000),
    constraint one_author_at_most check (num_nonnulls(author_user_id, author_agent_id) <= 1)
);

create index if not exists task_comments_task_id_idx on toolsdb.task_comments (task_id, created_at);

create index if not exists task_comments_project_id_idx on toolsdb.task_comments (project_id);

create index if not exists task_comments_author_user_id_idx on toolsdb.task_comments (author_user_id);

create index if not exists task_comments_author_agent_id_idx on toolsdb.task_comments (author_agent_id);

comment on table toolsdb.task_comments is
'Comments on a task (002), written by a user or an agent (at most one of the two; none once the '
'author is deleted).';
comment on column toolsdb.task_comments.comment_id is 'Primary key: a random UUID.';
comment on column toolsdb.task_comments.task_id is 'The task; comments go with it.';
comment on column toolsdb.task_comments.project_id is 'The task''s project, filled in by the database.';
comment on column toolsdb.task_comments.author_user_id is 'The user who wrote it, if a user did.';
comment on column toolsdb.task_comments.author_agent_id is 'The agent that wrote it, if an agent did.';
comment on column toolsdb.task_comments.body is 'The comment (Markdown), 1-100,000 characters.';
comment on column toolsdb.task_comments.created_at is 'When it was written; set by trigger _100_timestamps.';
comment on column toolsdb.task_comments.updated_at is 'When it was last edited; set by trigger _100_timestamps.';

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

create table if not exists toolsdb.task_attachments (
    attachment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    file_name text not null,
    content_type text not null default 'application/octet-stream',
    size_bytes bigint not null,
    storage_url text not null,
    checksum_sha256 text,
    uploaded_by_user_id uuid,
    uploaded_by_agent_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_attachments_pkey primary key (attachment_id),
    constraint task_attachments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_attachments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_attachments_uploaded_by_user_id_fkey foreign key (uploaded_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_attachments_uploaded_by_agent_id_fkey foreign key (uploaded_by_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint file_name_is_valid check (char_length(file_name) between 1 and 255 and file_name !~ '[/\\]'),
    constraint content_type_is_valid check (
        content_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$' and char_length(content_type) <= 255
    ),
    constraint size_bytes_is_valid check (size_bytes >= 0),
    constraint storage_url_is_valid check (
        storage_url ~ '^(https?|s3|gs|file)://\S+$' and char_length(storage_url) <= 2048
    ),
    constraint checksum_sha256_is_valid check (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    constraint one_uploader_at_most check (num_nonnulls(uploaded_by_user_id, uploaded_by_agent_id) <= 1)
);

create index if not exists task_attachments_task_id_idx on toolsdb.task_attachments (task_id);

create index if not exists task_attachments_project_id_idx on toolsdb.task_attachments (project_id);

create index if not exists task_attachments_uploaded_by_user_id_idx on toolsdb.task_attachments (uploaded_by_user_id);

create index if not exists task_attachments_uploaded_by_agent_id_idx
on toolsdb.task_attachments (uploaded_by_agent_id);

comment on table toolsdb.task_attachments is
'Files attached to a task (002): stored elsewhere (storage_url), described here with size, type and '
'checksum.';
comment on column toolsdb.task_attachments.attachment_id is 'Primary key: a random UUID.';
comment on column toolsdb.task_attachments.task_id is 'The task; attachments go with it.';
comment on column toolsdb.task_attachments.project_id is 'The task''s project, filled in by the database.';
comment on column toolsdb.task_attachments.file_name is 'File name without a path, 1-255 characters.';
comment on column toolsdb.task_attachments.content_type is 'MIME type, e.g. image/png.';
comment on column toolsdb.task_attachments.size_bytes is 'Size in bytes.';
comment on column toolsdb.task_attachments.storage_url is 'Where the file is: an http(s), s3, gs or file URL.';
comment on column toolsdb.task_attachments.checksum_sha256 is 'SHA-256 of the content, lowercase hex, if known.';
comment on column toolsdb.task_attachments.uploaded_by_user_id is 'The user who attached it, if a user did.';
comment on column toolsdb.task_attachments.uploaded_by_agent_id is 'The agent that attached it, if an agent did.';
comment on column toolsdb.task_attachments.created_at is 'When it was attached; set by trigger _100_timestamps.';
comment on column toolsdb.task_attachments.updated_at is 'When it last changed; set by trigger _100_timestamps.';

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

-- ---- from schema/37_activity_feed.sql ----

create table if not exists toolsdb.activity_feed (
    activity_id bigint generated always as identity,
    project_id uuid not null,
    task_id uuid,
    user_id uuid,
    agent_id uuid,
    activity_type text not null,
    summary text not null,
    metadata jsonb not null default '{}',
    is_public boolean not null default true,
    created_at timestamptz not null default now(),
    constraint activity_feed_pkey primary key (activity_id),
    constraint activity_feed_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint activity_feed_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint activity_feed_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint activity_feed_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint activity_type_is_valid check (
        activity_type ~ '^[a-z][a-z0-9_.]*$' and char_length(activity_type) <= 100
    ),
    constraint summary_length_is_valid check (char_length(summary) between 1 and 2000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists activity_feed_project_id_idx on toolsdb.activity_feed (project_id, created_at desc);

create index if not exists activity_feed_task_id_idx on toolsdb.activity_feed (task_id, created_at desc);

create index if not exists activity_feed_user_id_idx on toolsdb.activity_feed (user_id);

create index if not exists activity_feed_agent_id_idx on toolsdb.activity_feed (agent_id);

create index if not exists activity_feed_created_at_idx on toolsdb.activity_feed using brin (created_at);

comment on table toolsdb.activity_feed is
'What happened in a project, newest first, for people to read (002''s activity feed): task '
'created, pull request opened, run failed, ... Append-only and high-volume: not audited, never '
'updated.';
comment on column toolsdb.activity_feed.activity_id is 'Increasing id.';
comment on column toolsdb.activity_feed.project_id is 'The project it happened in.';
comment on column toolsdb.activity_feed.task_id is 'The task concerned, if any.';
comment on column toolsdb.activity_feed.user_id is 'The user who acted, if a user did.';
comment on column toolsdb.activity_feed.agent_id is 'The agent that acted, if an agent did.';
comment on column toolsdb.activity_feed.activity_type is
'What kind of thing happened, dotted snake_case (task.created).';
comment on column toolsdb.activity_feed.summary is 'One line for people, 1-2000 characters.';
comment on column toolsdb.activity_feed.metadata is 'Details (JSON object).';
comment on column toolsdb.activity_feed.is_public is 'False for entries only project members should see.';
comment on column toolsdb.activity_feed.created_at is 'When it happened.';

create or replace trigger _010_append_only
before update on toolsdb.activity_feed
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.activity_feed', 'entries are never rewritten; they leave only with their project or task'
);

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.activity_feed', 'high-volume, append-only feed for people; its rows are the record')
on conflict (table_name) do nothing;

select toolsdb.isolate_rows('toolsdb.activity_feed', 'project_id');

create or replace function toolsdb.activity_record(
    project_id uuid,
    activity_type text,
    summary text,
    task_id uuid default null,
    metadata jsonb default '{}',
    is_public boolean default true
)
returns bigint
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.activity_feed (project_id, task_id, user_id, agent_id, activity_type, summary, metadata, is_public)
    values ($1, $4, toolsdb.current_user_id(), toolsdb.current_agent_id(), $2, $3, coalesce($5, '{}'), $6)
    returning activity_id;
$function$;

comment on function toolsdb.activity_record(uuid, text, text, uuid, jsonb, boolean) is
'Adds an entry to a project''s activity feed; the acting user and agent come from the settings '
'toolsdb.user_id and toolsdb.agent_id. Returns its activity_id.';
