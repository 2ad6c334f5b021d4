-- repeatable/36_error_logs.sql
-- Tier 30: errors met while working (error_logs), with their
-- recovery attempts. Functions: toolsdb.error_record(),
-- toolsdb.error_record_recovery(). Audited; row-level security per project.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/36_error_logs.sql.

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
    -- Read before the update: Citus refuses a volatile function in it (docs/citus.md).
    attempted_at constant timestamptz := pg_catalog.clock_timestamp();
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
                'succeeded', succeeded, 'details', coalesce(details, '{}'), 'at', attempted_at
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
