-- repeatable/46_import_v1.sql
-- Tier 40: import of the V1 JSON files of Slack hook notifications, under the
-- names of the hook-notification API:
-- import_v1_tool_request() and import_v1_notification_state(). Each is
-- idempotent through the idempotency_key of the row it makes, so importing
-- the same files again adds nothing. `toolsdb import-v1 DIR` reads the
-- files and calls these (and toolsdb.config for the Slack config, whose
-- webhook URL is encrypted client-side).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

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
'Imports one V1 tool request file (import_v1_tool_request, as in the hook-notification API) as an '
'already processed event of its session (created if missing) at requested_at; source_key (the file '
'name) makes it idempotent. Returns true when imported, false when it was already there.';

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
'Imports one V1 notification state (import_v1_notification_state, as in the hook-notification '
'API): sent ones as sent, any other as a dead letter (last_error says so; redrive_notifications() '
'sends it), so nothing stale goes out by surprise. The whole state is kept in payload.v1_state. '
'Idempotent by the state''s id (else source_key and a hash of the state). Returns true when '
'imported.';
