-- repeatable/86_cicd_views.sql
-- Views: the tables of CI/CD task trackers that toolsdb keeps under other
-- names, as updatable views over toolsdb's tables, so their statements run
-- as written: toolsdb.task_executions over toolsdb.agent_executions (its
-- logs array over toolsdb.agent_execution_logs) and toolsdb.system_config
-- over toolsdb.config (plain values). Writes go through INSTEAD OF triggers
-- into the tables, whose rules, row-level security and audit apply.
-- Names: docs/names.md. security_invoker, like every view.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); needs repeatable/33_agent_executions.sql,
-- repeatable/14_config.sql and repeatable/39_compat.sql.

create or replace view toolsdb.task_executions
with (security_invoker = true) as
select
    e.execution_id as id,
    e.task_id,
    e.agent_type,
    e.agent_config,
    e.status,
    coalesce((
        select
            pg_catalog.jsonb_agg(
                l.data || pg_catalog.jsonb_build_object(
                    'level', l.level, 'message', l.message, 'timestamp', l.logged_at
                )
                order by l.log_id
            )
        from toolsdb.agent_execution_logs as l
        where l.project_id = e.project_id and l.execution_id = e.execution_id
    ), '[]'::jsonb) as logs,
    e.error_details,
    e.started_at,
    e.completed_at,
    e.created_at,
    e.agent_id,
    e.project_id
from toolsdb.agent_executions as e;

comment on view toolsdb.task_executions is
'The task_executions of CI/CD task trackers over toolsdb.agent_executions: insert (task_id, '
'agent_type[, agent_config]) creates a pending run of the agent named agent_type (registered on '
'first use); update status (completed and failed are success and failure) moves it; '
'logs = logs || ''[{...}]'' appends log entries. The rules of agent_executions apply.';
comment on column toolsdb.task_executions.id is 'The run (agent_executions.execution_id).';
comment on column toolsdb.task_executions.task_id is 'The task it works on.';
comment on column toolsdb.task_executions.agent_type is
'The agent type, snake_case (claude-code is stored as claude_code).';
comment on column toolsdb.task_executions.agent_config is 'Configuration of this run (JSON object).';
comment on column toolsdb.task_executions.status is
'pending, running, success, failure, timeout or cancelled (completed and failed are accepted).';
comment on column toolsdb.task_executions.logs is
'Its log entries (toolsdb.agent_execution_logs) as a JSON array of {level, message, timestamp, ...}; '
'appended to, never rewritten.';
comment on column toolsdb.task_executions.error_details is 'JSON object describing the failure, if any.';
comment on column toolsdb.task_executions.started_at is 'When it started running; set by the database.';
comment on column toolsdb.task_executions.completed_at is 'When it ended; set by the database.';
comment on column toolsdb.task_executions.created_at is 'When it was created.';
comment on column toolsdb.task_executions.agent_id is 'The agent that runs (toolsdb.agents).';
comment on column toolsdb.task_executions.project_id is 'The task''s project.';

create or replace function toolsdb_private.tg__task_executions_write()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
declare
    run_id uuid;
    run_agent uuid;
    entry jsonb;
    known integer := 0;
begin
    if tg_op = 'DELETE' then
        raise exception 'runs are not deleted: they go with their task (cancel one with update ... set status = ''cancelled'')'
            using errcode = 'feature_not_supported';
    end if;
    if new.logs is not null and pg_catalog.jsonb_typeof(new.logs) <> 'array' then
        raise exception 'task_executions.logs is a JSON array of log entries'
            using errcode = 'check_violation', constraint = 'logs_is_array';
    end if;
    if tg_op = 'INSERT' then
        -- agent_type names the agent: the one of that name, else the one
        -- named by its snake_case form, else one registered now.
        select a.agent_id into run_agent from toolsdb.agents as a
        where a.name in (new.agent_type, toolsdb.agent_type_of(new.agent_type))
        order by a.name = new.agent_type desc
        limit 1;
        if run_agent is null and new.agent_type is not null then
            insert into toolsdb.agents (name, agent_type, description)
            values (new.agent_type, new.agent_type, 'Registered on first use by toolsdb.task_executions.')
            on conflict on constraint agents_name_key do nothing;
            select a.agent_id into run_agent from toolsdb.agents as a where a.name = new.agent_type;
        end if;
        insert into toolsdb.agent_executions (agent_id, task_id, project_id, agent_type, agent_config)
        values (
            run_agent, new.task_id, toolsdb.project_of_task(new.task_id),
            coalesce(new.agent_type, 'unknown'), coalesce(new.agent_config, '{}')
        )
        returning execution_id into run_id;
    else
        run_id := old.id;
        known := pg_catalog.jsonb_array_length(old.logs);
        if new.logs is distinct from old.logs and (
            new.logs is null or pg_catalog.jsonb_array_length(new.logs) < known
            or (known > 0 and pg_catalog.jsonb_path_query_array(
                new.logs, pg_catalog.format('$[0 to %s]', known - 1)::jsonpath
            ) <> old.logs)
        ) then
            raise exception 'execution %: log entries are appended, never rewritten', old.id
                using errcode = 'object_not_in_prerequisite_state', hint = 'set logs = logs || ''[{...}]''';
        end if;
        if new.id is distinct from old.id or new.task_id is distinct from old.task_id
            or new.agent_type is distinct from old.agent_type then
            raise exception 'execution %: id, task_id and agent_type cannot change', old.id
                using errcode = 'object_not_in_prerequisite_state';
        end if;
        if new.status is distinct from old.status or new.agent_config is distinct from old.agent_config
            or new.error_details is distinct from old.error_details then
            update toolsdb.agent_executions as e
            set status = new.status, agent_config = new.agent_config, error_details = new.error_details
            where e.project_id = old.project_id and e.execution_id = old.id;
        end if;
    end if;
    -- Log entries added: appended to toolsdb.agent_execution_logs.
    for entry in select value from pg_catalog.jsonb_array_elements(coalesce(new.logs, '[]')) with ordinality
        where ordinality > known order by ordinality loop
        perform toolsdb.execution_log(
            run_id,
            coalesce(entry ->> 'message', entry #>> '{}'),
            case coalesce(entry ->> 'level', 'info') when 'warn' then 'warning' else coalesce(entry ->> 'level', 'info') end,
            case pg_catalog.jsonb_typeof(entry) when 'object' then entry - 'level' - 'message' - 'timestamp' else '{}' end
        );
    end loop;
    select * into new from toolsdb.task_executions as t where t.id = run_id;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__task_executions_write() is
'INSTEAD OF trigger of toolsdb.task_executions (_100_write): inserts create a run in '
'toolsdb.agent_executions (agent_type names the agent, registered on first use), updates move its '
'status and config, log entries added to logs are appended to toolsdb.agent_execution_logs; '
'deletes are refused (0A000).';

create or replace trigger _100_write
instead of insert or update or delete on toolsdb.task_executions
for each row
execute function toolsdb_private.tg__task_executions_write();

create or replace view toolsdb.system_config
with (security_invoker = true) as
select
    c.key,
    c.value,
    c.description,
    c.updated_at
from toolsdb.config as c
where not c.is_secret;

comment on view toolsdb.system_config is
'The system_config of CI/CD task trackers over toolsdb.config: its plain (not secret) values. '
'Insert, update and delete write through toolsdb.config_set and config_unset (an insert of an '
'existing key updates it); keys are dotted lowercase names (config.key_is_valid).';
comment on column toolsdb.system_config.key is 'Dotted lowercase name, e.g. ci.max_parallel_runs.';
comment on column toolsdb.system_config.value is 'The value as JSON.';
comment on column toolsdb.system_config.description is 'What the setting is for.';
comment on column toolsdb.system_config.updated_at is 'When it was last set.';

create or replace function toolsdb_private.tg__system_config_write()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op in ('UPDATE', 'DELETE') and (tg_op = 'DELETE' or new.key is distinct from old.key) then
        perform toolsdb.config_unset(old.key);
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    if new.value is null then
        raise exception 'system_config.value cannot be null (unset a key with delete)'
            using errcode = 'not_null_violation';
    end if;
    perform toolsdb.config_set(new.key, new.value, new.description);
    select * into new from toolsdb.system_config as s where s.key = new.key;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__system_config_write() is
'INSTEAD OF trigger of toolsdb.system_config (_100_write): writes through toolsdb.config_set and '
'toolsdb.config_unset, so the config table''s rules (key format, protected audit. keys, audit) apply.';

create or replace trigger _100_write
instead of insert or update or delete on toolsdb.system_config
for each row
execute function toolsdb_private.tg__system_config_write();
