-- schema/33_pr_validations.sql
-- Tier 30: validations of a task's pull request (seed 004's pr_validations):
-- per-check results recorded as checks report, then settled to passed or
-- failed. Functions: toolsdb.validation_record_check(),
-- toolsdb.validation_settle(), toolsdb.validation_cancel(). Audited; row-level
-- security per project.
-- Needs: schema/30_tasks.sql, schema/32_agent_executions.sql.

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
