-- repeatable/40_sessions.sql
-- Tier 40: the agent runtime (docs/runtime.md). Agent sessions as the agent
-- names them (hook sessions and agent-framework sessions in one table): where
-- the agent works, its branch and terminal, when it was last active, idle and
-- ended. Row-level security per session; not audited (toolsdb.events holds the
-- raw record of every change, see toolsdb_private.audit_exemptions). The
-- functions of the hook-notification API: create_session (creates or
-- refreshes), insert_session (that API's create_session: a duplicate is an
-- error), upsert_session, update_session_activity, set_session_idle, end_session.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/40_sessions.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.sessions
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.sessions is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

select toolsdb.isolate_rows('toolsdb.sessions', 'session_id');

create or replace function toolsdb.create_session(
    session_id text,
    cwd text default null,
    git_branch text default null,
    terminal_type text default null,
    terminal_info jsonb default '{}',
    project_id uuid default null,
    user_id uuid default null,
    agent_id uuid default null
)
returns text
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.sessions as s (
        session_id, cwd, git_branch, terminal_type, terminal_info, project_id, user_id, agent_id
    )
    values ($1, $2, $3, $4, coalesce($5, '{}'), $6, $7, $8)
    on conflict on constraint sessions_pkey do update
    set cwd = coalesce(excluded.cwd, s.cwd),
        git_branch = coalesce(excluded.git_branch, s.git_branch),
        terminal_type = coalesce(excluded.terminal_type, s.terminal_type),
        terminal_info = s.terminal_info || excluded.terminal_info,
        project_id = coalesce(excluded.project_id, s.project_id),
        user_id = coalesce(excluded.user_id, s.user_id),
        agent_id = coalesce(excluded.agent_id, s.agent_id),
        -- excluded's is its default, now(): Citus takes no function that is
        -- not immutable in DO UPDATE SET (docs/citus.md).
        last_activity_at = greatest(s.last_activity_at, excluded.last_activity_at),
        ended_at = null,
        end_reason = null
    returning s.session_id;
$function$;

comment on function toolsdb.create_session(text, text, text, text, jsonb, uuid, uuid, uuid) is
'Creates a session, or refreshes it (and reopens it if it had ended) when it exists: '
'create_session of the hook-notification API. Arguments left null keep what the session had. '
'Returns the session id.';

create or replace function toolsdb.insert_session(
    session_id text,
    cwd text default null,
    project_name text default null,
    git_branch text default null,
    terminal_type text default null,
    terminal_info jsonb default '{}'
)
returns text
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.sessions (session_id, cwd, git_branch, terminal_type, terminal_info, metadata)
    values (
        $1, $2, $4, $5, coalesce($6, '{}'),
        case when $3 is null then '{}' else pg_catalog.jsonb_build_object('project_name', $3) end
    )
    returning session_id;
$function$;

comment on function toolsdb.insert_session(text, text, text, text, text, jsonb) is
'Creates a session that must be new (create_session of the hook-notification API): a session id '
'already stored is unique_violation (23505) on sessions_pkey; upsert_session() creates or '
'refreshes instead. project_name is a free label kept in metadata ->> ''project_name'' '
'(project_id links a registered project). Returns the session id.';

create or replace function toolsdb.upsert_session(
    session_id text,
    cwd text default null,
    project_name text default null,
    git_branch text default null,
    terminal_type text default null,
    terminal_info jsonb default '{}'
)
returns text
language sql
volatile
set search_path = ''
as $function$
    select toolsdb.create_session($1, $2, $4, $5, $6);
    update toolsdb.sessions as s
    set metadata = s.metadata || pg_catalog.jsonb_build_object('project_name', $3)
    where s.session_id = $1 and $3 is not null and s.metadata ->> 'project_name' is distinct from $3;
    select $1;
$function$;

comment on function toolsdb.upsert_session(text, text, text, text, text, jsonb) is
'Creates a session or refreshes (and reopens) the one stored, as toolsdb.create_session() does, '
'with the hook-notification API''s project_name label (metadata ->> ''project_name''): '
'upsert_session of that API. Arguments left null keep what the session had. Returns the session id.';

create or replace function toolsdb.update_session_activity(session_id text)
returns boolean
language sql
volatile
set search_path = ''
as $function$
    update toolsdb.sessions as s
    set last_activity_at = greatest(s.last_activity_at, pg_catalog.now())
    where s.session_id = $1
    returning true;
$function$;

comment on function toolsdb.update_session_activity(text) is
'Marks the session active now (as in the hook-notification API). Returns true, or null when there '
'is no such session.';

create or replace function toolsdb.set_session_idle(session_id text, is_idle boolean default true)
returns boolean
language sql
volatile
set search_path = ''
as $function$
    update toolsdb.sessions as s
    set is_idle = coalesce($2, true),
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now())
    where s.session_id = $1
    returning true;
$function$;

comment on function toolsdb.set_session_idle(text, boolean) is
'Sets whether the session waits for the user (as in the hook-notification API). Returns true, or '
'null when there is no such session.';

create or replace function toolsdb.end_session(session_id text, reason text default null)
returns boolean
language sql
volatile
set search_path = ''
as $function$
    update toolsdb.sessions as s
    set ended_at = greatest(s.started_at, pg_catalog.now()),
        end_reason = $2,
        is_idle = false,
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now())
    where s.session_id = $1 and s.ended_at is null
    returning true;
$function$;

comment on function toolsdb.end_session(text, text) is
'Ends an active session (as in the hook-notification API), with an optional reason. Returns true, '
'or null when there is no such active session.';

create or replace function toolsdb_private.tg__record_session_deletion()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    -- On the session's worker, into the co-located shard (a trigger on a
    -- shard may reach those only): docs/citus.md.
    insert into toolsdb_private.deleted_sessions as d (session_id)
    values (old.session_id)
    on conflict on constraint deleted_sessions_pkey do update
    set deleted_at = excluded.deleted_at;
    return null;
end;
$function$;

comment on function toolsdb_private.tg__record_session_deletion() is
'On Citus only, trigger _900_record_deletion on toolsdb.sessions (AFTER DELETE, FOR EACH ROW): '
'records the deleted session in toolsdb_private.deleted_sessions, for toolsdb.maintain() to remove '
'what named it on the coordinator, where no key cascades (docs/citus.md).';

do $citus$
begin
    if pg_catalog.to_regclass('toolsdb_private.deleted_sessions') is not null and not exists (
        select from pg_catalog.pg_trigger as t
        where t.tgrelid = 'toolsdb.sessions'::regclass and t.tgname = '_900_record_deletion'
    ) then
        create trigger _900_record_deletion
        after delete on toolsdb.sessions
        for each row
        execute function toolsdb_private.tg__record_session_deletion();
    end if;
end
$citus$;

create or replace function toolsdb.delete_session(session_id text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- What the keys into sessions cascade on one node, done here as well: on
    -- Citus those keys are dropped (the rows are on the coordinator, the
    -- session on a worker, docs/citus.md), and nothing else would remove them.
    delete from toolsdb.notifications as n where n.session_id = delete_session.session_id;
    delete from toolsdb.events as e where e.session_id = delete_session.session_id;
    delete from toolsdb.metrics as m where m.session_id = delete_session.session_id;
    delete from toolsdb.api_usage as a where a.session_id = delete_session.session_id;
    update toolsdb.transcript_files as f set session_id = null where f.session_id = delete_session.session_id;
    delete from toolsdb.sessions as s where s.session_id = delete_session.session_id;
    return found;
end;
$function$;

comment on function toolsdb.delete_session(text) is
'Deletes a session with its messages, and the rows that name it: its events, notifications, metrics '
'and API usage (a transcript file keeps its state, with no session). On one node the keys cascade '
'the same way; on Citus they do not reach the coordinator''s tables, so delete sessions with this '
'(docs/citus.md). Returns true, or false when there was no such session. For toolsdb_owner.';
