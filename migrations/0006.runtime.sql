-- migrations/0006.runtime.sql
-- The agent runtime: sessions, messages, memories, raw hook events with
-- their claim queue and hook ingestion, notifications with leases, retries
-- and dead letters, daily-partitioned metrics, and the import of the V1
-- JSON files. The same statements as schema/40..46, plus the partition
-- helper of schema/14_partitions.sql that the audit log (whose
-- audit_create_partitions now calls it) and metrics share, and
-- isolate_rows() with shared_when_null (for the global metrics).
-- depends: 0005.collaboration
--
-- Every index here is on a table created in this same migration.
-- isolate_rows(regclass, text) is dropped for its three-argument successor,
-- which two-argument calls reach through the default: nothing depends on it.
-- squawk-ignore-file require-concurrent-index-creation, ban-drop-function

-- ---- toolsdb.isolate_rows, as now in schema/11_context.sql: with shared_when_null ----

-- Until 0006 isolate_rows had no shared_when_null; drop that signature so
-- the two never coexist (calls with two arguments would be ambiguous).
drop function if exists toolsdb.isolate_rows(regclass, text);

create or replace function toolsdb.isolate_rows(
    target regclass,
    by_column text,
    shared_when_null boolean default false
)
returns void
language plpgsql
volatile
set search_path = ''
as $function$
declare
    policy_name text;
    reader text := 'toolsdb.current_' || pg_catalog.left(by_column, -3) || '_id()';
    visible text;
begin
    if by_column not in ('project_id', 'session_id') then
        raise exception 'rows are isolated by project_id or session_id, not %', by_column
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (
        select from pg_catalog.pg_attribute as a
        where a.attrelid = target and a.attname = by_column and a.attnum > 0 and not a.attisdropped
    ) then
        raise exception 'cannot isolate %: it has no column %', target, by_column
            using errcode = 'undefined_column';
    end if;
    policy_name := pg_catalog.left(by_column, -3) || '_isolation';
    execute pg_catalog.format('alter table %s enable row level security', target);
    execute pg_catalog.format('drop policy if exists %I on %s', policy_name, target);
    -- Rows of the transaction's project or session; with shared_when_null
    -- also the rows that belong to none (shared by every project or session).
    visible := case
        when coalesce(shared_when_null, false)
            then pg_catalog.format('%I is null or %I = %s', by_column, by_column, reader)
        else pg_catalog.format('%I = %s', by_column, reader)
    end;
    execute pg_catalog.format(
        'create policy %I on %s for all to toolsdb_app using (%s) with check (%s)',
        policy_name, target, visible, visible
    );
    execute pg_catalog.format('drop policy if exists readonly_reads_all on %s', target);
    execute pg_catalog.format(
        'create policy readonly_reads_all on %s for select to toolsdb_readonly using (true)', target
    );
end;
$function$;

comment on function toolsdb.isolate_rows(regclass, text, boolean) is
'Row-level security the toolsdb way (docs/security.md): enables RLS on the table, lets '
'toolsdb_app see and change only the rows of its transaction''s project or session (by_column '
'project_id or session_id, compared with toolsdb.current_project_id() or current_session_id(); '
'nothing when unset) and toolsdb_readonly read all. With shared_when_null, rows whose by_column '
'is null belong to every project or session and are visible (and writable) too, as global metrics '
'are. The owner is not forced. Idempotent; call it in the table''s schema file.';

-- ---- from schema/14_partitions.sql ----

create or replace function toolsdb_private.create_range_partitions(
    parent regclass,
    period text,
    periods_ahead integer,
    append_only_hint text default null
)
returns integer
language plpgsql
volatile
set search_path = ''
as $function$
declare
    parent_name text;
    parent_schema text;
    step interval;
    name_format text;
    period_start date;
    part_name text;
    default_name text;
    created integer := 0;
    stranded_periods date[];
begin
    if period not in ('day', 'month') then
        raise exception 'partitions are by day or month, not %', period using errcode = 'invalid_parameter_value';
    end if;
    select c.relname, n.nspname into parent_name, parent_schema
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where c.oid = parent;
    step := case period when 'day' then interval '1 day' else interval '1 month' end;
    name_format := case period when 'day' then '"y"YYYY"m"MM"d"DD' else '"y"YYYY"m"MM' end;
    default_name := parent_name || '_default';
    -- Rows that landed in the default partition move to their own period:
    -- detach the default, create the periods, route its rows through the
    -- parent, then drop it and start a new one.
    execute pg_catalog.format(
        'select pg_catalog.array_agg(distinct pg_catalog.date_trunc(%L, p.%I at time zone %L)::date) from %I.%I as p',
        period,
        (
            select a.attname
            from pg_catalog.pg_partitioned_table as pt
            inner join pg_catalog.pg_attribute as a on pt.partrelid = a.attrelid and a.attnum = pt.partattrs[0]
            where pt.partrelid = parent
        ),
        'UTC',
        parent_schema,
        default_name
    ) into stranded_periods;
    if stranded_periods is not null then
        execute pg_catalog.format('alter table %s detach partition %I.%I', parent, parent_schema, default_name);
        execute pg_catalog.format('alter table %I.%I rename to %I', parent_schema, default_name, parent_name || '_stranded');
    end if;
    for period_start in
        select pg_catalog.date_trunc(period, (pg_catalog.now() at time zone 'UTC') + step * i)::date
        from pg_catalog.generate_series(0, periods_ahead) as i
        union
        select s from pg_catalog.unnest(stranded_periods) as s
    loop
        part_name := parent_name || '_' || pg_catalog.to_char(period_start, name_format);
        if pg_catalog.to_regclass(pg_catalog.format('%I.%I', parent_schema, part_name)) is null then
            execute pg_catalog.format(
                'create table %I.%I partition of %s for values from (%L) to (%L)',
                parent_schema, part_name, parent,
                period_start::timestamp at time zone 'UTC',
                (period_start + step)::timestamp at time zone 'UTC'
            );
            execute pg_catalog.format(
                'comment on table %I.%I is %L', parent_schema, part_name,
                'Partition of ' || parent::text || ' for '
                || pg_catalog.to_char(period_start, case period when 'day' then 'YYYY-MM-DD' else 'YYYY-MM' end)
                || ' (UTC).'
            );
            if append_only_hint is not null then
                execute pg_catalog.format(
                    'create trigger _010_append_only_truncate before truncate on %I.%I '
                    'for each statement execute function toolsdb_private.tg__append_only(%L, %L)',
                    parent_schema, part_name, parent::text, append_only_hint
                );
            end if;
            created := created + 1;
        end if;
    end loop;
    if stranded_periods is not null then
        execute pg_catalog.format('create table %I.%I partition of %s default', parent_schema, default_name, parent);
        execute pg_catalog.format(
            'comment on table %I.%I is %L', parent_schema, default_name,
            'Default partition of ' || parent::text || ': rows of ' || period || 's without their own partition '
            || 'land here until their partition is created (they are moved then).'
        );
        if append_only_hint is not null then
            execute pg_catalog.format(
                'create trigger _010_append_only_truncate before truncate on %I.%I '
                'for each statement execute function toolsdb_private.tg__append_only(%L, %L)',
                parent_schema, default_name, parent::text, append_only_hint
            );
        end if;
        execute pg_catalog.format(
            'insert into %s overriding system value select * from %I.%I', parent, parent_schema, parent_name || '_stranded'
        );
        execute pg_catalog.format('drop table %I.%I', parent_schema, parent_name || '_stranded');
    end if;
    return created;
end;
$function$;

comment on function toolsdb_private.create_range_partitions(regclass, text, integer, text) is
'Creates the partitions of a table range-partitioned on one timestamptz column for the current '
'period (day or month, UTC) and the next periods_ahead, named <table>_yYYYYmMM or _yYYYYmMMdDD, '
'and for every period whose rows landed in the default partition <table>_default (they are moved '
'there). With append_only_hint, each new partition gets the append-only truncate guard. Returns '
'how many it created. Callers check arguments and hold their table''s advisory lock.';

-- ---- toolsdb.audit_create_partitions, as now in schema/12_audit.sql: through create_range_partitions ----

create or replace function toolsdb.audit_create_partitions(months_ahead integer default 3)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if months_ahead is null or months_ahead not between 0 and 120 then
        raise exception 'months_ahead must be between 0 and 120, not %', months_ahead
            using errcode = 'invalid_parameter_value';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.audit_create_partitions'));
    return toolsdb_private.create_range_partitions(
        'toolsdb.audit_logs', 'month', months_ahead,
        'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
    );
end;
$function$;

comment on function toolsdb.audit_create_partitions(integer) is
'Creates the monthly partitions of toolsdb.audit_logs for this month and the next months_ahead '
'months (default 3), and for any month whose entries landed in the default partition (they are '
'moved). Returns how many it created. Run by every toolsdb migrate; schedule it monthly too.';

-- ---- from schema/40_sessions.sql ----

create table if not exists toolsdb.sessions (
    session_id text not null,
    user_id uuid,
    agent_id uuid,
    project_id uuid,
    cwd text,
    transcript_path text,
    permission_mode text,
    git_branch text,
    terminal_type text,
    terminal_info jsonb not null default '{}',
    metadata jsonb not null default '{}',
    last_event_type text,
    message_count integer not null default 0,
    is_idle boolean not null default false,
    started_at timestamptz not null default now(),
    last_activity_at timestamptz not null default now(),
    ended_at timestamptz,
    end_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint sessions_pkey primary key (session_id),
    constraint sessions_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint sessions_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint sessions_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete set null,
    constraint session_id_is_valid check (session_id ~ '^[[:graph:]]+$' and char_length(session_id) <= 200),
    constraint cwd_length_is_valid check (char_length(cwd) between 1 and 4096),
    constraint transcript_path_length_is_valid check (char_length(transcript_path) between 1 and 4096),
    constraint permission_mode_is_valid check (
        permission_mode ~ '^[A-Za-z][A-Za-z0-9_-]*$' and char_length(permission_mode) <= 50
    ),
    constraint git_branch_length_is_valid check (char_length(git_branch) between 1 and 255),
    constraint terminal_type_is_valid check (
        terminal_type ~ '^[a-z][a-z0-9_.-]*$' and char_length(terminal_type) <= 50
    ),
    constraint terminal_info_is_object check (jsonb_typeof(terminal_info) = 'object'),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint last_event_type_is_valid check (
        last_event_type ~ '^[[:graph:]]+$' and char_length(last_event_type) <= 100
    ),
    constraint message_count_is_not_negative check (message_count >= 0),
    constraint end_reason_length_is_valid check (char_length(end_reason) between 1 and 100),
    constraint ended_after_start check (ended_at >= started_at),
    constraint active_after_start check (last_activity_at >= started_at),
    constraint end_reason_needs_end check (end_reason is null or ended_at is not null)
);

create index if not exists sessions_user_id_idx on toolsdb.sessions (user_id);

create index if not exists sessions_agent_id_idx on toolsdb.sessions (agent_id);

create index if not exists sessions_project_id_idx on toolsdb.sessions (project_id);

create index if not exists sessions_active_idx on toolsdb.sessions (last_activity_at desc)
where ended_at is null;

create or replace trigger _100_timestamps
before insert or update on toolsdb.sessions
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.sessions is
'Agent sessions (seeds 001 and 003): one row per session id the agent gives (Claude Code''s '
'session_id), with where it works, its git branch and terminal, its activity and whether it '
'waits for input. Written by toolsdb.hook_ingest() on every hook event, or by create_session(). '
'Row-level security: the application sees only the session of toolsdb.session_id.';
comment on column toolsdb.sessions.session_id is
'Primary key: the session id exactly as the agent gives it (1-200 visible characters).';
comment on column toolsdb.sessions.user_id is 'The user the session works for, if known.';
comment on column toolsdb.sessions.agent_id is 'The registered agent running the session, if known.';
comment on column toolsdb.sessions.project_id is 'The project the session works on, if known.';
comment on column toolsdb.sessions.cwd is 'Working directory of the agent (latest seen), at most 4096 characters.';
comment on column toolsdb.sessions.transcript_path is
'Path of the agent''s conversation transcript file (latest seen).';
comment on column toolsdb.sessions.permission_mode is
'Permission mode the agent reported (Claude Code: default, plan, acceptEdits, bypassPermissions, ...).';
comment on column toolsdb.sessions.git_branch is 'Git branch checked out in cwd when last seen.';
comment on column toolsdb.sessions.terminal_type is 'Terminal the agent runs in: tmux, vscode, iterm, ... (lowercase).';
comment on column toolsdb.sessions.terminal_info is
'Terminal details as a JSON object, e.g. {"pane": "0:0.0"} or the TERM_PROGRAM variables.';
comment on column toolsdb.sessions.metadata is 'Anything else about the session (JSON object).';
comment on column toolsdb.sessions.last_event_type is 'Type of the last hook event seen (hook_event_name).';
comment on column toolsdb.sessions.message_count is
'How many messages were ever added to the session (a deleted one still counts: positions are '
'never reused); toolsdb.messages takes its next position from here.';
comment on column toolsdb.sessions.is_idle is
'True while the agent waits for the user (idle notification); false again on the next prompt or tool use.';
comment on column toolsdb.sessions.started_at is 'When the session was first seen.';
comment on column toolsdb.sessions.last_activity_at is 'When the session was last active (any event).';
comment on column toolsdb.sessions.ended_at is 'When the session ended (SessionEnd), null while active.';
comment on column toolsdb.sessions.end_reason is
'Why it ended, as the agent said (clear, logout, prompt_input_exit, other).';
comment on column toolsdb.sessions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.sessions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

comment on trigger _100_timestamps on toolsdb.sessions is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.sessions', 'activity bookkeeping touched by every hook event; toolsdb.events keeps the raw record of each')
on conflict (table_name) do nothing;

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
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now()),
        ended_at = null,
        end_reason = null
    returning s.session_id;
$function$;

comment on function toolsdb.create_session(text, text, text, text, jsonb, uuid, uuid, uuid) is
'Creates a session, or refreshes it (and reopens it if it had ended) when it exists: seed 001''s '
'create_session. Arguments left null keep what the session had. Returns the session id.';

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
'Marks the session active now (seed 001). Returns true, or null when there is no such session.';

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
'Sets whether the session waits for the user (seed 001). Returns true, or null when there is no '
'such session.';

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
'Ends an active session (seed 001), with an optional reason. Returns true, or null when there is '
'no such active session.';

-- ---- from schema/41_messages.sql ----

create table if not exists toolsdb.messages (
    message_id uuid not null default gen_random_uuid(),
    session_id text not null,
    position integer not null,
    role text not null,
    content text not null default '',
    tool_calls jsonb not null default '[]',
    tokens integer,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint messages_pkey primary key (message_id),
    constraint messages_session_id_position_key unique (session_id, position),
    constraint messages_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint position_is_positive check (position >= 1),
    constraint role_is_valid check (role in ('system', 'user', 'assistant', 'tool')),
    constraint content_length_is_valid check (char_length(content) <= 1000000),
    constraint tool_calls_is_array check (jsonb_typeof(tool_calls) = 'array'),
    constraint tokens_is_not_negative check (tokens >= 0),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

comment on table toolsdb.messages is
'The messages of an agent session in order (seed 003): who spoke (role), what was said, the tool '
'calls made and the tokens used. position is assigned by the database, gapless per session. '
'Row-level security: the application sees only the messages of toolsdb.session_id.';
comment on column toolsdb.messages.message_id is 'Primary key: a random UUID.';
comment on column toolsdb.messages.session_id is 'The session (toolsdb.sessions); deleting it deletes its messages.';
comment on column toolsdb.messages.position is
'Order within the session, 1, 2, 3, ... without gaps; set by trigger _050_position, never changed.';
comment on column toolsdb.messages.role is 'Who produced it: system, user, assistant or tool.';
comment on column toolsdb.messages.content is 'The text, at most 1,000,000 characters.';
comment on column toolsdb.messages.tool_calls is
'Tool calls the message made, a JSON array, e.g. [{"name": "Edit", "input": {...}}]; default [].';
comment on column toolsdb.messages.tokens is 'Tokens the message counted, if known.';
comment on column toolsdb.messages.metadata is 'Anything else (channel payload, model, ...), a JSON object.';
comment on column toolsdb.messages.created_at is 'When the message was stored.';

create or replace function toolsdb_private.tg__message_position()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'UPDATE' then
        if new.session_id is distinct from old.session_id or new.position is distinct from old.position then
            raise exception 'a message keeps its session and position (message %)', old.message_id
                using errcode = 'check_violation', constraint = 'position_is_fixed';
        end if;
        return new;
    end if;
    update toolsdb.sessions as s
    set message_count = s.message_count + 1,
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now())
    where s.session_id = new.session_id
    returning s.message_count into new.position;
    if new.position is null then
        raise exception 'no session % for this message', pg_catalog.quote_literal(new.session_id)
            using errcode = 'foreign_key_violation', constraint = 'messages_session_id_fkey';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__message_position() is
'Trigger of toolsdb.messages: a new message takes the next position of its session (counting in '
'sessions.message_count, which also serializes concurrent writers of one session); an update may '
'not move a message.';

create or replace trigger _050_position
before insert or update on toolsdb.messages
for each row
execute function toolsdb_private.tg__message_position();

comment on trigger _050_position on toolsdb.messages is
'Assigns position from the session''s message_count; refuses to move a message.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.messages', 'conversation content: the rows are the record, and an immutable copy would defeat deleting it')
on conflict (table_name) do nothing;

select toolsdb.isolate_rows('toolsdb.messages', 'session_id');

create or replace function toolsdb.create_message(
    session_id text,
    role text,
    content text,
    tool_calls jsonb default '[]',
    tokens integer default null,
    metadata jsonb default '{}'
)
returns uuid
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.messages (session_id, role, content, tool_calls, tokens, metadata)
    values ($1, $2, coalesce($3, ''), coalesce($4, '[]'), $5, coalesce($6, '{}'))
    returning message_id;
$function$;

comment on function toolsdb.create_message(text, text, text, jsonb, integer, jsonb) is
'Adds a message at the end of a session (seed 003''s create_message); returns its message_id. '
'The position is the session''s next one.';

-- ---- from schema/42_memories.sql ----

create table if not exists toolsdb.memories (
    memory_id uuid not null default gen_random_uuid(),
    agent_id uuid not null,
    user_id uuid,
    key text not null,
    content text not null,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memories_pkey primary key (memory_id),
    constraint memories_agent_id_user_id_key_key unique nulls not distinct (agent_id, user_id, key),
    constraint memories_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete cascade,
    constraint memories_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint key_is_valid check (key ~ '^[[:graph:]]([[:graph:] ]{0,198}[[:graph:]])?$'),
    constraint content_length_is_valid check (char_length(content) <= 100000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists memories_user_id_idx on toolsdb.memories (user_id);

create or replace trigger _100_timestamps
before insert or update on toolsdb.memories
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.memories is
'What an agent remembers (seed 003): an entry per agent, user and key, where a null user is the '
'agent''s global memory. Read with toolsdb.memory_get(), which prefers the user''s entry over the '
'global one; write with toolsdb.memory_set().';
comment on column toolsdb.memories.memory_id is 'Primary key: a random UUID.';
comment on column toolsdb.memories.agent_id is 'The agent that remembers; deleting the agent deletes its memories.';
comment on column toolsdb.memories.user_id is
'The user this memory is about, or null for the agent''s global memory.';
comment on column toolsdb.memories.key is
'Name of the memory, 1-200 visible characters (inner spaces allowed); unique per agent and user.';
comment on column toolsdb.memories.content is 'What is remembered, at most 100,000 characters.';
comment on column toolsdb.memories.metadata is 'Anything else (source, read mode, ...), a JSON object.';
comment on column toolsdb.memories.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.memories.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

comment on trigger _100_timestamps on toolsdb.memories is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

select toolsdb.audit_table('toolsdb.memories');

create or replace function toolsdb.memory_set(
    agent_id uuid,
    key text,
    content text,
    user_id uuid default null,
    metadata jsonb default '{}'
)
returns uuid
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.memories as m (agent_id, user_id, key, content, metadata)
    values ($1, $4, $2, $3, coalesce($5, '{}'))
    on conflict on constraint memories_agent_id_user_id_key_key do update
    set content = excluded.content,
        metadata = excluded.metadata
    where (m.content, m.metadata) is distinct from (excluded.content, excluded.metadata)
    returning m.memory_id;
$function$;

comment on function toolsdb.memory_set(uuid, text, text, uuid, jsonb) is
'Stores a memory of an agent, for one user or (user null) global; replaces the entry with the same '
'agent, user and key. Returns its memory_id, or null when nothing changed.';

create or replace function toolsdb.memory_get(agent_id uuid, key text, user_id uuid default null)
returns setof toolsdb.memories
language sql
stable
set search_path = ''
as $function$
    select m.*
    from toolsdb.memories as m
    where m.agent_id = $1 and m.key = $2 and (m.user_id = $3 or m.user_id is null)
    order by m.user_id nulls last
    limit 1;
$function$;

comment on function toolsdb.memory_get(uuid, text, uuid) is
'The memory of an agent under a key: the user''s own entry when there is one, else the agent''s '
'global entry; no row when neither exists.';

-- ---- from schema/43_events.sql ----

create table if not exists toolsdb.events (
    event_id bigint generated always as identity,
    session_id text not null,
    event_type text not null,
    payload jsonb not null,
    idempotency_key text,
    created_at timestamptz not null default now(),
    visible_at timestamptz not null default now(),
    attempts integer not null default 0,
    claim_token uuid,
    claimed_by text,
    processed_at timestamptz,
    constraint events_pkey primary key (event_id),
    constraint events_idempotency_key_key unique (idempotency_key),
    constraint events_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint event_type_is_valid check (event_type ~ '^[[:graph:]]+$' and char_length(event_type) <= 100),
    constraint payload_is_object check (jsonb_typeof(payload) = 'object'),
    constraint idempotency_key_length_is_valid check (char_length(idempotency_key) between 1 and 300),
    constraint attempts_is_not_negative check (attempts >= 0),
    constraint claimed_by_length_is_valid check (char_length(claimed_by) between 1 and 200)
);

-- The claim query of get_unprocessed_events(), exactly: unprocessed rows in
-- visible_at, event_id order.
create index if not exists events_claim_idx on toolsdb.events (visible_at, event_id)
where processed_at is null;

create index if not exists events_session_id_idx on toolsdb.events (session_id, created_at);

create index if not exists events_created_at_idx on toolsdb.events using brin (created_at);

comment on table toolsdb.events is
'Raw agent hook events (seed 001): the payload exactly as the hook received it, for workers to '
'process. A queue: get_unprocessed_events() claims a batch with a lease, mark_event_processed() '
'settles it; an event whose worker died comes back when its lease ends. Row-level security: the '
'application sees only the events of toolsdb.session_id.';
comment on column toolsdb.events.event_id is 'Increasing id.';
comment on column toolsdb.events.session_id is 'The session it belongs to; deleting the session deletes its events.';
comment on column toolsdb.events.event_type is
'Hook event name as sent (PreToolUse, Notification, SessionEnd, ...); unknown names are kept as they are.';
comment on column toolsdb.events.payload is 'The hook payload (seed 001''s hook_payload), a JSON object, unchanged.';
comment on column toolsdb.events.idempotency_key is
'Optional unique key of the event''s source (imports use v1:...); inserting it again returns the first row.';
comment on column toolsdb.events.created_at is 'When it was received.';
comment on column toolsdb.events.visible_at is
'When a worker may claim it: creation time, then the end of the current lease while claimed.';
comment on column toolsdb.events.attempts is 'How many times it was claimed.';
comment on column toolsdb.events.claim_token is
'Token of the latest claim; only its holder may mark the event processed.';
comment on column toolsdb.events.claimed_by is 'Name the claiming worker gave, for people.';
comment on column toolsdb.events.processed_at is 'When a worker marked it processed; null while waiting.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.events', 'raw, high-volume hook payloads: the rows are themselves the record')
on conflict (table_name) do nothing;

select toolsdb.isolate_rows('toolsdb.events', 'session_id');

create or replace function toolsdb_private.tg__queue_notify()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    perform pg_catalog.pg_notify(tg_argv[0], '');
    return null;
end;
$function$;

comment on function toolsdb_private.tg__queue_notify() is
'Statement trigger of the queues: one pg_notify on the channel named by the trigger argument per '
'inserting statement (and PostgreSQL folds equal notifications of one transaction into one), so '
'a waiting worker wakes without one notification per row.';

create or replace trigger _900_notify
after insert on toolsdb.events
for each statement
execute function toolsdb_private.tg__queue_notify('toolsdb_events');

comment on trigger _900_notify on toolsdb.events is
'Wakes workers listening on channel toolsdb_events, once per inserting statement.';

create or replace function toolsdb.insert_event(
    session_id text,
    event_type text,
    payload jsonb default '{}',
    idempotency_key text default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    new_id bigint;
begin
    insert into toolsdb.sessions (session_id) values (insert_event.session_id)
    on conflict on constraint sessions_pkey do nothing;
    insert into toolsdb.events (session_id, event_type, payload, idempotency_key)
    values (insert_event.session_id, insert_event.event_type, insert_event.payload, insert_event.idempotency_key)
    on conflict on constraint events_idempotency_key_key do nothing
    returning event_id into new_id;
    if new_id is null then
        select e.event_id into new_id
        from toolsdb.events as e
        where e.idempotency_key = insert_event.idempotency_key;
        if new_id is null then
            -- Stored, but row-level security hides it: another session's key.
            raise exception 'idempotency_key % is taken by another session', pg_catalog.quote_literal(insert_event.idempotency_key)
                using errcode = 'unique_violation', constraint = 'events_idempotency_key_key';
        end if;
    end if;
    return new_id;
end;
$function$;

comment on function toolsdb.insert_event(text, text, jsonb, text) is
'Queues a raw event (seed 001''s insert_event), creating a bare session row if the session is new. '
'With an idempotency_key already stored, inserts nothing and returns the existing event_id '
'(unique_violation when the key belongs to a session the caller cannot see).';

create or replace function toolsdb.hook_ingest(payload jsonb, context jsonb default '{}')
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    sid text := payload ->> 'session_id';
    kind text := pg_catalog.left(
        pg_catalog.regexp_replace(coalesce(nullif(payload ->> 'hook_event_name', ''), 'unknown'), '[^[:graph:]]', '_', 'g'),
        100
    );
    ctx jsonb := coalesce(context, '{}');
    previous_session text := pg_catalog.current_setting('toolsdb.session_id', true);
    uuid_pattern constant text := '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$';
    ctx_user uuid;
    ctx_agent uuid;
    ctx_project uuid;
    goes_idle boolean;
    wakes boolean;
    new_id bigint;
begin
    if payload is null or pg_catalog.jsonb_typeof(payload) <> 'object' then
        raise exception 'a hook payload is a JSON object, not %', coalesce(pg_catalog.jsonb_typeof(payload), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(ctx) <> 'object' then
        raise exception 'the hook context is a JSON object, not %', pg_catalog.jsonb_typeof(ctx)
            using errcode = 'invalid_parameter_value';
    end if;
    if sid is null or pg_catalog.jsonb_typeof(payload -> 'session_id') <> 'string' or sid = '' then
        raise exception 'the hook payload has no session_id string'
            using errcode = 'invalid_parameter_value';
    end if;
    -- Ids from the hook's environment, in any case; anything else is ignored.
    ctx_user := case when ctx ->> 'user_id' ~ uuid_pattern then (ctx ->> 'user_id')::uuid end;
    ctx_agent := case when ctx ->> 'agent_id' ~ uuid_pattern then (ctx ->> 'agent_id')::uuid end;
    ctx_project := case when ctx ->> 'project_id' ~ uuid_pattern then (ctx ->> 'project_id')::uuid end;
    goes_idle := coalesce(kind = 'Notification' and (
        payload ->> 'notification_type' = 'idle_prompt'
        or (payload ->> 'notification_type' is null and payload ->> 'message' ilike '%waiting for your input%')
    ), false);
    wakes := kind in ('UserPromptSubmit', 'PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'SessionStart');
    -- Act as the payload's session (row-level security), and put the
    -- caller's setting back afterwards.
    perform pg_catalog.set_config('toolsdb.session_id', sid, true);
    insert into toolsdb.sessions as s (
        session_id, cwd, transcript_path, permission_mode, git_branch, terminal_type, terminal_info,
        user_id, agent_id, project_id, last_event_type, is_idle, ended_at, end_reason
    )
    values (
        sid,
        -- A value the session's CHECKs would refuse is left out, never the
        -- event: the payload keeps it.
        case when char_length(payload ->> 'cwd') between 1 and 4096 then payload ->> 'cwd' end,
        case when char_length(payload ->> 'transcript_path') between 1 and 4096 then payload ->> 'transcript_path' end,
        case
            when payload ->> 'permission_mode' ~ '^[A-Za-z][A-Za-z0-9_-]*$'
                and char_length(payload ->> 'permission_mode') <= 50
                then payload ->> 'permission_mode'
        end,
        case when char_length(ctx ->> 'git_branch') between 1 and 255 then ctx ->> 'git_branch' end,
        case
            when ctx ->> 'terminal_type' ~ '^[a-z][a-z0-9_.-]*$' and char_length(ctx ->> 'terminal_type') <= 50
                then ctx ->> 'terminal_type'
        end,
        case when pg_catalog.jsonb_typeof(ctx -> 'terminal_info') = 'object' then ctx -> 'terminal_info' else '{}' end,
        (select u.user_id from toolsdb.users as u where u.user_id = ctx_user),
        (select a.agent_id from toolsdb.agents as a where a.agent_id = ctx_agent),
        (select p.project_id from toolsdb.projects as p where p.project_id = ctx_project),
        kind,
        goes_idle,
        case when kind = 'SessionEnd' then pg_catalog.now() end,
        case when kind = 'SessionEnd' then coalesce(nullif(payload ->> 'reason', ''), 'other') end
    )
    on conflict on constraint sessions_pkey do update
    set cwd = coalesce(excluded.cwd, s.cwd),
        transcript_path = coalesce(excluded.transcript_path, s.transcript_path),
        permission_mode = coalesce(excluded.permission_mode, s.permission_mode),
        git_branch = coalesce(excluded.git_branch, s.git_branch),
        terminal_type = coalesce(excluded.terminal_type, s.terminal_type),
        terminal_info = case when excluded.terminal_info = '{}' then s.terminal_info else excluded.terminal_info end,
        user_id = coalesce(excluded.user_id, s.user_id),
        agent_id = coalesce(excluded.agent_id, s.agent_id),
        project_id = coalesce(excluded.project_id, s.project_id),
        last_event_type = excluded.last_event_type,
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now()),
        is_idle = case when goes_idle then true when wakes or kind = 'SessionEnd' then false else s.is_idle end,
        ended_at = case
            when kind = 'SessionEnd' then coalesce(s.ended_at, greatest(s.started_at, pg_catalog.now()))
            when kind = 'SessionStart' then null
            else s.ended_at
        end,
        end_reason = case
            when kind = 'SessionEnd' then coalesce(s.end_reason, excluded.end_reason)
            when kind = 'SessionStart' then null
            else s.end_reason
        end;
    insert into toolsdb.events (session_id, event_type, payload)
    values (sid, kind, payload)
    returning event_id into new_id;
    perform pg_catalog.set_config('toolsdb.session_id', coalesce(previous_session, ''), true);
    return new_id;
end;
$function$;

comment on function toolsdb.hook_ingest(jsonb, jsonb) is
'Stores one agent hook payload (Claude Code''s JSON on the hook''s stdin) as a raw event and keeps '
'its session current, in one call; returns the event_id. Every event: last activity, cwd, '
'transcript path and permission mode. Notification of type idle_prompt: idle. UserPromptSubmit, '
'PreToolUse, PostToolUse(Failure) and SessionStart: not idle. SessionEnd: ended, with its reason; '
'SessionStart reopens. Unknown events and fields are kept as they are. context (from the hook '
'process): git_branch, terminal_type, terminal_info, and user_id, agent_id, project_id, used when '
'such a row exists. A payload that is not an object or has no session_id is invalid_parameter_value '
'(22023). A field the session''s CHECKs would refuse (an odd permission_mode, a cwd over 4096 '
'characters) is left out of the session, never the event. Used by `toolsdb hook`.';

create or replace function toolsdb.get_unprocessed_events(
    batch_size integer default 100,
    lease interval default '5 minutes',
    worker text default null
)
returns setof toolsdb.events
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    token uuid := gen_random_uuid();
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    -- The ids first, as an array: the update then finds each row by its
    -- primary key, whatever the table's size (a join could hash it whole).
    return query
    with claimed as (
        update toolsdb.events as e
        set visible_at = pg_catalog.now() + lease,
            attempts = e.attempts + 1,
            claim_token = token,
            claimed_by = worker
        where e.event_id = any(array(
            select p.event_id
            from toolsdb.events as p
            where p.processed_at is null and p.visible_at <= pg_catalog.now()
            order by p.visible_at, p.event_id
            limit batch_size
            for update skip locked
        ))
        returning e.*
    )
    select * from claimed order by claimed.event_id;
end;
$function$;

comment on function toolsdb.get_unprocessed_events(integer, interval, text) is
'Claims up to batch_size unprocessed events, oldest first, for a worker (seed 001''s '
'get_unprocessed_events): each is leased until now() + lease under one new claim_token, and '
'comes back to the next claimer if not marked processed by then. Concurrent claimers never get '
'the same row (for update skip locked). Commit the claim before working on it. For '
'toolsdb_worker: sees every session.';

create or replace function toolsdb.mark_events_processed(event_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    wanted integer := (select pg_catalog.count(distinct i) from pg_catalog.unnest(event_ids) as i);
    done integer;
begin
    update toolsdb.events as e
    set processed_at = pg_catalog.now(),
        claim_token = null
    where e.event_id = any(event_ids)
        and e.claim_token = mark_events_processed.claim_token
        and e.processed_at is null
        and e.visible_at > pg_catalog.now();
    get diagnostics done = row_count;
    if done <> wanted then
        raise exception 'lease lost: % of % events are no longer held by this claim', wanted - done, wanted
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'their lease ended or another worker claimed them; nothing was marked';
    end if;
    return done;
end;
$function$;

comment on function toolsdb.mark_events_processed(bigint[], uuid) is
'Marks claimed events processed, all or none: each must still be held by the claim (same '
'claim_token, lease not over, not yet processed), else object_not_in_prerequisite_state (55000) '
'"lease lost" and nothing changes. Returns how many.';

create or replace function toolsdb.mark_event_processed(event_id bigint, claim_token uuid)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $function$
    select toolsdb.mark_events_processed(array[event_id], claim_token) = 1;
$function$;

comment on function toolsdb.mark_event_processed(bigint, uuid) is
'Marks one claimed event processed (seed 001''s mark_event_processed); refuses with '
'object_not_in_prerequisite_state (55000) when the claim no longer holds it.';

create or replace function toolsdb.purge_processed_events(older_than interval default '30 days')
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    purged bigint;
begin
    if older_than is null or older_than < interval '0' then
        raise exception 'older_than must be a positive interval, not %', older_than
            using errcode = 'invalid_parameter_value';
    end if;
    delete from toolsdb.events as e
    where e.processed_at < pg_catalog.now() - older_than;
    get diagnostics purged = row_count;
    return purged;
end;
$function$;

comment on function toolsdb.purge_processed_events(interval) is
'Retention of the raw event queue: deletes events processed more than older_than ago (default '
'30 days; notifications keep their rows, their event_id becomes null). Returns how many.';

-- ---- from schema/44_notifications.sql ----

create table if not exists toolsdb.notifications (
    notification_id bigint generated always as identity,
    event_id bigint,
    session_id text not null,
    notification_type text not null,
    backend text not null,
    status text not null default 'pending',
    payload jsonb not null default '{}',
    attempts integer not null default 0,
    max_attempts integer not null default 3,
    last_error text,
    next_attempt_at timestamptz not null default now(),
    claim_token uuid,
    claimed_by text,
    idempotency_key text,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint notifications_pkey primary key (notification_id),
    constraint notifications_idempotency_key_key unique (idempotency_key),
    constraint notifications_event_id_fkey foreign key (event_id)
    references toolsdb.events (event_id) on delete set null,
    constraint notifications_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint notification_type_is_valid check (
        notification_type ~ '^[a-z][a-z0-9_]*$' and char_length(notification_type) <= 50
    ),
    constraint backend_is_valid check (backend in ('slack', 'discord', 'email', 'webhook')),
    constraint status_is_valid check (status in ('pending', 'sending', 'sent', 'failed', 'dead')),
    constraint payload_is_object check (jsonb_typeof(payload) = 'object'),
    constraint attempts_is_not_negative check (attempts >= 0),
    constraint max_attempts_is_valid check (max_attempts between 1 and 100),
    constraint attempts_within_max check (attempts <= max_attempts),
    constraint last_error_length_is_valid check (char_length(last_error) between 1 and 4000),
    constraint claimed_by_length_is_valid check (char_length(claimed_by) between 1 and 200),
    constraint idempotency_key_length_is_valid check (char_length(idempotency_key) between 1 and 300),
    constraint sent_at_matches_status check ((status = 'sent') = (sent_at is not null)),
    constraint sending_has_claim check (status <> 'sending' or claim_token is not null)
);

-- The claim query of claim_notifications(), exactly: open rows in
-- next_attempt_at, notification_id order.
create index if not exists notifications_claim_idx on toolsdb.notifications (next_attempt_at, notification_id)
where status in ('pending', 'sending', 'failed');

create index if not exists notifications_dead_idx on toolsdb.notifications (notification_id)
where status = 'dead';

create index if not exists notifications_event_id_idx on toolsdb.notifications (event_id);

create index if not exists notifications_session_id_idx on toolsdb.notifications (session_id, created_at);

alter table toolsdb.notifications set (fillfactor = 80);

comment on table toolsdb.notifications is
'Notifications to deliver (seed 001): permission requests, finished tasks, ... to Slack, Discord, '
'email or a webhook, with retries. A queue: claim_notifications() leases a batch, '
'mark_notification_sent() or mark_notification_failed() settles each; failures back off '
'exponentially with jitter and after max_attempts the row is dead (a dead letter) until '
'redrive_notifications(). Row-level security: the application sees its session''s rows.';
comment on column toolsdb.notifications.notification_id is 'Increasing id.';
comment on column toolsdb.notifications.event_id is
'The raw event that caused it, if any (null once that event is purged).';
comment on column toolsdb.notifications.session_id is 'The session it is about.';
comment on column toolsdb.notifications.notification_type is
'What it is about, snake_case: permission, task_complete, idle, error, ...';
comment on column toolsdb.notifications.backend is 'Where it goes: slack, discord, email or webhook.';
comment on column toolsdb.notifications.status is
'pending (waiting), sending (claimed, leased until next_attempt_at), sent, failed (will retry at '
'next_attempt_at) or dead (gave up after max_attempts; a dead letter).';
comment on column toolsdb.notifications.payload is 'What the backend sends (backend-specific JSON object).';
comment on column toolsdb.notifications.attempts is
'Delivery attempts so far (seed 001''s retry_count); each claim is one.';
comment on column toolsdb.notifications.max_attempts is
'Attempts before it is dead-lettered, 1-100; default 3 (seed 001).';
comment on column toolsdb.notifications.last_error is 'Error of the last failed attempt (seed 001''s error).';
comment on column toolsdb.notifications.next_attempt_at is
'When it may be claimed: now when pending, after the backoff when failed, the end of the lease when sending.';
comment on column toolsdb.notifications.claim_token is
'Token of the current claim; only its holder may mark the notification sent or failed.';
comment on column toolsdb.notifications.claimed_by is 'Name the claiming worker gave, for people.';
comment on column toolsdb.notifications.idempotency_key is
'Optional unique key; inserting a notification with a stored key returns the first one.';
comment on column toolsdb.notifications.created_at is 'When it was queued.';
comment on column toolsdb.notifications.sent_at is 'When it was delivered; set exactly when status is sent.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
(
    'toolsdb.notifications',
    'delivery queue churning through claims and retries; attempts, last_error and sent_at are its record'
)
on conflict (table_name) do nothing;

select toolsdb.isolate_rows('toolsdb.notifications', 'session_id');

create or replace trigger _900_notify
after insert on toolsdb.notifications
for each statement
execute function toolsdb_private.tg__queue_notify('toolsdb_notifications');

comment on trigger _900_notify on toolsdb.notifications is
'Wakes workers listening on channel toolsdb_notifications, once per inserting statement.';

create or replace function toolsdb.insert_notification(
    session_id text,
    notification_type text,
    backend text,
    payload jsonb default '{}',
    event_id bigint default null,
    max_attempts integer default 3,
    idempotency_key text default null,
    deliver_at timestamptz default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    new_id bigint;
begin
    insert into toolsdb.notifications (
        session_id, notification_type, backend, payload, event_id, max_attempts, idempotency_key, next_attempt_at
    )
    values (
        insert_notification.session_id, insert_notification.notification_type, insert_notification.backend,
        coalesce(insert_notification.payload, '{}'), insert_notification.event_id,
        coalesce(insert_notification.max_attempts, 3), insert_notification.idempotency_key,
        coalesce(insert_notification.deliver_at, pg_catalog.now())
    )
    on conflict on constraint notifications_idempotency_key_key do nothing
    returning notification_id into new_id;
    if new_id is null then
        select n.notification_id into new_id
        from toolsdb.notifications as n
        where n.idempotency_key = insert_notification.idempotency_key;
        if new_id is null then
            -- Stored, but row-level security hides it: another session's key.
            raise exception 'idempotency_key % is taken by another session', pg_catalog.quote_literal(insert_notification.idempotency_key)
                using errcode = 'unique_violation', constraint = 'notifications_idempotency_key_key';
        end if;
    end if;
    return new_id;
end;
$function$;

comment on function toolsdb.insert_notification(text, text, text, jsonb, bigint, integer, text, timestamptz) is
'Queues a notification (seed 001''s insert_notification): pending, deliverable from deliver_at '
'(default now). With an idempotency_key already stored, inserts nothing and returns the existing '
'notification_id (unique_violation when the key belongs to a session the caller cannot see). '
'Wakes listeners on toolsdb_notifications.';

create or replace function toolsdb.claim_notifications(
    batch_size integer default 10,
    lease interval default '1 minute',
    worker text default null
)
returns setof toolsdb.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    token uuid := gen_random_uuid();
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    -- A row still "sending" whose lease ended after its last attempt is not
    -- tried again: it becomes a dead letter (its worker died on it).
    -- The ids first, as an array: the update then finds each row by its
    -- primary key, whatever the table's size (a join could hash it whole).
    return query
    with claimed as (
        update toolsdb.notifications as n
        set status = case when n.attempts >= n.max_attempts then 'dead' else 'sending' end,
            attempts = case when n.attempts >= n.max_attempts then n.attempts else n.attempts + 1 end,
            last_error = case
                when n.attempts >= n.max_attempts then 'lease ended after the last attempt (worker lost)'
                else n.last_error
            end,
            next_attempt_at = case
                when n.attempts >= n.max_attempts then n.next_attempt_at else pg_catalog.now() + lease
            end,
            claim_token = case when n.attempts >= n.max_attempts then null else token end,
            claimed_by = worker
        where n.notification_id = any(array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.status in ('pending', 'sending', 'failed') and p.next_attempt_at <= pg_catalog.now()
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
        ))
        returning n.*
    )
    select * from claimed where claimed.status = 'sending' order by claimed.notification_id;
end;
$function$;

comment on function toolsdb.claim_notifications(integer, interval, text) is
'Claims up to batch_size due notifications, oldest due first: status sending, attempts + 1, '
'leased until now() + lease under one new claim_token. Rows of a worker that died come back when '
'their lease ends (or become dead letters if that was the last attempt). Concurrent claimers never '
'get the same row (for update skip locked); returned in notification_id order. Commit the claim '
'before delivering. For toolsdb_worker.';

create or replace function toolsdb.mark_notifications_sent(notification_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    wanted integer := (select pg_catalog.count(distinct i) from pg_catalog.unnest(notification_ids) as i);
    done integer;
begin
    update toolsdb.notifications as n
    set status = 'sent',
        sent_at = pg_catalog.now(),
        claim_token = null
    where n.notification_id = any(notification_ids)
        and n.claim_token = mark_notifications_sent.claim_token
        and n.status = 'sending'
        and n.next_attempt_at > pg_catalog.now();
    get diagnostics done = row_count;
    if done <> wanted then
        raise exception 'lease lost: % of % notifications are no longer held by this claim', wanted - done, wanted
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'their lease ended or another worker claimed them; nothing was marked';
    end if;
    return done;
end;
$function$;

comment on function toolsdb.mark_notifications_sent(bigint[], uuid) is
'Acks delivered notifications, all or none: each must still be held by the claim (same '
'claim_token, status sending, lease not over), else object_not_in_prerequisite_state (55000) '
'"lease lost" and nothing changes, so a late ack is never counted twice. Returns how many.';

create or replace function toolsdb.mark_notification_sent(notification_id bigint, claim_token uuid)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $function$
    select toolsdb.mark_notifications_sent(array[notification_id], claim_token) = 1;
$function$;

comment on function toolsdb.mark_notification_sent(bigint, uuid) is
'Acks one delivered notification (seed 001''s mark_notification_sent); refuses with '
'object_not_in_prerequisite_state (55000) when the claim no longer holds it.';

create or replace function toolsdb.mark_notification_failed(
    notification_id bigint,
    claim_token uuid,
    error text,
    retry_base interval default '10 seconds',
    retry_max interval default '1 hour'
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    outcome text;
begin
    if retry_base is null or retry_base < interval '0' or retry_max is null or retry_max < retry_base then
        raise exception 'retry_base must be positive and at most retry_max (got % and %)', retry_base, retry_max
            using errcode = 'invalid_parameter_value';
    end if;
    -- Exponential backoff with "equal jitter": half the delay is fixed, the
    -- other half random, so retries of a burst spread out.
    update toolsdb.notifications as n
    set status = case when n.attempts >= n.max_attempts then 'dead' else 'failed' end,
        last_error = pg_catalog.left(coalesce(nullif(error, ''), 'unknown error'), 4000),
        next_attempt_at = case
            when n.attempts >= n.max_attempts then pg_catalog.now()
            else pg_catalog.now() + (
                least(retry_max, retry_base * pg_catalog.power(2, least(n.attempts - 1, 30)))
                * (0.5 + pg_catalog.random() / 2)
            )
        end,
        claim_token = null
    where n.notification_id = mark_notification_failed.notification_id
        and n.claim_token = mark_notification_failed.claim_token
        and n.status = 'sending'
        and n.next_attempt_at > pg_catalog.now()
    returning n.status into outcome;
    if outcome is null then
        raise exception 'lease lost: notification % is no longer held by this claim', notification_id
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'its lease ended or another worker claimed it; nothing was marked';
    end if;
    return outcome;
end;
$function$;

comment on function toolsdb.mark_notification_failed(bigint, uuid, text, interval, interval) is
'Records a failed delivery (seed 001''s mark_notification_failed): status failed, retried at now() '
'+ min(retry_max, retry_base * 2^(attempts-1)) * (0.5 + random/2); after max_attempts, dead. '
'Returns the new status. Refuses with object_not_in_prerequisite_state (55000) when the claim no '
'longer holds it.';

create or replace function toolsdb.get_dead_notifications(max_rows integer default 100)
returns setof toolsdb.notifications
language sql
stable
security definer
set search_path = ''
as $function$
    select n.*
    from toolsdb.notifications as n
    where n.status = 'dead'
    order by n.notification_id
    limit greatest(coalesce(max_rows, 100), 0);
$function$;

comment on function toolsdb.get_dead_notifications(integer) is
'The dead letters: notifications that used up their attempts, oldest first, at most max_rows. '
'For toolsdb_worker (every session).';

create or replace function toolsdb.redrive_notifications(notification_ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    moved integer;
begin
    update toolsdb.notifications as n
    set status = 'pending',
        attempts = 0,
        next_attempt_at = pg_catalog.now(),
        claim_token = null,
        claimed_by = null
    where n.status = 'dead'
        and (notification_ids is null or n.notification_id = any(notification_ids));
    get diagnostics moved = row_count;
    if moved > 0 then
        perform pg_catalog.pg_notify('toolsdb_notifications', '');
    end if;
    return moved;
end;
$function$;

comment on function toolsdb.redrive_notifications(bigint[]) is
'Gives dead letters (all, or those listed) a new set of attempts: pending now, attempts 0, '
'last_error kept for the record. Returns how many. For toolsdb_worker.';

-- ---- from schema/45_metrics.sql ----

create table if not exists toolsdb.metrics (
    metric_id bigint generated always as identity,
    metric_name text not null,
    metric_value double precision not null,
    session_id text,
    tags jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint metrics_pkey primary key (metric_id, created_at),
    constraint metrics_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint metric_name_is_valid check (metric_name ~ '^[a-z][a-z0-9_.]*$' and char_length(metric_name) <= 200),
    constraint metric_value_is_finite check (metric_value not in ('NaN', 'Infinity', '-Infinity')),
    constraint tags_is_object check (jsonb_typeof(tags) = 'object')
) partition by range (created_at);

create table if not exists toolsdb.metrics_default
partition of toolsdb.metrics default;

comment on table toolsdb.metrics_default is
'Default partition of toolsdb.metrics: rows of days without their own partition land here until '
'toolsdb.metrics_create_partitions() moves them.';

-- Stats by name over a window: an index-only scan of the window's days.
create index if not exists metrics_name_created_at_idx on toolsdb.metrics (metric_name, created_at)
include (metric_value);

create index if not exists metrics_session_id_idx on toolsdb.metrics (session_id, created_at);

comment on table toolsdb.metrics is
'Measurements (seed 001): notification_latency_ms, hook_duration_ms, ... with an optional session. '
'Partitioned by day (UTC); toolsdb.metrics_apply_retention() drops whole days (config '
'metrics.retention, default 30 days). Stats with toolsdb.get_metric_stats(). Append-only.';
comment on column toolsdb.metrics.metric_id is 'Increasing id (unique with created_at).';
comment on column toolsdb.metrics.metric_name is
'What was measured, lowercase dotted snake_case, e.g. notification_latency_ms.';
comment on column toolsdb.metrics.metric_value is 'The value, a finite number.';
comment on column toolsdb.metrics.session_id is 'The session measured, or null for a global metric.';
comment on column toolsdb.metrics.tags is 'Dimensions of the measurement, e.g. {"backend": "slack"} (JSON object).';
comment on column toolsdb.metrics.created_at is 'When it was measured; the partition key.';

create or replace trigger _010_append_only
before update on toolsdb.metrics
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.metrics', 'measurements are never rewritten; old days leave through toolsdb.metrics_apply_retention()'
);

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metrics', 'high-volume measurements, append-only: the rows are the record')
on conflict (table_name) do nothing;

-- Session metrics are isolated per session; global ones (no session) are
-- shared by all.
select toolsdb.isolate_rows('toolsdb.metrics', 'session_id', shared_when_null => true);

create or replace function toolsdb_private.metrics_partition_name(day date)
returns text
language sql
immutable
return 'metrics_' || pg_catalog.to_char(day, '"y"YYYY"m"MM"d"DD');

comment on function toolsdb_private.metrics_partition_name(date) is
'Name of the daily partition of toolsdb.metrics holding the given day: metrics_yYYYYmMMdDD.';

create or replace function toolsdb.metrics_create_partitions(days_ahead integer default 7)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if days_ahead is null or days_ahead not between 0 and 366 then
        raise exception 'days_ahead must be between 0 and 366, not %', days_ahead
            using errcode = 'invalid_parameter_value';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.metrics_create_partitions'));
    return toolsdb_private.create_range_partitions('toolsdb.metrics', 'day', days_ahead);
end;
$function$;

comment on function toolsdb.metrics_create_partitions(integer) is
'Creates the daily partitions of toolsdb.metrics for today and the next days_ahead days (default '
'7, UTC), and for any day whose rows landed in the default partition (they are moved). Returns how '
'many it created. Run by every toolsdb migrate; schedule it daily too.';

create or replace function toolsdb.metrics_apply_retention(max_age interval default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    age interval := max_age;
    cutoff date;
    part record;
    dropped bigint := 0;
    part_rows bigint;
begin
    if age is null then
        select (c.value #>> '{}')::interval into age
        from toolsdb.config as c
        where c.key = 'metrics.retention' and not c.is_secret;
    end if;
    age := coalesce(age, interval '30 days');
    if age < interval '1 day' then
        raise exception 'metrics retention must keep at least one day, not %', age
            using errcode = 'invalid_parameter_value';
    end if;
    -- Whole days strictly before the cutoff day go.
    cutoff := ((pg_catalog.now() - age) at time zone 'UTC')::date;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.metrics_create_partitions'));
    for part in
        select c.relname
        from pg_catalog.pg_inherits as i
        inner join pg_catalog.pg_class as c on i.inhrelid = c.oid
        where i.inhparent = 'toolsdb.metrics'::regclass
            and c.relname ~ '^metrics_y[0-9]{4}m[0-9]{2}d[0-9]{2}$'
            and pg_catalog.to_date(pg_catalog.substring(c.relname, 9), '"y"YYYY"m"MM"d"DD') < cutoff
        order by c.relname
    loop
        execute pg_catalog.format('select pg_catalog.count(*) from toolsdb.%I', part.relname) into part_rows;
        execute pg_catalog.format('drop table toolsdb.%I', part.relname);
        dropped := dropped + part_rows;
    end loop;
    delete from toolsdb.metrics_default as d
    where d.created_at < cutoff::timestamp at time zone 'UTC';
    get diagnostics part_rows = row_count;
    return dropped + part_rows;
end;
$function$;

comment on function toolsdb.metrics_apply_retention(interval) is
'Retention of toolsdb.metrics: drops the daily partitions older than max_age (default: config '
'metrics.retention, else 30 days; at least 1 day) and such rows of the default partition. Returns '
'how many rows went.';

create or replace function toolsdb.insert_metric(
    metric_name text,
    metric_value double precision,
    session_id text default null,
    tags jsonb default '{}',
    measured_at timestamptz default null
)
returns bigint
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.metrics (metric_name, metric_value, session_id, tags, created_at)
    values ($1, $2, $3, coalesce($4, '{}'), coalesce($5, pg_catalog.now()))
    returning metric_id;
$function$;

comment on function toolsdb.insert_metric(text, double precision, text, jsonb, timestamptz) is
'Records a measurement (seed 001''s insert_metric), now unless measured_at says when. Returns its metric_id.';

create or replace function toolsdb.get_metric_stats(
    metric_name text,
    since timestamptz default null,
    until timestamptz default null
)
returns table (
    metric_name text,
    count bigint,
    avg double precision,
    min double precision,
    max double precision,
    p50 double precision,
    p95 double precision,
    p99 double precision
)
language sql
stable
set search_path = ''
set work_mem = '64MB'
as $function$
    select
        $1,
        pg_catalog.count(*),
        pg_catalog.avg(m.metric_value),
        pg_catalog.min(m.metric_value),
        pg_catalog.max(m.metric_value),
        pg_catalog.percentile_cont(0.5) within group (order by m.metric_value),
        pg_catalog.percentile_cont(0.95) within group (order by m.metric_value),
        pg_catalog.percentile_cont(0.99) within group (order by m.metric_value)
    from toolsdb.metrics as m
    where m.metric_name = $1
        and m.created_at >= coalesce($2, '-infinity')
        and m.created_at < coalesce($3, 'infinity');
$function$;

comment on function toolsdb.get_metric_stats(text, timestamptz, timestamptz) is
'Statistics of one metric over [since, until) (seed 001''s get_metric_stats; default: all kept '
'rows): count, avg, min, max and the continuous percentiles p50, p95, p99 (null when there are '
'no rows). Reads only the window''s daily partitions; runs with work_mem 64MB so the percentile '
'sort of a week of values stays in memory.';

-- ---- from schema/46_import_v1.sql ----

create or replace function toolsdb_private.v1_time(raw jsonb)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $function$
begin
    if raw is null or raw = 'null' then
        return null;
    end if;
    if pg_catalog.jsonb_typeof(raw) = 'number' then
        -- Unix seconds, or milliseconds when too large to be seconds.
        return pg_catalog.to_timestamp(
            case when (raw #>> '{}')::numeric > 100000000000 then (raw #>> '{}')::numeric / 1000
            else (raw #>> '{}')::numeric end
        );
    end if;
    if (raw #>> '{}') ~ '^[0-9]+(\.[0-9]+)?$' then
        return toolsdb_private.v1_time(((raw #>> '{}')::numeric)::text::jsonb);
    end if;
    return (raw #>> '{}')::timestamptz;
exception
    when invalid_datetime_format or datetime_field_overflow or invalid_text_representation then
        raise exception 'not a time: %', raw
            using errcode = 'invalid_datetime_format';
end;
$function$;

comment on function toolsdb_private.v1_time(jsonb) is
'A V1 time: Unix seconds (or milliseconds) as a number or digits, or an ISO 8601 string; null for '
'null. Anything else is invalid_datetime_format (22007).';

create or replace function toolsdb.import_v1_tool_request(
    session_id text,
    tool_request jsonb,
    requested_at timestamptz,
    source_key text
)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
declare
    new_id bigint;
begin
    if tool_request is null or pg_catalog.jsonb_typeof(tool_request) <> 'object' then
        raise exception 'a V1 tool request is a JSON object, not %', coalesce(pg_catalog.jsonb_typeof(tool_request), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    insert into toolsdb.sessions as s (session_id, cwd, started_at, last_activity_at)
    values (
        import_v1_tool_request.session_id,
        nullif(tool_request ->> 'cwd', ''),
        least(requested_at, pg_catalog.now()),
        least(requested_at, pg_catalog.now())
    )
    on conflict on constraint sessions_pkey do update
    set started_at = least(s.started_at, excluded.started_at);
    insert into toolsdb.events (session_id, event_type, payload, idempotency_key, created_at, visible_at, processed_at)
    values (
        import_v1_tool_request.session_id,
        coalesce(nullif(tool_request ->> 'hook_event_name', ''), 'PreToolUse'),
        tool_request || pg_catalog.jsonb_build_object('v1_source', source_key),
        'v1:tool_request:' || source_key,
        requested_at,
        requested_at,
        requested_at
    )
    on conflict on constraint events_idempotency_key_key do nothing
    returning event_id into new_id;
    return new_id is not null;
end;
$function$;

comment on function toolsdb.import_v1_tool_request(text, jsonb, timestamptz, text) is
'Imports one V1 tool request file (seed 001''s import_v1_tool_request) as an already processed '
'event of its session (created if missing) at requested_at; source_key (the file name) makes it '
'idempotent. Returns true when imported, false when it was already there.';

create or replace function toolsdb.import_v1_notification_state(state jsonb, source_key text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
declare
    sid text := coalesce(state ->> 'session_id', state ->> 'sessionId');
    sent boolean;
    created timestamptz;
    tries integer;
    new_id bigint;
begin
    if state is null or pg_catalog.jsonb_typeof(state) <> 'object' then
        raise exception 'a V1 notification state is a JSON object, not %', coalesce(pg_catalog.jsonb_typeof(state), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if sid is null or sid = '' then
        raise exception 'the V1 notification state has no session_id'
            using errcode = 'invalid_parameter_value';
    end if;
    sent := pg_catalog.lower(coalesce(state ->> 'status', '')) = 'sent'
        or coalesce(pg_catalog.jsonb_typeof(state -> 'sent_at'), 'null') <> 'null';
    created := least(
        coalesce(toolsdb_private.v1_time(coalesce(state -> 'created_at', state -> 'timestamp')), pg_catalog.now()),
        pg_catalog.now()
    );
    tries := greatest(coalesce((state ->> 'retry_count')::integer, (state ->> 'attempts')::integer, 0), 0);
    insert into toolsdb.sessions as s (session_id, started_at, last_activity_at)
    values (sid, created, created)
    on conflict on constraint sessions_pkey do update
    set started_at = least(s.started_at, excluded.started_at);
    -- Delivered ones are history; anything else becomes a dead letter, so a
    -- stale V1 notification is never sent by surprise: redrive it if wanted.
    insert into toolsdb.notifications (
        session_id, notification_type, backend, status, payload, attempts, max_attempts, last_error,
        next_attempt_at, idempotency_key, created_at, sent_at
    )
    values (
        sid,
        coalesce(state ->> 'notification_type', state ->> 'type', 'notification'),
        pg_catalog.lower(coalesce(state ->> 'backend', 'slack')),
        case when sent then 'sent' else 'dead' end,
        coalesce(case when pg_catalog.jsonb_typeof(state -> 'payload') = 'object' then state -> 'payload' end, '{}')
        || pg_catalog.jsonb_build_object('v1_state', state),
        least(tries, 100),
        greatest(least(tries, 100), 3),
        case
            when sent then null
            else pg_catalog.left(
                'imported from V1 as ' || coalesce(state ->> 'status', 'unknown')
                || coalesce(': ' || nullif(state ->> 'error', ''), ''),
                4000
            )
        end,
        created,
        'v1:notification:' || coalesce(state ->> 'id', source_key || ':' || pg_catalog.md5(state::text)),
        created,
        case when sent then greatest(created, coalesce(toolsdb_private.v1_time(state -> 'sent_at'), created)) end
    )
    on conflict on constraint notifications_idempotency_key_key do nothing
    returning notification_id into new_id;
    return new_id is not null;
end;
$function$;

comment on function toolsdb.import_v1_notification_state(jsonb, text) is
'Imports one V1 notification state (seed 001''s import_v1_notification_state): sent ones as sent, '
'any other as a dead letter (last_error says so; redrive_notifications() sends it), so nothing '
'stale goes out by surprise. The whole state is kept in payload.v1_state. Idempotent by the '
'state''s id (else source_key and a hash of the state). Returns true when imported.';
