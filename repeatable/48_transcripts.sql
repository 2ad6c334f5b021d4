-- repeatable/48_transcripts.sql
-- Tier 40: what Claude Code's transcripts bring in. toolsdb.transcript_ingest()
-- takes a batch of a transcript file's lines and holds every rule: which
-- lines are messages and of what kind, one usage row per API response
-- (largest snapshot wins, as ccusage counts), the sessions it creates, the
-- price of each response on its day, and the file's offset, which advances
-- in the same transaction (an import killed anywhere repeats nothing and
-- loses nothing). toolsdb.reprice_usage() prices again after a price change
-- (a trigger on model_prices and model_aliases calls it).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/48_transcripts.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.transcript_files
for each row
execute function toolsdb_private.tg__timestamps();

create or replace trigger _100_timestamps
before insert or update on toolsdb.api_usage
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.isolate_rows('toolsdb.api_usage', 'session_id');

select toolsdb.isolate_rows('toolsdb.transcript_files', 'session_id');

create or replace function toolsdb_private.transcript_count(value jsonb)
returns bigint
language sql
immutable
parallel safe
set search_path = ''
as $function$
    select case
        when pg_catalog.jsonb_typeof(value) = 'number' and value::text ~ '^[0-9]{1,15}$' then value::text::bigint
        else 0
    end;
$function$;

comment on function toolsdb_private.transcript_count(jsonb) is
'A token count from a transcript''s usage object: a whole number of at most 15 digits, else 0.';

create or replace function toolsdb_private.transcript_time(value text)
returns timestamptz
language sql
immutable
parallel safe
set search_path = ''
as $function$
    select case
        when value ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)$'
            then value::timestamptz
    end;
$function$;

comment on function toolsdb_private.transcript_time(text) is
'A transcript line''s timestamp (ISO 8601 with Z or an offset) as timestamptz; null when it is not one.';

create or replace function toolsdb_private.transcript_text(content jsonb)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $function$
    -- left() counts characters from the start, so it is skipped where the
    -- bytes alone show the text is short enough (no more characters than
    -- bytes); offset 0 keeps the text computed once, not once per use.
    select case when pg_catalog.octet_length(x.full_text) <= 1000000 then x.full_text
        else pg_catalog.left(x.full_text, 1000000) end
    from (select
        case pg_catalog.jsonb_typeof(content)
            when 'string' then content #>> '{}'
            when 'array' then (
                select coalesce(pg_catalog.string_agg(t.part, e'\n' order by t.n), '')
                from (
                    select
                        b.n,
                        case b.block ->> 'type'
                            when 'text' then b.block ->> 'text'
                            when 'thinking' then b.block ->> 'thinking'
                            when 'tool_result' then case pg_catalog.jsonb_typeof(b.block -> 'content')
                                when 'string' then b.block ->> 'content'
                                when 'array' then (
                                    select pg_catalog.string_agg(c.value ->> 'text', e'\n')
                                    from pg_catalog.jsonb_array_elements(b.block -> 'content') as c (value)
                                    where c.value ->> 'type' = 'text'
                                )
                            end
                        end as part
                    from pg_catalog.jsonb_array_elements(content) with ordinality as b (block, n)
                ) as t
                where t.part is not null
            )
            else ''
        end as full_text
        offset 0
    ) as x;
$function$;

comment on function toolsdb_private.transcript_text(jsonb) is
'The text of a transcript message''s content: the string itself, or its text, thinking and '
'tool_result blocks'' text joined by newlines; at most 1,000,000 characters.';

create or replace function toolsdb_private.transcript_tool_calls(content jsonb)
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $function$
    select case when pg_catalog.jsonb_typeof(content) = 'array' then coalesce((
        select pg_catalog.jsonb_agg(
            case b.block ->> 'type'
                when 'tool_result' then pg_catalog.jsonb_build_object(
                    'tool_use_id', b.block -> 'tool_use_id',
                    'is_error', coalesce(b.block -> 'is_error', 'false')
                )
                else pg_catalog.jsonb_build_object(
                    'id', b.block -> 'id', 'name', b.block -> 'name', 'input', b.block -> 'input'
                )
            end
            order by b.n
        )
        from pg_catalog.jsonb_array_elements(content) with ordinality as b (block, n)
        where b.block ->> 'type' in ('tool_use', 'server_tool_use', 'tool_result')
    ), '[]') else '[]' end;
$function$;

comment on function toolsdb_private.transcript_tool_calls(jsonb) is
'The tool calls of a transcript message''s content, a JSON array: {id, name, input} per tool_use '
'block, {tool_use_id, is_error} per tool_result block; [] when none.';

create or replace function toolsdb_private.transcript_lines(lines jsonb, file_session text, file_subagent text)
returns table (
    byte_offset bigint,
    session_id text,
    source_uuid uuid,
    parent_uuid uuid,
    logical_parent_uuid uuid,
    occurred_at timestamptz,
    role text,
    kind text,
    content text,
    tool_calls jsonb,
    tokens integer,
    model text,
    api_message_id text,
    request_id text,
    stop_reason text,
    is_sidechain boolean,
    subagent_id text,
    metadata jsonb,
    usage jsonb,
    given_cost jsonb
)
language sql
immutable
set search_path = ''
as $function$
    with l as (
        select
            (x.value ->> 'o')::bigint as byte_offset,
            x.value -> 'l' as j,
            x.value -> 'l' -> 'message' as m,
            x.value -> 'l' ->> 'type' as line_type
        from pg_catalog.jsonb_array_elements(lines) as x (value)
        where pg_catalog.jsonb_typeof(x.value -> 'l') = 'object'
    ),
    u as (
        select
            l.*,
            case
                when l.line_type = 'system' then 'compact_boundary'
                when l.line_type = 'user' and coalesce(l.j ->> 'isCompactSummary', '') = 'true' then 'compact_summary'
                when l.line_type = 'user' and pg_catalog.jsonb_typeof(l.m -> 'content') = 'array'
                    and pg_catalog.jsonb_array_length(l.m -> 'content') > 0
                    and not pg_catalog.jsonb_path_exists(l.m -> 'content', '$[*] ? (@.type != "tool_result")')
                    then 'tool_result'
                when l.line_type = 'user' then 'prompt'
                when coalesce(l.j ->> 'isApiErrorMessage', '') = 'true' or l.m ->> 'model' = '<synthetic>'
                    then 'api_error'
                when l.m #>> '{content,0,type}' in ('thinking', 'redacted_thinking') then 'thinking'
                when l.m #>> '{content,0,type}' in ('tool_use', 'server_tool_use') then 'tool_use'
                else 'text'
            end as kind
        from l
        where
            (
                l.line_type in ('user', 'assistant')
                or (l.line_type = 'system' and l.j ->> 'subtype' = 'compact_boundary')
            )
            and l.j ->> 'uuid' ~ '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'
    )
    select
        u.byte_offset,
        coalesce(
            case
                when char_length(u.j ->> 'sessionId') between 1 and 200 and u.j ->> 'sessionId' !~ '[[:cntrl:]]'
                    then u.j ->> 'sessionId'
            end,
            file_session
        ),
        (u.j ->> 'uuid')::uuid,
        case when u.j ->> 'parentUuid' ~ '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$'
            then (u.j ->> 'parentUuid')::uuid end,
        case when u.j ->> 'logicalParentUuid' ~ '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$'
            then (u.j ->> 'logicalParentUuid')::uuid end,
        toolsdb_private.transcript_time(u.j ->> 'timestamp'),
        case
            when u.kind = 'compact_boundary' then 'system'
            when u.kind = 'tool_result' then 'tool'
            when u.line_type = 'assistant' then 'assistant'
            else 'user'
        end,
        u.kind,
        case when u.kind = 'compact_boundary' then pg_catalog.left(coalesce(u.j ->> 'content', ''), 1000000)
            else toolsdb_private.transcript_text(u.m -> 'content') end,
        toolsdb_private.transcript_tool_calls(u.m -> 'content'),
        case when u.line_type = 'assistant' and pg_catalog.jsonb_typeof(u.m -> 'usage') = 'object'
            then least(toolsdb_private.transcript_count(u.m -> 'usage' -> 'output_tokens'), 2147483647)::integer
        end,
        case when char_length(u.m ->> 'model') between 1 and 200 then u.m ->> 'model' end,
        case when char_length(u.m ->> 'id') between 1 and 200 and u.line_type = 'assistant' then u.m ->> 'id' end,
        case when char_length(u.j ->> 'requestId') between 1 and 200 then u.j ->> 'requestId' end,
        case when char_length(u.m ->> 'stop_reason') between 1 and 100 then u.m ->> 'stop_reason' end,
        coalesce(u.j ->> 'isSidechain', '') = 'true',
        coalesce(
            case when char_length(u.j ->> 'agentId') between 1 and 200 then u.j ->> 'agentId' end, file_subagent
        ),
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'cwd', u.j -> 'cwd',
            'git_branch', u.j -> 'gitBranch',
            'version', u.j -> 'version',
            'prompt_id', u.j -> 'promptId',
            'byte_offset', u.byte_offset,
            'compact', u.j -> 'compactMetadata'
        )),
        case when u.line_type = 'assistant' and u.kind <> 'api_error' and pg_catalog.jsonb_typeof(u.m -> 'usage') = 'object'
            then u.m -> 'usage' end,
        case when pg_catalog.jsonb_typeof(u.j -> 'costUSD') = 'number' then u.j -> 'costUSD' end
    from u;
$function$;

comment on function toolsdb_private.transcript_lines(jsonb, text, text) is
'The conversation lines of a batch of transcript lines ([{"o": byte offset, "l": line object}]) as '
'message rows: user prompts, tool results, compaction summaries, assistant blocks, compaction '
'boundaries; other lines (progress, snapshots, summaries, other system lines) and lines without a '
'uuid are left out. Pure: toolsdb.transcript_ingest() calls it once per batch.';

create or replace function toolsdb.transcript_ingest(file jsonb, lines jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    host text := file ->> 'source_host';
    file_path text := file ->> 'path';
    file_session text := case
        when char_length(file ->> 'session_id') between 1 and 200 and file ->> 'session_id' !~ '[[:cntrl:]]'
            then file ->> 'session_id'
    end;
    file_subagent text := case when char_length(file ->> 'subagent_id') between 1 and 200 then file ->> 'subagent_id' end;
    start_at bigint;
    end_at bigint;
    rewrite boolean := coalesce(file ->> 'rewrite', '') = 'true';
    uuid_pattern constant text := '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$';
    state toolsdb.transcript_files;
    bases jsonb;
    added_messages bigint := 0;
    added_usage bigint := 0;
    added_errors bigint := 0;
    created_sessions bigint := 0;
    -- now(), read once: Citus refuses it in a CASE or COALESCE of a statement
    -- on its tables (docs/citus.md).
    imported_at constant timestamptz := pg_catalog.now();
    locked_session text;
    known jsonb;
    message_ids jsonb;
    fresh_count integer;
    fresh_last timestamptz;
    base integer;
    -- The batch's message rows (toolsdb_private.transcript_lines), computed
    -- once and kept column by column: each statement below unnests the
    -- columns it needs instead of parsing the batch again.
    l_offset bigint[];
    l_session text[];
    l_uuid uuid[];
    l_parent uuid[];
    l_logical_parent uuid[];
    l_at timestamptz[];
    l_role text[];
    l_kind text[];
    l_content text[];
    l_tool_calls jsonb[];
    l_tokens integer[];
    l_model text[];
    l_api_message text[];
    l_request text[];
    l_stop_reason text[];
    l_sidechain boolean[];
    l_subagent text[];
    l_metadata jsonb[];
    l_usage jsonb[];
    l_given_cost jsonb[];
begin
    if file is null or pg_catalog.jsonb_typeof(file) <> 'object' then
        raise exception 'a transcript batch''s file is a JSON object' using errcode = 'invalid_parameter_value';
    end if;
    if lines is null or pg_catalog.jsonb_typeof(lines) <> 'array' then
        raise exception 'a transcript batch''s lines are a JSON array' using errcode = 'invalid_parameter_value';
    end if;
    if coalesce(char_length(host), 0) not between 1 and 300 or coalesce(char_length(file_path), 0) not between 1 and 4096 then
        raise exception 'a transcript batch names its file: source_host (1 to 300 characters) and path (1 to 4096)'
            using errcode = 'invalid_parameter_value';
    end if;
    if coalesce(file ->> 'start_offset', '') !~ '^\d{1,15}$' or coalesce(file ->> 'end_offset', '') !~ '^\d{1,15}$' then
        raise exception 'a transcript batch gives start_offset and end_offset as byte offsets'
            using errcode = 'invalid_parameter_value';
    end if;
    start_at := (file ->> 'start_offset')::bigint;
    end_at := (file ->> 'end_offset')::bigint;
    if end_at < start_at or (rewrite and start_at <> 0) then
        raise exception 'a transcript batch''s end_offset (%) is at or after its start_offset (%), which is 0 for a rewrite',
            end_at, start_at
            using errcode = 'invalid_parameter_value';
    end if;

    -- The file's state, locked: concurrent imports of one file (a hook and a
    -- cron run) take turns, and the one that finds the offset moved on is told
    -- where it now is and adds nothing.
    -- (Looked up first: an insert that conflicts would still use up an id.)
    select f.* into state
    from toolsdb.transcript_files as f
    where f.source_host = host and f.path = file_path
    for update;
    if not found then
        insert into toolsdb.transcript_files (source_host, path, session_id, subagent_id)
        values (host, file_path, null, file_subagent)
        on conflict on constraint transcript_files_source_host_path_key do nothing;
        select f.* into state
        from toolsdb.transcript_files as f
        where f.source_host = host and f.path = file_path
        for update;
    end if;
    if state.read_offset <> start_at and not rewrite then
        return pg_catalog.jsonb_build_object('status', 'conflict', 'expected_offset', state.read_offset);
    end if;

    select
        pg_catalog.array_agg(t.byte_offset), pg_catalog.array_agg(t.session_id), pg_catalog.array_agg(t.source_uuid),
        pg_catalog.array_agg(t.parent_uuid), pg_catalog.array_agg(t.logical_parent_uuid),
        pg_catalog.array_agg(t.occurred_at), pg_catalog.array_agg(t.role), pg_catalog.array_agg(t.kind),
        pg_catalog.array_agg(t.content), pg_catalog.array_agg(t.tool_calls), pg_catalog.array_agg(t.tokens),
        pg_catalog.array_agg(t.model), pg_catalog.array_agg(t.api_message_id), pg_catalog.array_agg(t.request_id),
        pg_catalog.array_agg(t.stop_reason), pg_catalog.array_agg(t.is_sidechain), pg_catalog.array_agg(t.subagent_id),
        pg_catalog.array_agg(t.metadata), pg_catalog.array_agg(t.usage), pg_catalog.array_agg(t.given_cost)
    into
        l_offset, l_session, l_uuid, l_parent, l_logical_parent, l_at, l_role, l_kind, l_content, l_tool_calls,
        l_tokens, l_model, l_api_message, l_request, l_stop_reason, l_sidechain, l_subagent, l_metadata, l_usage,
        l_given_cost
    from toolsdb_private.transcript_lines(lines, file_session, file_subagent) as t;

    -- The sessions of the lines: created if unknown (a file from before the
    -- hooks), then locked in a fixed order, so the lines already stored are
    -- seen and positions are reserved without a race. Each statement that
    -- reads or writes sessions or messages names one session: Citus runs it
    -- on that session's shard (docs/citus.md).
    with s as (
        select
            t.session_id,
            pg_catalog.min(t.occurred_at) as first_at,
            pg_catalog.max(t.occurred_at) as last_at,
            (pg_catalog.array_agg(t.metadata ->> 'cwd') filter (where char_length(t.metadata ->> 'cwd') between 1 and 4096))[1] as cwd,
            (pg_catalog.array_agg(t.metadata ->> 'git_branch') filter (
                where char_length(t.metadata ->> 'git_branch') between 1 and 255
            ))[1] as git_branch
        from rows from (
            pg_catalog.unnest(l_session),
            pg_catalog.unnest(l_at),
            pg_catalog.unnest(l_metadata)
        ) as t (session_id, occurred_at, metadata)
        where t.session_id is not null
        group by t.session_id
    )
    insert into toolsdb.sessions as x (
        session_id, cwd, git_branch, transcript_path, user_id, project_id, agent_id, started_at, last_activity_at
    )
    select
        s.session_id, s.cwd, s.git_branch,
        case when file_subagent is null and s.session_id = file_session then pg_catalog.left(file_path, 4096) end,
        (select u.user_id from toolsdb.users as u where file ->> 'user_id' ~ uuid_pattern and u.user_id = (file ->> 'user_id')::uuid),
        (select p.project_id from toolsdb.projects as p
            where file ->> 'project_id' ~ uuid_pattern and p.project_id = (file ->> 'project_id')::uuid),
        (select a.agent_id from toolsdb.agents as a where file ->> 'agent_id' ~ uuid_pattern and a.agent_id = (file ->> 'agent_id')::uuid),
        coalesce(s.first_at, imported_at),
        coalesce(s.last_at, imported_at)
    from s
    order by s.session_id
    on conflict on constraint sessions_pkey do nothing;
    get diagnostics created_sessions = row_count;

    -- The lines already stored, as "session uuid" keys.
    known := '{}';
    foreach locked_session in array coalesce(
        (select pg_catalog.array_agg(distinct t.session_id order by t.session_id)
            from pg_catalog.unnest(l_session) as t (session_id) where t.session_id is not null),
        '{}'
    ) loop
        perform 1 from toolsdb.sessions as s where s.session_id = locked_session for update;
        select known || coalesce(pg_catalog.jsonb_object_agg(locked_session || ' ' || m.source_uuid::text, true), '{}')
        into known
        from toolsdb.messages as m
        where m.session_id = locked_session and m.source_uuid = any(l_uuid);
    end loop;

    -- Reserve the positions of the new lines, one update per session.
    bases := '{}';
    for locked_session, fresh_count, fresh_last in
        select t.session_id, pg_catalog.count(*), pg_catalog.max(t.occurred_at)
        from rows from (
            pg_catalog.unnest(l_session),
            pg_catalog.unnest(l_uuid),
            pg_catalog.unnest(l_at)
        ) as t (session_id, source_uuid, occurred_at)
        where t.session_id is not null and not coalesce(known ? (t.session_id || ' ' || t.source_uuid::text), false)
        group by t.session_id
        order by t.session_id
    loop
        update toolsdb.sessions as s
        set message_count = s.message_count + fresh_count,
            last_activity_at = greatest(s.last_activity_at, fresh_last)
        where s.session_id = locked_session
        returning s.message_count - fresh_count into base;
        bases := bases || pg_catalog.jsonb_build_object(locked_session, base);
    end loop;

    perform pg_catalog.set_config('toolsdb_private.positions_reserved', 'on', true);
    with fresh as (
        select
            t.*,
            pg_catalog.row_number() over (partition by t.session_id order by t.byte_offset) as n
        from rows from (
            pg_catalog.unnest(l_offset),
            pg_catalog.unnest(l_session),
            pg_catalog.unnest(l_uuid),
            pg_catalog.unnest(l_parent),
            pg_catalog.unnest(l_logical_parent),
            pg_catalog.unnest(l_at),
            pg_catalog.unnest(l_role),
            pg_catalog.unnest(l_kind),
            pg_catalog.unnest(l_content),
            pg_catalog.unnest(l_tool_calls),
            pg_catalog.unnest(l_tokens),
            pg_catalog.unnest(l_model),
            pg_catalog.unnest(l_api_message),
            pg_catalog.unnest(l_request),
            pg_catalog.unnest(l_stop_reason),
            pg_catalog.unnest(l_sidechain),
            pg_catalog.unnest(l_subagent),
            pg_catalog.unnest(l_metadata)
        ) as t (
            byte_offset, session_id, source_uuid, parent_uuid, logical_parent_uuid, occurred_at, role, kind, content,
            tool_calls, tokens, model, api_message_id, request_id, stop_reason, is_sidechain, subagent_id, metadata
        )
        where t.session_id is not null and not coalesce(known ? (t.session_id || ' ' || t.source_uuid::text), false)
    )
    insert into toolsdb.messages (
        session_id, position, role, content, tool_calls, tokens, metadata, kind, source_uuid, parent_uuid,
        logical_parent_uuid, occurred_at, model, api_message_id, request_id, stop_reason, is_sidechain,
        subagent_id
    )
    select
        f.session_id, (bases ->> f.session_id)::integer + f.n::integer, f.role, f.content, f.tool_calls, f.tokens,
        f.metadata, f.kind, f.source_uuid, f.parent_uuid, f.logical_parent_uuid, f.occurred_at, f.model,
        f.api_message_id, f.request_id, f.stop_reason, f.is_sidechain, f.subagent_id
    from fresh as f
    order by f.session_id, f.n;
    get diagnostics added_messages = row_count;
    perform pg_catalog.set_config('toolsdb_private.positions_reserved', '', true);

    -- The messages of the batch's lines, stored now or before, by "session uuid".
    message_ids := '{}';
    foreach locked_session in array coalesce(
        (select pg_catalog.array_agg(distinct t.session_id)
            from rows from (pg_catalog.unnest(l_session), pg_catalog.unnest(l_usage)) as t (session_id, usage)
            where t.session_id is not null and t.usage is not null),
        '{}'
    ) loop
        select message_ids || coalesce(
            pg_catalog.jsonb_object_agg(locked_session || ' ' || m.source_uuid::text, m.message_id), '{}'
        )
        into message_ids
        from toolsdb.messages as m
        where m.session_id = locked_session and m.source_uuid = any(l_uuid);
    end loop;

    -- One usage row per API response: the largest snapshot of the batch,
    -- then of all batches (more output tokens, then more tokens in all; on a
    -- tie the line read first stays), as ccusage 20.0.24 counts.
    with r as (
        select
            t.session_id,
            t.source_uuid,
            t.occurred_at,
            coalesce(t.model, 'unknown') as model_name,
            case when t.usage ->> 'speed' = 'fast' then 'fast' else 'standard' end as speed,
            case when char_length(t.usage ->> 'service_tier') between 1 and 50 then t.usage ->> 'service_tier' end
                as service_tier,
            t.is_sidechain,
            t.subagent_id,
            -- message.id names one API response: lines without requestId
            -- (older versions) are still one response per message.id.
            case
                when t.api_message_id is not null and t.request_id is not null
                    then t.api_message_id || ':' || t.request_id
                when t.api_message_id is not null then 'msg:' || t.api_message_id
                else 'line:' || t.source_uuid::text
            end as usage_key,
            toolsdb_private.transcript_count(t.usage -> 'input_tokens') as input_tokens,
            toolsdb_private.transcript_count(t.usage -> 'output_tokens') as output_tokens,
            toolsdb_private.transcript_count(t.usage -> 'cache_creation' -> 'ephemeral_1h_input_tokens') as w1h,
            case
                when t.usage ? 'cache_creation_input_tokens'
                    then toolsdb_private.transcript_count(t.usage -> 'cache_creation_input_tokens')
                else toolsdb_private.transcript_count(t.usage -> 'cache_creation' -> 'ephemeral_5m_input_tokens')
                    + toolsdb_private.transcript_count(t.usage -> 'cache_creation' -> 'ephemeral_1h_input_tokens')
            end as cache_creation,
            toolsdb_private.transcript_count(t.usage -> 'cache_read_input_tokens') as cache_read_tokens,
            least(toolsdb_private.transcript_count(t.usage -> 'server_tool_use' -> 'web_search_requests'), 1000000)
                as web_search_requests,
            least(toolsdb_private.transcript_count(t.usage -> 'server_tool_use' -> 'web_fetch_requests'), 1000000)
                as web_fetch_requests,
            case when t.given_cost::text ~ '^\d{1,7}(\.\d+)?$' then round(t.given_cost::text::numeric, 6) end as given_cost,
            t.byte_offset
        from rows from (
            pg_catalog.unnest(l_offset),
            pg_catalog.unnest(l_session),
            pg_catalog.unnest(l_uuid),
            pg_catalog.unnest(l_at),
            pg_catalog.unnest(l_model),
            pg_catalog.unnest(l_api_message),
            pg_catalog.unnest(l_request),
            pg_catalog.unnest(l_sidechain),
            pg_catalog.unnest(l_subagent),
            pg_catalog.unnest(l_usage),
            pg_catalog.unnest(l_given_cost)
        ) as t (
            byte_offset, session_id, source_uuid, occurred_at, model, api_message_id, request_id, is_sidechain,
            subagent_id, usage, given_cost
        )
        where t.usage is not null and t.occurred_at is not null and t.session_id is not null
    ),
    w as (
        select distinct on (r.usage_key)
            r.*,
            least(r.w1h, r.cache_creation) as cache_write_1h_tokens,
            r.cache_creation - least(r.w1h, r.cache_creation) as cache_write_5m_tokens
        from r
        order by
            r.usage_key, r.output_tokens desc, r.input_tokens + r.cache_creation + r.cache_read_tokens desc,
            r.byte_offset
    ),
    upserted as (
        insert into toolsdb.api_usage as a (
            usage_key, session_id, message_id, occurred_at, model_name, speed, service_tier, is_sidechain,
            subagent_id, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
            cache_read_tokens, web_search_requests, web_fetch_requests, cost_usd, given_cost_usd, priced_from
        )
        select
            w.usage_key, w.session_id,
            (message_ids ->> (w.session_id || ' ' || w.source_uuid::text))::uuid,
            w.occurred_at, w.model_name, w.speed, w.service_tier, w.is_sidechain, w.subagent_id, w.input_tokens,
            w.output_tokens, w.cache_write_5m_tokens, w.cache_write_1h_tokens, w.cache_read_tokens,
            w.web_search_requests, w.web_fetch_requests, c.cost_usd, w.given_cost, c.priced_from
        from w
        left join lateral toolsdb.usage_cost(
            'anthropic', w.model_name, w.occurred_at, w.input_tokens, w.output_tokens, w.cache_write_5m_tokens,
            w.cache_write_1h_tokens, w.cache_read_tokens, w.speed
        ) as c on true
        order by w.usage_key
        on conflict on constraint api_usage_pkey do update
        set message_id = excluded.message_id,
            occurred_at = excluded.occurred_at,
            model_name = excluded.model_name,
            speed = excluded.speed,
            service_tier = excluded.service_tier,
            input_tokens = excluded.input_tokens,
            output_tokens = excluded.output_tokens,
            cache_write_5m_tokens = excluded.cache_write_5m_tokens,
            cache_write_1h_tokens = excluded.cache_write_1h_tokens,
            cache_read_tokens = excluded.cache_read_tokens,
            web_search_requests = excluded.web_search_requests,
            web_fetch_requests = excluded.web_fetch_requests,
            cost_usd = excluded.cost_usd,
            given_cost_usd = excluded.given_cost_usd,
            priced_from = excluded.priced_from
        where
            excluded.output_tokens > a.output_tokens
            or (
                excluded.output_tokens = a.output_tokens
                and excluded.input_tokens + excluded.cache_write_5m_tokens + excluded.cache_write_1h_tokens
                + excluded.cache_read_tokens
                > a.input_tokens + a.cache_write_5m_tokens + a.cache_write_1h_tokens + a.cache_read_tokens
            )
        returning 1
    )
    select pg_catalog.count(*) into added_usage from upserted;

    -- Lines that could not be read, named by the client.
    if pg_catalog.jsonb_typeof(file -> 'errors') = 'array' then
        with e as (
            insert into toolsdb.transcript_errors as x (file_id, byte_offset, line_number, error, excerpt)
            select
                state.file_id,
                (v.value ->> 'offset')::bigint,
                greatest((v.value ->> 'line')::bigint, 1),
                pg_catalog.left(coalesce(nullif(v.value ->> 'error', ''), 'unreadable'), 500),
                pg_catalog.left(coalesce(v.value ->> 'excerpt', ''), 200)
            from pg_catalog.jsonb_array_elements(file -> 'errors') as v (value)
            where v.value ->> 'offset' ~ '^\d{1,15}$' and v.value ->> 'line' ~ '^\d{1,15}$'
            on conflict on constraint transcript_errors_pkey do nothing
            returning 1
        )
        select pg_catalog.count(*) into added_errors from e;
    end if;

    select s.session_id into locked_session from toolsdb.sessions as s where s.session_id = file_session;
    update toolsdb.transcript_files as f
    set read_offset = end_at,
        session_id = coalesce(locked_session, f.session_id),
        subagent_id = coalesce(file_subagent, f.subagent_id),
        size_seen = case when file ->> 'size' ~ '^\d{1,15}$' then (file ->> 'size')::bigint else end_at end,
        mtime_seen = toolsdb_private.transcript_time(file ->> 'mtime'),
        head_length = case when file ->> 'head_length' ~ '^\d{1,4}$'
            then least((file ->> 'head_length')::integer, 4096) else 0 end,
        head_hash = case when file ->> 'head_hash' ~ '^[0-9a-f]{64}$' then file ->> 'head_hash' end,
        tail_hash = case when file ->> 'tail_hash' ~ '^[0-9a-f]{64}$' then file ->> 'tail_hash' end,
        lines_read = case when rewrite then 0 else f.lines_read end
        + case when file ->> 'lines' ~ '^\d{1,15}$' then (file ->> 'lines')::bigint else pg_catalog.jsonb_array_length(lines) end,
        malformed_lines = f.malformed_lines + added_errors,
        rewrites = f.rewrites + case when rewrite then 1 else 0 end,
        last_imported_at = case when end_at > start_at then imported_at else f.last_imported_at end
    where f.file_id = state.file_id;

    return pg_catalog.jsonb_build_object(
        'status', 'ok',
        'offset', end_at,
        'file_id', state.file_id,
        'messages', added_messages,
        'usage', added_usage,
        'errors', added_errors,
        'sessions_created', created_sessions
    );
end;
$function$;

comment on function toolsdb.transcript_ingest(jsonb, jsonb) is
'Imports one batch of a Claude Code transcript file. file: {source_host, path, start_offset, '
'end_offset (after the batch''s last whole line), session_id (of the file), subagent_id, rewrite '
'(true: read again from 0), size, mtime, head_length, head_hash, tail_hash, lines, errors: [{offset, '
'line, error, excerpt}], user_id, project_id, agent_id (for sessions it creates)}; lines: [{"o": '
'byte offset, "l": the line''s JSON object}]. When start_offset is not where the file was left '
'(another import moved on), returns {"status": "conflict", "expected_offset": n} and adds nothing. '
'Otherwise adds each conversation line once as a message (kind, role, text, tool calls, model, ids, '
'parent links, sidechain, timestamp), one toolsdb.api_usage row per API response, keeping its '
'largest snapshot, priced on its day, and advances the offset, all in the caller''s transaction; '
'returns {"status": "ok", "offset", "messages", "usage", "errors", "sessions_created"}. Security '
'definer: usage is counted once across sessions the caller may not see.';

create or replace function toolsdb.reprice_usage(model_name text default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    changed bigint;
begin
    with priced as (
        update toolsdb.api_usage as a
        set cost_usd = c.cost_usd,
            priced_from = c.priced_from
        from toolsdb.api_usage as b
        left join lateral toolsdb.usage_cost(
            b.model_provider, b.model_name, b.occurred_at, b.input_tokens, b.output_tokens,
            b.cache_write_5m_tokens, b.cache_write_1h_tokens, b.cache_read_tokens, b.speed
        ) as c on true
        where
            a.usage_key = b.usage_key
            and (reprice_usage.model_name is null or b.model_name = reprice_usage.model_name)
            and (a.cost_usd is distinct from c.cost_usd or a.priced_from is distinct from c.priced_from)
        returning 1
    )
    select pg_catalog.count(*) into changed from priced;
    return changed;
end;
$function$;

comment on function toolsdb.reprice_usage(text) is
'Prices toolsdb.api_usage again at the prices now in the list (all rows, or one model''s), changing '
'only the rows whose cost differs; returns how many changed. Run by the triggers of model_prices and '
'model_aliases, so a price added later prices the responses that had none.';

create or replace function toolsdb_private.tg__reprice_usage()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- On Citus the prices are reference tables, changed on every node; the usage is on the
    -- coordinator, which prices it, and a worker does nothing (docs/citus.md).
    -- (Nested: the catalog exists only in a database with the extension.)
    if pg_catalog.current_setting('citus.version', true) is not null
        and pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') is not null then
        if not exists (select 1 from pg_catalog.pg_dist_local_group as g where g.groupid = 0) then
            return null;
        end if;
    end if;
    perform toolsdb.reprice_usage(null);
    return null;
end;
$function$;

comment on function toolsdb_private.tg__reprice_usage() is
'Statement trigger of toolsdb.model_prices and toolsdb.model_aliases: prices the imported usage again.';

create or replace trigger _900_reprice_usage
after insert or update or delete on toolsdb.model_prices
for each statement
execute function toolsdb_private.tg__reprice_usage();

comment on trigger _900_reprice_usage on toolsdb.model_prices is
'A price added, changed or removed prices the imported usage again (toolsdb.reprice_usage).';

create or replace trigger _900_reprice_usage
after insert or update or delete on toolsdb.model_aliases
for each statement
execute function toolsdb_private.tg__reprice_usage();

comment on trigger _900_reprice_usage on toolsdb.model_aliases is
'An alias added, changed or removed prices the imported usage again (toolsdb.reprice_usage).';
