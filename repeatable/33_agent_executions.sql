-- repeatable/33_agent_executions.sql
-- Tier 30: an agent working on a task (the agent_executions of engineering
-- platforms and the task_executions of CI/CD task trackers, one table).
-- Defines toolsdb.agent_executions, its append-only log
-- toolsdb.agent_execution_logs, the rules trigger (status moves, timestamps and
-- cost set by the database) and the functions that drive a run:
-- execution_create, execution_start, execution_log, execution_complete,
-- execution_fail, execution_time_out, execution_cancel. Audited (the log is
-- exempt: high-volume, append-only); row-level security per project on both
-- tables.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/33_agent_executions.sql.

create or replace trigger _050_project_from_task
before insert or update on toolsdb.agent_executions
for each row
execute function toolsdb_private.tg__project_from_task('agent_executions');

create or replace trigger _100_timestamps
before insert or update on toolsdb.agent_executions
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__execution_rules()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
declare
    agent toolsdb.agents;
begin
    if tg_op = 'INSERT' then
        -- The run remembers its agent's kind and model (its project comes
        -- from _050_project_from_task).
        select * into agent from toolsdb.agents as a where a.agent_id = new.agent_id;
        if agent.agent_id is null then
            raise exception 'agent % not found', new.agent_id
                using errcode = 'foreign_key_violation', constraint = 'agent_executions_agent_id_fkey';
        end if;
        new.agent_type := coalesce(new.agent_type, agent.agent_type);
        new.model_provider := coalesce(new.model_provider, agent.model_provider);
        new.model_name := coalesce(new.model_name, agent.model_name);
        new.status := 'pending';
        new.started_at := null;
        new.completed_at := null;
        new.cost_usd := null;
        new.cost_is_given := false;
        return new;
    end if;
    new.started_at := old.started_at;
    new.completed_at := old.completed_at;
    if new.status is distinct from old.status then
        if not (
            (old.status = 'pending' and new.status in ('running', 'cancelled'))
            or (old.status = 'running' and new.status in ('success', 'failure', 'timeout', 'cancelled'))
        ) then
            raise exception 'execution % cannot move from % to %', old.execution_id, old.status, new.status
                using errcode = 'object_not_in_prerequisite_state',
                hint = 'pending -> running -> success, failure or timeout; pending or running -> cancelled';
        end if;
        if new.status = 'running' then
            new.started_at := pg_catalog.clock_timestamp();
        else
            new.completed_at := pg_catalog.clock_timestamp();
        end if;
    elsif old.status in ('success', 'failure', 'timeout', 'cancelled')
        and pg_catalog.to_jsonb(new) - 'evidence_id' - 'updated_at' - 'created_at'
        <> pg_catalog.to_jsonb(old) - 'evidence_id' - 'updated_at' - 'created_at' then
        raise exception 'execution % is % and can no longer change (but for its evidence_id)',
            old.execution_id, old.status
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    -- Cost: the caller's, else tokens at the price in force when the run started.
    if new.status is distinct from old.status and new.completed_at is not null and new.cost_usd is null then
        new.cost_is_given := false;
        new.cost_usd := toolsdb.token_cost(
            new.model_provider, new.model_name, coalesce(new.started_at, new.completed_at),
            new.input_tokens, new.output_tokens, new.cached_tokens
        );
    elsif new.cost_usd is distinct from old.cost_usd then
        new.cost_is_given := true;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__execution_rules() is
'Trigger of toolsdb.agent_executions (_200_execution_rules, BEFORE INSERT OR UPDATE): fills '
'agent type and model from the agent (the project comes from _050_project_from_task); a new run '
'is pending; status moves only forward (else 55000 naming both states) and a finished run is '
'frozen but for evidence_id; started_at and completed_at are the database''s; cost_usd is the '
'caller''s or computed at the end.';

create or replace trigger _200_execution_rules
before insert or update on toolsdb.agent_executions
for each row
execute function toolsdb_private.tg__execution_rules();

select toolsdb.audit_table('toolsdb.agent_executions');

select toolsdb.isolate_rows('toolsdb.agent_executions', 'project_id');

create or replace trigger _010_append_only
before update on toolsdb.agent_execution_logs
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.agent_execution_logs', 'entries are appended, never rewritten; they go with their run'
);

select toolsdb.isolate_rows('toolsdb.agent_execution_logs', 'project_id');

-- ---------------------------------------------------------------------------
-- Driving a run
-- ---------------------------------------------------------------------------

create or replace function toolsdb.execution_create(agent_id uuid, task_id uuid, agent_config jsonb default '{}')
returns uuid
language plpgsql
volatile
set search_path = ''
as $function$
declare
    -- The task's project: on Citus the row goes to its shard by it (docs/citus.md).
    project constant uuid := toolsdb.project_of_task(execution_create.task_id);
    created uuid;
begin
    if project is null then
        raise exception 'task % not found', execution_create.task_id
            using errcode = 'foreign_key_violation', constraint = 'agent_executions_task_id_fkey',
            hint = 'is toolsdb.project_id set to its project?';
    end if;
    insert into toolsdb.agent_executions (agent_id, task_id, project_id, agent_config)
    values (execution_create.agent_id, execution_create.task_id, project, coalesce(execution_create.agent_config, '{}'))
    returning execution_id into created;
    return created;
end;
$function$;

comment on function toolsdb.execution_create(uuid, uuid, jsonb) is
'Creates a pending run of an agent on a task; returns its execution_id.';

create or replace function toolsdb.project_of_execution(execution_id uuid)
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
        select e.project_id into project from toolsdb.agent_executions as e
        where e.project_id = acting and e.execution_id = project_of_execution.execution_id;
        if project is not null then
            return project;
        end if;
    end if;
    select e.project_id into project from toolsdb.agent_executions as e
    where e.execution_id = project_of_execution.execution_id;
    return project;
end;
$function$;

comment on function toolsdb.project_of_execution(uuid) is
'The project of a run the caller sees, or null, e.g. select toolsdb.project_of_execution(''<run>''). '
'The functions given a run look its project up first: on Citus it names the run''s shard. The project '
'the transaction acts for (toolsdb.project_id) is tried first: on Citus one shard read, where the id '
'alone reads all (docs/citus.md).';

create or replace function toolsdb.execution_move(
    p_execution_id uuid,
    p_status text,
    p_result jsonb default null,
    p_error_details jsonb default null,
    p_input_tokens bigint default null,
    p_output_tokens bigint default null,
    p_cached_tokens bigint default null,
    p_cost_usd numeric default null
)
returns toolsdb.agent_executions
language plpgsql
volatile
set search_path = ''
as $function$
declare
    moved toolsdb.agent_executions;
    -- On Citus the project names the run's shard, so the update touches that one only.
    project constant uuid := toolsdb.project_of_execution(p_execution_id);
begin
    update toolsdb.agent_executions as e
    set
        status = p_status,
        result = coalesce(p_result, e.result),
        error_details = coalesce(p_error_details, e.error_details),
        input_tokens = coalesce(p_input_tokens, e.input_tokens),
        output_tokens = coalesce(p_output_tokens, e.output_tokens),
        cached_tokens = coalesce(p_cached_tokens, e.cached_tokens),
        cost_usd = coalesce(p_cost_usd, e.cost_usd)
    where e.project_id = project and e.execution_id = p_execution_id
    returning e.* into moved;
    if not found then
        raise exception 'execution % not found', p_execution_id
            using errcode = 'no_data_found', hint = 'is toolsdb.project_id set to its project?';
    end if;
    return moved;
end;
$function$;

comment on function toolsdb.execution_move(uuid, text, jsonb, jsonb, bigint, bigint, bigint, numeric) is
'Moves a run to a status with what it reports (null keeps a value); the rules are the '
'trigger''s. The execution_start/complete/fail/time_out/cancel functions call it.';

create or replace function toolsdb.execution_start(execution_id uuid)
returns toolsdb.agent_executions
language sql
volatile
set search_path = ''
return toolsdb.execution_move(execution_id, 'running');

comment on function toolsdb.execution_start(uuid) is 'pending -> running; sets started_at.';

create or replace function toolsdb.execution_log(
    execution_id uuid, message text, level text default 'info', data jsonb default '{}'
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    -- The run's project (its shard on Citus); null when the run is not visible.
    project constant uuid := toolsdb.project_of_execution(execution_log.execution_id);
    logged bigint;
begin
    if project is null then
        return null;
    end if;
    insert into toolsdb.agent_execution_logs (execution_id, project_id, level, message, data)
    values (execution_log.execution_id, project, execution_log.level, execution_log.message, coalesce(execution_log.data, '{}'))
    returning log_id into logged;
    return logged;
end;
$function$;

comment on function toolsdb.execution_log(uuid, text, text, jsonb) is
'Appends a log entry to a run; returns its log_id (null when the run is not visible).';

create or replace function toolsdb.execution_complete(
    execution_id uuid,
    result jsonb default null,
    input_tokens bigint default null,
    output_tokens bigint default null,
    cached_tokens bigint default null,
    cost_usd numeric default null
)
returns toolsdb.agent_executions
language sql
volatile
set search_path = ''
return toolsdb.execution_move(
    execution_id, 'success', result, null, input_tokens, output_tokens, cached_tokens, cost_usd
);

comment on function toolsdb.execution_complete(uuid, jsonb, bigint, bigint, bigint, numeric) is
'running -> success with its result and tokens; cost_usd computed from the tokens unless given.';

create or replace function toolsdb.execution_fail(
    execution_id uuid,
    error_details jsonb,
    input_tokens bigint default null,
    output_tokens bigint default null,
    cached_tokens bigint default null,
    cost_usd numeric default null
)
returns toolsdb.agent_executions
language sql
volatile
set search_path = ''
return toolsdb.execution_move(
    execution_id, 'failure', null, error_details, input_tokens, output_tokens, cached_tokens, cost_usd
);

comment on function toolsdb.execution_fail(uuid, jsonb, bigint, bigint, bigint, numeric) is
'running -> failure with its error details (a JSON object) and tokens.';

create or replace function toolsdb.execution_time_out(
    execution_id uuid,
    input_tokens bigint default null,
    output_tokens bigint default null,
    cached_tokens bigint default null
)
returns toolsdb.agent_executions
language sql
volatile
set search_path = ''
return toolsdb.execution_move(
    execution_id, 'timeout', null, null, input_tokens, output_tokens, cached_tokens, null
);

comment on function toolsdb.execution_time_out(uuid, bigint, bigint, bigint) is
'running -> timeout with the tokens used so far.';

create or replace function toolsdb.execution_cancel(execution_id uuid)
returns toolsdb.agent_executions
language sql
volatile
set search_path = ''
return toolsdb.execution_move(execution_id, 'cancelled');

comment on function toolsdb.execution_cancel(uuid) is 'pending or running -> cancelled.';
