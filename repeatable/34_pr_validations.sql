-- repeatable/34_pr_validations.sql
-- Tier 30: validations of a task's pull request (pr_validations):
-- per-check results recorded as checks report, then settled to passed or
-- failed. Functions: toolsdb.validation_record_check(),
-- toolsdb.validation_settle(), toolsdb.validation_cancel(). Audited; row-level
-- security per project.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/34_pr_validations.sql.

create or replace trigger _050_project_from_task
before insert or update on toolsdb.pr_validations
for each row
execute function toolsdb_private.tg__project_from_task('pr_validations');

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
    elsif old.status in ('passed', 'failed', 'cancelled') and not (
        -- but for the reference to its run going when the run is deleted (on delete set null)
        old.execution_id is not null and new.execution_id is null
        and pg_catalog.to_jsonb(new) - 'execution_id' - 'updated_at' = pg_catalog.to_jsonb(old) - 'execution_id' - 'updated_at'
    ) then
        raise exception 'validation % is % and can no longer change', old.validation_id, old.status
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__validation_rules() is
'Trigger of toolsdb.pr_validations (_200_validation_rules): a new validation is pending (its '
'project comes from _050_project_from_task), status moves only forward (else 55000 naming both '
'states), a settled one is frozen (but for execution_id cleared when its run is deleted), started_at '
'and completed_at are the database''s.';

create or replace trigger _200_validation_rules
before insert or update on toolsdb.pr_validations
for each row
execute function toolsdb_private.tg__validation_rules();

select toolsdb.audit_table('toolsdb.pr_validations');

select toolsdb.isolate_rows('toolsdb.pr_validations', 'project_id');

create or replace function toolsdb.project_of_validation(validation_id uuid)
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
        select v.project_id into project from toolsdb.pr_validations as v
        where v.project_id = acting and v.validation_id = project_of_validation.validation_id;
        if project is not null then
            return project;
        end if;
    end if;
    select v.project_id into project from toolsdb.pr_validations as v
    where v.validation_id = project_of_validation.validation_id;
    return project;
end;
$function$;

comment on function toolsdb.project_of_validation(uuid) is
'The project of a validation the caller sees, or null. The functions given a validation look its '
'project up first: on Citus it names the validation''s shard. The project the transaction acts for '
'(toolsdb.project_id) is tried first: on Citus one shard read, where the id alone reads all '
'(docs/citus.md).';

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
    -- Read before the update: Citus refuses a volatile function in it (docs/citus.md).
    recorded_at constant timestamptz := pg_catalog.clock_timestamp();
    -- On Citus the project names the validation's shard.
    project constant uuid := toolsdb.project_of_validation(validation_record_check.validation_id);
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
                'passed', passed, 'details', coalesce(details, '{}'), 'recorded_at', recorded_at
            )
        )
    where v.project_id = project and v.validation_id = validation_record_check.validation_id
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
    project constant uuid := toolsdb.project_of_validation(validation_settle.validation_id);
begin
    update toolsdb.pr_validations as v
    set status = case
        when v.validation_results <> '{}'
            and not pg_catalog.jsonb_path_exists(v.validation_results, '$.* ? (@.passed != true)')
            then 'passed'
        else 'failed'
    end
    where v.project_id = project and v.validation_id = validation_settle.validation_id
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
    project constant uuid := toolsdb.project_of_validation(validation_cancel.validation_id);
begin
    update toolsdb.pr_validations as v set status = 'cancelled'
    where v.project_id = project and v.validation_id = validation_cancel.validation_id
    returning v.* into cancelled;
    if not found then
        raise exception 'validation % not found', validation_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return cancelled;
end;
$function$;

comment on function toolsdb.validation_cancel(uuid) is 'pending or running -> cancelled.';
