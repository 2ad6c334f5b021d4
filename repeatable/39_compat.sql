-- repeatable/39_compat.sql
-- Tier 30: what lets the statements of the designs toolsdb merges run as
-- written, without a second vocabulary stored (docs/names.md maps every
-- name). Defines the mapping functions toolsdb.task_status_of(),
-- toolsdb.execution_status_of() and toolsdb.agent_type_of(), the trigger
-- _010_vocabulary that applies them on input to toolsdb.tasks,
-- toolsdb.agent_executions and toolsdb.agents (before the CHECKs and the
-- rules triggers see the row), and the default project: a task inserted
-- without project_id goes to the transaction's project (toolsdb.project_id),
-- else to the project inbox (toolsdb.default_project_id(), created on first
-- use), so INSERT INTO tasks (title) VALUES ($1) works.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/20_users.sql,
-- schema/21_projects.sql, schema/22_agents.sql, schema/30_tasks.sql and
-- schema/33_agent_executions.sql.

create or replace function toolsdb.task_status_of(status text)
returns text
language sql
immutable
parallel safe
set search_path = ''
return case status when 'pending' then 'open' else status end;

comment on function toolsdb.task_status_of(text) is
'A task status of any design in toolsdb''s vocabulary: pending (CI/CD task trackers) is open; '
'every other status is returned as given (toolsdb.tasks refuses unknown ones). Query with it: '
'where status = toolsdb.task_status_of(''pending'').';

create or replace function toolsdb.execution_status_of(status text)
returns text
language sql
immutable
parallel safe
set search_path = ''
return case status when 'completed' then 'success' when 'failed' then 'failure' else status end;

comment on function toolsdb.execution_status_of(text) is
'An execution status of any design in toolsdb''s vocabulary: completed (CI/CD task trackers) is '
'success, failed is failure; every other status is returned as given.';

create or replace function toolsdb.agent_type_of(agent_type text)
returns text
language sql
immutable
parallel safe
set search_path = ''
return case
    when agent_type ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)+$' then pg_catalog.replace(agent_type, '-', '_')
    else agent_type
end;

comment on function toolsdb.agent_type_of(text) is
'An agent type in toolsdb''s vocabulary (snake_case): the hyphenated types of CI/CD task trackers '
'(claude-code, webhook-handler, validation-engine) become claude_code, webhook_handler, '
'validation_engine; anything else is returned as given (agents.agent_type_is_valid judges it).';

create or replace function toolsdb_private.tg__vocabulary()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- Each table's rows hold toolsdb's one vocabulary; the designs' names are
    -- mapped here, before the CHECKs and the rules triggers (_200_*) see them.
    -- The table is the trigger's argument: on Citus a shard's name carries its id.
    if tg_argv[0] = 'tasks' then
        new.status := toolsdb.task_status_of(new.status);
    elsif tg_argv[0] = 'agent_executions' then
        new.status := toolsdb.execution_status_of(new.status);
        new.agent_type := toolsdb.agent_type_of(new.agent_type);
    elsif tg_argv[0] = 'agents' then
        new.agent_type := toolsdb.agent_type_of(new.agent_type);
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__vocabulary() is
'Trigger (_010_vocabulary, BEFORE INSERT OR UPDATE) of tasks, agent_executions and agents, whose '
'name is its argument: maps '
'the statuses and agent types of the designs toolsdb merges to its own (task_status_of, '
'execution_status_of, agent_type_of), so one vocabulary is stored (docs/names.md).';

create or replace trigger _010_vocabulary
before insert or update on toolsdb.tasks
for each row
execute function toolsdb_private.tg__vocabulary('tasks');

comment on trigger _010_vocabulary on toolsdb.tasks is
'Maps task statuses of other designs (pending) to toolsdb''s (toolsdb.task_status_of).';

create or replace trigger _010_vocabulary
before insert or update on toolsdb.agent_executions
for each row
execute function toolsdb_private.tg__vocabulary('agent_executions');

comment on trigger _010_vocabulary on toolsdb.agent_executions is
'Maps execution statuses (completed, failed) and hyphenated agent types to toolsdb''s.';

create or replace trigger _010_vocabulary
before insert or update on toolsdb.agents
for each row
execute function toolsdb_private.tg__vocabulary('agents');

comment on trigger _010_vocabulary on toolsdb.agents is
'Maps hyphenated agent types (claude-code) to snake_case (toolsdb.agent_type_of).';

create or replace function toolsdb.default_project_id()
returns uuid
language plpgsql
volatile
set search_path = ''
as $function$
declare
    found uuid;
    owner uuid;
begin
    select p.project_id into found from toolsdb.projects as p where p.slug = 'inbox';
    if found is not null then
        return found;
    end if;
    owner := toolsdb.current_user_id();
    if owner is null then
        insert into toolsdb.users (username, email, display_name, role)
        values ('toolsdb', 'toolsdb@localhost.invalid', 'toolsdb (owner of the inbox project)', 'service')
        on conflict (lower(username)) do nothing;
        select u.user_id into owner from toolsdb.users as u where pg_catalog.lower(u.username) = 'toolsdb';
    end if;
    insert into toolsdb.projects (slug, name, description, owner_id)
    values (
        'inbox', 'Inbox',
        'Tasks created without a project (INSERT INTO tasks (title) ...); move them with update tasks set project_id.',
        owner
    )
    on conflict on constraint projects_slug_key do nothing;
    select p.project_id into found from toolsdb.projects as p where p.slug = 'inbox';
    return found;
exception
    when insufficient_privilege then
        raise exception 'a task needs a project: give project_id, or set toolsdb.project_id for the transaction'
            using errcode = 'not_null_violation', constraint = 'tasks_project_id_not_null',
            hint = 'the default project inbox is for roles outside row-level security';
end;
$function$;

comment on function toolsdb.default_project_id() is
'The project inbox, where tasks inserted without project_id (and without the setting '
'toolsdb.project_id) go; created on first use, owned by the transaction''s user (toolsdb.user_id) '
'or the service user toolsdb. The application (row-level security) names its project instead.';

create or replace function toolsdb_private.tg__task_default_project()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.project_id is null then
        new.project_id := coalesce(toolsdb.current_project_id(), toolsdb.default_project_id());
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__task_default_project() is
'Trigger (_020_default_project, BEFORE INSERT) of toolsdb.tasks: a task without project_id goes to '
'the transaction''s project (toolsdb.project_id), else to toolsdb.default_project_id() (inbox).';

create or replace trigger _020_default_project
before insert on toolsdb.tasks
for each row
execute function toolsdb_private.tg__task_default_project();

comment on trigger _020_default_project on toolsdb.tasks is
'Fills project_id when it is not given: the transaction''s project, else inbox.';
