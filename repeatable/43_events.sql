-- repeatable/43_events.sql
-- Tier 40: raw hook events (the events table) and the queue around
-- them: toolsdb.hook_ingest() stores one Claude Code hook payload and keeps
-- its session up to date in one call; workers claim unprocessed events with
-- leases (get_unprocessed_events) and mark them processed with the claim's
-- token (mark_event_processed; claim_event claims one by id). pg_notify('toolsdb_events') once per
-- inserting statement. Row-level security per session; not audited (the
-- rows are themselves the raw record). See docs/runtime.md.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/43_events.sql.

select toolsdb.isolate_rows('toolsdb.events', 'session_id');

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
        where e.idempotency_key = insert_event.idempotency_key and e.session_id = insert_event.session_id;
        if new_id is null then
            -- Another session's key (row-level security may hide it).
            raise exception 'idempotency_key % is taken by another session', pg_catalog.quote_literal(insert_event.idempotency_key)
                using errcode = 'unique_violation', constraint = 'events_idempotency_key_key';
        end if;
    end if;
    -- The coordinator's wake-up on Citus, as in hook_ingest().
    if pg_catalog.current_setting('citus.version', true) is not null then
        perform pg_catalog.pg_notify('toolsdb_events', '');
    end if;
    return new_id;
end;
$function$;

comment on function toolsdb.insert_event(text, text, jsonb, text) is
'Queues a raw event (insert_event, as in the hook-notification API), creating a bare session row '
'if the session is new. With an idempotency_key already stored, inserts nothing and returns the '
'existing event_id of the same session (unique_violation when the key belongs to another session; on '
'Citus a key is unique within its session).';

-- Its statements are planned once (plan_cache_mode): left to choose, the plan
-- cache re-planned the session upsert on every call (a custom plan each time,
-- about 90 us of the call's 0.64 ms; tests/bench_queue.py).
create or replace function toolsdb.hook_ingest(payload jsonb, context jsonb default '{}')
returns bigint
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
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
    key text := ctx ->> 'idempotency_key';
    received timestamptz;
    new_id bigint;
    -- now(), as a value: Citus takes no function that is not immutable in
    -- an upsert's DO UPDATE SET (docs/citus.md).
    at_now constant timestamptz := pg_catalog.now();
    on_citus constant boolean := pg_catalog.current_setting('citus.version', true) is not null;
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
    if key is not null and (pg_catalog.jsonb_typeof(ctx -> 'idempotency_key') <> 'string'
        or char_length(key) not between 1 and 300) then
        raise exception 'the hook context''s idempotency_key is a string of 1 to 300 characters'
            using errcode = 'invalid_parameter_value';
    end if;
    -- When the event was received, if earlier than now (a replayed spool).
    if ctx ->> 'received_at' is not null then
        if pg_catalog.jsonb_typeof(ctx -> 'received_at') <> 'string'
            or ctx ->> 'received_at' !~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d(:?\d\d)?)$' then
            raise exception 'the hook context''s received_at is an ISO 8601 time with its offset, not %',
                pg_catalog.quote_literal(ctx ->> 'received_at')
                using errcode = 'invalid_parameter_value';
        end if;
        received := least((ctx ->> 'received_at')::timestamptz, at_now);
    end if;
    goes_idle := coalesce(kind = 'Notification' and (
        payload ->> 'notification_type' = 'idle_prompt'
        or (payload ->> 'notification_type' is null and payload ->> 'message' ilike '%waiting for your input%')
    ), false);
    -- Events that happen only while the agent works on a turn (or the user
    -- starts one) wake the session; the others (Stop, StopFailure,
    -- SubagentStop, TeammateIdle, Notification of another type, Setup,
    -- InstructionsLoaded, ConfigChange, FileChanged, Worktree*, unknown
    -- events) leave is_idle as it was. docs/claude-code.md has the reasons.
    wakes := kind in (
        'SessionStart', 'UserPromptSubmit', 'UserPromptExpansion', 'PreToolUse', 'PermissionRequest',
        'PermissionDenied', 'PostToolUse', 'PostToolUseFailure', 'PostToolBatch', 'SubagentStart',
        'TaskCreated', 'TaskCompleted', 'Elicitation', 'ElicitationResult', 'PreCompact', 'PostCompact',
        'CwdChanged', 'MessageDisplay'
    );
    -- Act as the payload's session (row-level security), and put the
    -- caller's setting back afterwards. On Citus through act_as_session(),
    -- which the workers, where the policies of the session's shards read
    -- it, get too (set_config() stays on the coordinator).
    if on_citus then
        perform toolsdb.act_as_session(sid);
    else
        perform pg_catalog.set_config('toolsdb.session_id', sid, true);
    end if;
    -- An event delivered again (a replayed spool, a retried hook): the first
    -- row, and the session is left as that event left it.
    if key is not null then
        select e.event_id into new_id from toolsdb.events as e where e.idempotency_key = key and e.session_id = sid;
        if found then
            if on_citus then
                perform toolsdb.act_as_session(previous_session);
            else
                perform pg_catalog.set_config('toolsdb.session_id', coalesce(previous_session, ''), true);
            end if;
            return new_id;
        end if;
    end if;
    -- Kept only when such a row exists (most events carry none of them).
    -- Looked up here, not in the upsert: Citus routes no subquery in an
    -- INSERT's VALUES (docs/citus.md).
    if ctx_user is not null then
        select u.user_id into ctx_user from toolsdb.users as u where u.user_id = ctx_user;
    end if;
    if ctx_agent is not null then
        select a.agent_id into ctx_agent from toolsdb.agents as a where a.agent_id = ctx_agent;
    end if;
    if ctx_project is not null then
        select p.project_id into ctx_project from toolsdb.projects as p where p.project_id = ctx_project;
    end if;
    insert into toolsdb.sessions as s (
        session_id, cwd, transcript_path, permission_mode, git_branch, terminal_type, terminal_info,
        user_id, agent_id, project_id, last_event_type, is_idle, ended_at, end_reason
    )
    values (
        sid,
        -- A value the session's rules (its domains) would refuse is left out, never the
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
        ctx_user,
        ctx_agent,
        ctx_project,
        kind,
        goes_idle,
        case when kind = 'SessionEnd' then at_now end,
        case when kind = 'SessionEnd' then pg_catalog.left(coalesce(nullif(payload ->> 'reason', ''), 'other'), 100) end
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
        -- An ended session stays as its end left it: only SessionStart (claude
        -- --resume, /clear, compaction) reopens it; any other event arriving
        -- after SessionEnd (a StopFailure, a second SessionEnd) is stored
        -- and changes neither its state nor its last event and activity.
        last_event_type = case
            when s.ended_at is not null and kind <> 'SessionStart' then s.last_event_type
            else excluded.last_event_type
        end,
        last_activity_at = case
            when s.ended_at is not null and kind <> 'SessionStart' then s.last_activity_at
            else greatest(s.last_activity_at, at_now)
        end,
        is_idle = case
            when s.ended_at is not null and kind <> 'SessionStart' then s.is_idle
            when goes_idle then true
            when wakes or kind = 'SessionEnd' then false
            else s.is_idle
        end,
        ended_at = case
            when kind = 'SessionEnd' then coalesce(s.ended_at, greatest(s.started_at, at_now))
            when kind = 'SessionStart' then null
            else s.ended_at
        end,
        end_reason = case
            when kind = 'SessionEnd' then coalesce(s.end_reason, excluded.end_reason)
            when kind = 'SessionStart' then null
            else s.end_reason
        end;
    insert into toolsdb.events (session_id, event_type, payload, idempotency_key, created_at)
    values (sid, kind, payload, key, coalesce(received, at_now))
    on conflict on constraint events_idempotency_key_key do nothing
    returning event_id into new_id;
    if new_id is null then
        -- The same key committed by a concurrent call meanwhile, or held by
        -- another session's event.
        select e.event_id into new_id from toolsdb.events as e where e.idempotency_key = key and e.session_id = sid;
        if new_id is null then
            raise exception 'idempotency_key % is taken by another session', pg_catalog.quote_literal(key)
                using errcode = 'unique_violation', constraint = 'events_idempotency_key_key';
        end if;
    end if;
    if on_citus then
        perform toolsdb.act_as_session(previous_session);
    else
        perform pg_catalog.set_config('toolsdb.session_id', coalesce(previous_session, ''), true);
    end if;
    -- On Citus the events' statement trigger fires on the worker that holds
    -- the shard, where no queue worker listens: wake them from here, on the
    -- coordinator (a setting, read without a query; one node folds this into
    -- the trigger's equal notification).
    if on_citus then
        perform pg_catalog.pg_notify('toolsdb_events', '');
    end if;
    return new_id;
end;
$function$;

comment on function toolsdb.hook_ingest(jsonb, jsonb) is
'Stores one agent hook payload (Claude Code''s JSON on the hook''s stdin) as a raw event and keeps '
'its session current, in one call; returns the event_id. Every event of an open session: last '
'activity, last_event_type, cwd, transcript path and permission mode. Notification of type '
'idle_prompt: idle. Events of a working turn wake it (not idle): SessionStart, UserPromptSubmit, '
'UserPromptExpansion, PreToolUse, PermissionRequest, PermissionDenied, PostToolUse, '
'PostToolUseFailure, PostToolBatch, SubagentStart, TaskCreated, TaskCompleted, Elicitation, '
'ElicitationResult, PreCompact, PostCompact, CwdChanged, MessageDisplay; the others (Stop, '
'StopFailure, SubagentStop, TeammateIdle, Setup, InstructionsLoaded, ConfigChange, FileChanged, '
'WorktreeCreate, WorktreeRemove, other notifications, unknown events) leave idleness as it was. '
'SessionEnd: ended, not idle, with its reason. Only SessionStart reopens an ended session; any '
'other event after SessionEnd (StopFailure, a second SessionEnd) is stored and leaves the session '
'as its end left it (end time and reason, last event and activity, idleness). Unknown events and '
'fields are kept as they are. context (from the hook '
'process): git_branch, terminal_type, terminal_info, and user_id, agent_id, project_id, used when '
'such a row exists; idempotency_key (1-300 characters, such as a spool''s or a retried hook''s id): '
'an event of the same session already stored under it is returned and nothing changes (another '
'session''s key: unique_violation; on Citus a key is unique within its session); received_at (an '
'ISO 8601 time with offset, such as a spool''s): the event''s '
'created_at when earlier than now. A payload that is not an object or has no session_id is invalid_parameter_value '
'(22023). A field the session''s rules would refuse (an odd permission_mode, a cwd over 4096 '
'characters) is left out of the session, and a SessionEnd reason over 100 characters cut there, '
'never in the event. Used by `toolsdb hook`.';

create or replace function toolsdb_private.events_are_distributed()
returns boolean
language plpgsql
stable
set search_path = ''
as $function$
begin
    -- The catalog exists only in a database with the extension (a server
    -- may load Citus for other databases).
    if pg_catalog.to_regclass('pg_catalog.pg_dist_partition') is null then
        return false;
    end if;
    return exists (
        select from pg_catalog.pg_dist_partition as d
        where d.logicalrelid = 'toolsdb.events'::regclass and d.partmethod = 'h'
    );
end;
$function$;

comment on function toolsdb_private.events_are_distributed() is
'True in a Citus database whose toolsdb.events is distributed over the workers (docs/citus.md): its '
'queue is then claimed there, shard by shard.';

-- On Citus: the shards of events on this node, and the lock under which the
-- queue's functions touch one. A shard being moved (citus_move_shard_placement,
-- the rebalancer) is touched only under its metadata lock, which the move
-- holds while it switches the shard to its new node: the lock waits for the
-- switch, and then the shard may be gone from this node.
create or replace function toolsdb_private.local_event_shards()
returns setof bigint
language plpgsql
stable
set search_path = ''
as $function$
begin
    -- plpgsql: its body is planned at the call, where Citus's catalog exists.
    return query
    select s.shardid
    from pg_catalog.pg_dist_shard as s
    inner join pg_catalog.pg_dist_placement as p on p.shardid = s.shardid
    where s.logicalrelid = 'toolsdb.events'::regclass
        and p.groupid = (select g.groupid from pg_catalog.pg_dist_local_group as g);
end;
$function$;

comment on function toolsdb_private.local_event_shards() is
'On Citus: the shards of toolsdb.events that this node holds (its placements).';

create or replace function toolsdb_private.lock_local_event_shard(shard bigint)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
begin
    perform pg_catalog.lock_shard_metadata(5, array[shard]);  -- ShareLock, until the transaction ends
    return exists (
        select from pg_catalog.pg_dist_placement as p
        where p.shardid = shard and p.groupid = (select g.groupid from pg_catalog.pg_dist_local_group as g)
    );
end;
$function$;

comment on function toolsdb_private.lock_local_event_shard(bigint) is
'On Citus: takes a shard of toolsdb.events'' metadata lock in share mode (a shard move''s switch '
'holds it exclusively), and says whether this node still holds the shard. For the queue''s '
'functions, before they touch the shard.';

-- On Citus, with events distributed by session_id: the claim on one node.
-- Each shard of events that the node holds is claimed as one node claims the
-- whole table (oldest first by event_id, for update skip locked, a HOT
-- update), in a random order of shards until the batch is full, each under
-- lock_local_event_shard().
create or replace function toolsdb_private.claim_local_events(
    batch_size integer,
    lease interval,
    worker text,
    token uuid,
    only_event bigint
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    shard bigint;
    relation text;
    part jsonb;
    claimed jsonb := '[]';
    n integer;
    remaining integer := batch_size;
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    for shard in select x from toolsdb_private.local_event_shards() as x order by pg_catalog.random() loop
        if not toolsdb_private.lock_local_event_shard(shard) then
            continue;  -- moved away meanwhile
        end if;
        relation := pg_catalog.format('toolsdb.%I', 'events_' || shard);
        execute pg_catalog.format(
            'with claimed as ('
            ' update %1$s as e'
            ' set visible_at = pg_catalog.now() + $2, attempts = e.attempts + 1, claim_token = $3, claimed_by = $4'
            ' where e.event_id = any(array('
            '  select p.event_id from %1$s as p'
            '  where p.processed_at is null and p.visible_at <= pg_catalog.now()'
            '   and ($5::bigint is null or p.event_id = $5)'
            '  order by p.event_id limit $1 for update skip locked))'
            ' returning e.*)'
            ' select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)), ''[]''), pg_catalog.count(*)::integer'
            ' from claimed as c',
            relation
        )
        using remaining, lease, token, worker, only_event
        into part, n;
        claimed := claimed || part;
        remaining := remaining - n;
        exit when remaining <= 0;
    end loop;
    return claimed;
end;
$function$;

comment on function toolsdb_private.claim_local_events(integer, interval, text, uuid, bigint) is
'On Citus: claims up to batch_size unprocessed events (or only the event only_event) from the '
'shards of toolsdb.events that this node holds, under the lease and claim token given, and returns '
'them as a JSON array. Called on each node by toolsdb_private.claim_distributed_events(); a shard '
'being moved is claimed only under its metadata lock (docs/citus.md). Owner only.';

-- On Citus, with events distributed by session_id: the acknowledgement on
-- one node, as mark_events_processed() does it on one node, over the shards
-- of events that the node holds; how many it marked.
create or replace function toolsdb_private.ack_local_events(event_ids bigint[], token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    shard bigint;
    n integer;
    done integer := 0;
begin
    for shard in select x from toolsdb_private.local_event_shards() as x order by x loop
        if not toolsdb_private.lock_local_event_shard(shard) then
            continue;
        end if;
        execute pg_catalog.format(
            'update toolsdb.%I as e set processed_at = pg_catalog.now(), claim_token = null'
            ' where e.event_id = any($1) and e.claim_token = $2 and e.processed_at is null'
            ' and e.visible_at > pg_catalog.now()',
            'events_' || shard
        )
        using event_ids, token;
        get diagnostics n = row_count;
        done := done + n;
    end loop;
    return done;
end;
$function$;

comment on function toolsdb_private.ack_local_events(bigint[], uuid) is
'On Citus: marks processed the events of event_ids still held by the claim token on the shards of '
'toolsdb.events that this node holds; how many. Called on each node by '
'toolsdb.mark_events_processed(), which checks the total. Owner only.';

-- On Citus: one session id for each node that holds a shard of events, for
-- a statement Citus routes to that node (a session id falls in one shard).
-- toolsdb_private.event_claim_probes keeps a value for each shard, found
-- once (the shards change only when split); the placements are read at each
-- call, so a moved shard's probe leads to its new node.
create or replace function toolsdb_private.event_node_probes()
returns text[]
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    missing bigint[];
    candidate text;
    shard bigint;
    i integer := 0;
begin
    missing := array(
        select s.shardid
        from pg_catalog.pg_dist_shard as s
        where s.logicalrelid = 'toolsdb.events'::regclass
            and not exists (select from toolsdb_private.event_claim_probes as x where x.shardid = s.shardid)
    );
    -- Bounded: a value hashes into a given shard of n with chance 1/n.
    while pg_catalog.cardinality(missing) > 0 and i < 1000000 loop
        i := i + 1;
        candidate := 'toolsdb-probe-' || i;
        shard := pg_catalog.get_shard_id_for_distribution_column('toolsdb.events', candidate);
        if shard = any(missing) then
            insert into toolsdb_private.event_claim_probes (shardid, probe) values (shard, candidate)
            on conflict on constraint event_claim_probes_pkey do nothing;
            insert into toolsdb_private.event_claim_anchors (probe) values (candidate)
            on conflict on constraint event_claim_anchors_pkey do nothing;
            missing := pg_catalog.array_remove(missing, shard);
        end if;
    end loop;
    return array(
        select distinct on (p.groupid) x.probe
        from toolsdb_private.event_claim_probes as x
        inner join pg_catalog.pg_dist_placement as p on p.shardid = x.shardid
        inner join pg_catalog.pg_dist_node as n on n.groupid = p.groupid
        where n.isactive and n.noderole = 'primary'
        order by p.groupid, x.shardid
    );
end;
$function$;

comment on function toolsdb_private.event_node_probes() is
'On Citus: one session id per node holding a shard of toolsdb.events, each falling in a shard of that '
'node, so that a statement naming it runs there (the claims and acknowledgements of the queue). Finds '
'and keeps in toolsdb_private.event_claim_probes a value for each shard that has none. Owner only.';

-- On Citus: makes the caller's transaction a distributed transaction on the
-- nodes of probes before a claim or acknowledgement runs there. Citus takes
-- the statement over the anchors for a read (the writes are inside the
-- function on each node), and runs a read outside a transaction block,
-- committed at once, unless the transaction is already distributed: an
-- acknowledgement that failed on one node stayed applied on the others, and
-- route_events() could acknowledge events before its notifications were
-- stored. A write to an anchor opens the distributed transaction (transaction
-- blocks on every node reached after it); a write to the anchors of two
-- shards or more, a multi-shard modification, also makes Citus commit it in
-- two phases, with the coordinator's own writes. Acknowledgements take that;
-- claims, which are leases, only the transaction blocks.
create or replace function toolsdb_private.join_event_nodes(probes text[], two_phase boolean)
returns void
language plpgsql
volatile
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $function$
declare
    touched text[] := probes;
begin
    if not two_phase then
        touched := probes[1:1];
    elsif pg_catalog.cardinality(touched) < 2 then
        -- One node: a second shard's anchor, so that the write spans two shards.
        touched := touched || array(
            select x.probe from toolsdb_private.event_claim_probes as x
            where x.probe <> all(probes)
            order by x.shardid
            limit 1
        );
    end if;
    -- A write that changes no row (no row has a time before -infinity; the
    -- planner cannot know that): Citus runs it on each shard named, which is
    -- all it takes, and concurrent claims wait for no row lock of one another.
    execute 'update toolsdb_private.event_claim_anchors as a set touched_at = $2'
        ' where a.probe = any($1) and a.touched_at < ''-infinity''::timestamptz'
    using touched, pg_catalog.now();
end;
$function$;

comment on function toolsdb_private.join_event_nodes(text[], boolean) is
'On Citus: runs an UPDATE of anchors of the given probes that changes no row, so that Citus runs '
'the rest of the transaction on the nodes in transaction blocks; with two_phase, of two anchors at '
'least, so that it also commits in two phases. Called by the queue''s claims (without) and '
'acknowledgements (with) before they run on the nodes (docs/citus.md). Owner only.';

-- On Citus: the claim of toolsdb.get_unprocessed_events() and
-- toolsdb.claim_event(), on every node that holds a shard of events, by one
-- statement over the anchors of one probe per node (event_node_probes()):
-- Citus runs it on those nodes at once, on the connections of the caller's
-- distributed transaction, so the claim commits or rolls back with it, as on
-- one node.
create or replace function toolsdb_private.claim_distributed_events(
    batch_size integer,
    lease interval,
    worker text,
    token uuid,
    only_event bigint
)
returns setof toolsdb.events
language plpgsql
volatile
security definer
set search_path = ''
-- Citus plans the statement over the anchors with its parameters' values
-- only (a generic plan of it: "could not create distributed plan"), and
-- get_unprocessed_events() forces generic plans.
set plan_cache_mode = force_custom_plan
as $function$
declare
    probes text[] := toolsdb_private.event_node_probes();
    asked text[];
    shares integer[];
    full_probes text[];
    answer record;
    rows jsonb := '[]';
    got integer;
    wanted integer := batch_size;
    pass integer := 1;
begin
    -- The batch shared out over the nodes, the shares adding up to it (a node
    -- whose share is 0 is not asked); a second pass shares what is still
    -- wanted over the nodes that filled theirs.
    while pg_catalog.cardinality(probes) > 0 and wanted > 0 loop
        select pg_catalog.array_agg(x.probe order by x.n), pg_catalog.array_agg(x.share order by x.n)
        into asked, shares
        from (
            select t.probe, t.n,
                case
                    when only_event is not null then 1  -- the one event may be on any node
                    else wanted / pg_catalog.cardinality(probes)
                        + case when t.n <= wanted % pg_catalog.cardinality(probes) then 1 else 0 end
                end as share
            from pg_catalog.unnest(probes) with ordinality as t (probe, n)
        ) as x
        where x.share > 0;
        full_probes := '{}';
        perform toolsdb_private.join_event_nodes(asked, false);
        for answer in execute
            'select a.probe, ($7::integer[])[pg_catalog.array_position($6::text[], a.probe)] as share,'
            ' toolsdb_private.claim_local_events('
            '  ($7::integer[])[pg_catalog.array_position($6::text[], a.probe)], $2, $3, $4, $5) as part'
            ' from toolsdb_private.event_claim_anchors as a where a.probe = any($6)'
        using batch_size, lease, worker, token, only_event, asked, shares
        loop
            got := pg_catalog.jsonb_array_length(answer.part);
            rows := rows || answer.part;
            wanted := wanted - got;
            if got >= answer.share then
                full_probes := full_probes || answer.probe;
            end if;
        end loop;
        exit when pass = 2 or only_event is not null;
        probes := full_probes;
        pass := 2;
    end loop;
    return query
    select e.*
    from pg_catalog.jsonb_populate_recordset(null::toolsdb.events, rows) as e
    order by e.event_id;
end;
$function$;

comment on function toolsdb_private.claim_distributed_events(integer, interval, text, uuid, bigint) is
'On Citus: claims up to batch_size events (or only the event only_event) for '
'toolsdb.get_unprocessed_events() and toolsdb.claim_event(), on every node that holds a shard of '
'toolsdb.events, by one statement over one probe per node (toolsdb_private.event_claim_anchors), '
'which Citus runs on those nodes at once: shares of the batch that add up to it, and what a node '
'lacked from the nodes that had more. Part of the caller''s transaction. Owner only.';

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
set plan_cache_mode = force_generic_plan
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
    -- On Citus (a setting, read without a query): events distributed over
    -- the workers are claimed there, shard by shard (docs/citus.md). As a
    -- Citus local table (a database migrated by an earlier toolsdb), Citus
    -- cannot plan this claim's generic plan ("could not create distributed
    -- plan"): it is planned for each call.
    if pg_catalog.current_setting('citus.version', true) is not null then
        if toolsdb_private.events_are_distributed() then
            return query select * from toolsdb_private.claim_distributed_events(batch_size, lease, worker, token, null);
            return;
        end if;
        perform pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true);
    end if;
    -- The ids first, as an array: the update then finds each row by its
    -- primary key, whatever the table's size (a join could hash it whole).
    -- Oldest first by event_id, along events_claim_idx; a leased row is
    -- skipped on its visible_at, and the update touches no indexed column,
    -- so it is HOT (schema/43_events.sql).
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
            order by p.event_id
            limit batch_size
            for update skip locked
        ))
        returning e.*
    )
    select * from claimed order by claimed.event_id;
end;
$function$;

comment on function toolsdb.get_unprocessed_events(integer, interval, text) is
'Claims up to batch_size unprocessed events, oldest first (by event_id), for a worker (as '
'get_unprocessed_events does in the hook-notification API): each is leased until now() + lease '
'under one new claim_token, '
'and comes back to the next claimer if not marked processed by then. Concurrent claimers never get '
'the same row (for update skip locked). Commit the claim before working on it. For toolsdb_worker: '
'sees every session.';

create or replace function toolsdb.claim_event(
    event_id bigint,
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
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.current_setting('citus.version', true) is not null and toolsdb_private.events_are_distributed() then
        if claim_event.event_id is not null then
            return query
            select * from toolsdb_private.claim_distributed_events(1, lease, worker, token, claim_event.event_id);
        end if;
        return;
    end if;
    return query
    update toolsdb.events as e
    set visible_at = pg_catalog.now() + lease,
        attempts = e.attempts + 1,
        claim_token = token,
        claimed_by = worker
    where e.event_id = (
        select p.event_id
        from toolsdb.events as p
        where p.event_id = claim_event.event_id and p.processed_at is null and p.visible_at <= pg_catalog.now()
        for update skip locked
    )
    returning e.*;
end;
$function$;

comment on function toolsdb.claim_event(bigint, interval, text) is
'Claims one named event, as get_unprocessed_events() claims a batch: leased until now() + lease '
'under a new claim_token. No row when it is processed, leased by another claim or missing (it '
'waits for no lock held by another claim''s transaction). For the hook-notification API''s '
'mark_event_processed(id) on an event its caller did not claim first. For toolsdb_worker.';

create or replace function toolsdb.mark_events_processed(event_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    wanted integer := (select pg_catalog.count(distinct i) from pg_catalog.unnest(event_ids) as i);
    done integer := 0;
    n integer;
    probes text[];
begin
    if pg_catalog.current_setting('citus.version', true) is not null and toolsdb_private.events_are_distributed() then
        -- On the workers: one statement over the nodes holding a shard, run
        -- on each of them at once (toolsdb_private.claim_distributed_events()),
        -- in this transaction.
        probes := toolsdb_private.event_node_probes();
        perform toolsdb_private.join_event_nodes(probes, true);
        for n in execute
            'select toolsdb_private.ack_local_events($1, $2)'
            ' from toolsdb_private.event_claim_anchors as a where a.probe = any($3)'
        using event_ids, mark_events_processed.claim_token, probes
        loop
            done := done + n;
        end loop;
    else
        update toolsdb.events as e
        set processed_at = pg_catalog.now(),
            claim_token = null
        where e.event_id = any(event_ids)
            and e.claim_token = mark_events_processed.claim_token
            and e.processed_at is null
            and e.visible_at > pg_catalog.now();
        get diagnostics done = row_count;
    end if;
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
'Marks one claimed event processed (mark_event_processed, as in the hook-notification API); '
'refuses with object_not_in_prerequisite_state (55000) when the claim no longer holds it.';

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
    -- Imported V1 history (idempotency key v1:...) is the record of what
    -- happened before toolsdb, not queue traffic: it stays.
    delete from toolsdb.events as e
    where e.processed_at < pg_catalog.now() - older_than
        and (e.idempotency_key is null or e.idempotency_key not like 'v1:%');
    get diagnostics purged = row_count;
    return purged;
end;
$function$;

comment on function toolsdb.purge_processed_events(interval) is
'Retention of the raw event queue: deletes events processed more than older_than ago (default '
'30 days; notifications keep their rows, their event_id becomes null). Events imported by toolsdb '
'import-v1 are history, not queue traffic, and stay. Returns how many.';
