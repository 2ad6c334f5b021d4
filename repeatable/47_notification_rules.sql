-- repeatable/47_notification_rules.sql
-- Tier 40: the rules that turn hook events into notifications, and their
-- destinations: route_events() claims events, applies the enabled rules,
-- queues one notification per (rule, event, destination) and marks the
-- events processed, in one transaction; notification_rule_set / _enable /
-- _delete and notification_destination_set / _delete manage them from psql;
-- notification_destination_secret() hands the worker a destination's
-- encrypted secret. Glob patterns (glob_to_like) and templates
-- (render_notification_template) are linear in their input: no user regular
-- expression is ever run. See docs/runtime.md.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/47_notification_rules.sql and schema/44_notifications.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.notification_rules
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.notification_rules is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.notification_rules');

create or replace function toolsdb_private.glob_to_like(pattern text)
returns text
language sql
immutable
strict
set search_path = ''
as $function$
    -- * any run, ? one character, \x the character x; LIKE's own % and _
    -- are literal. A trailing lone backslash is a literal backslash.
    select coalesce(pg_catalog.string_agg(
        case
            when t.m[1] = '*' then '%'
            when t.m[1] = '?' then '_'
            when t.m[1] in ('%', '_') then '\' || t.m[1]
            when t.m[1] = '\' then '\\'
            else t.m[1]
        end, '' order by t.n
    ), '')
    from pg_catalog.regexp_matches(pattern, '\\.|.', 'g') with ordinality as t (m, n);
$function$;

comment on function toolsdb_private.glob_to_like(text) is
'A glob (* any run, ? one character, \ escapes the next) as a LIKE pattern; PostgreSQL''s LIKE '
'is never exponential, so a hostile pattern or value cannot burn CPU as a regular expression could.';

create or replace function toolsdb_private.render_notification_template(template text, vars jsonb)
returns text
language sql
immutable
set search_path = ''
as $function$
    -- One pass over the template (at most 2,000 characters): each
    -- {placeholder} named in vars is replaced by its value cut to 500
    -- characters; values are never scanned, so a value holding {message}
    -- stays as written.
    select pg_catalog.left(coalesce(pg_catalog.string_agg(
        case
            when t.m[1] ~ '^\{[a-z_]+\}$' and vars ? pg_catalog.substr(t.m[1], 2, char_length(t.m[1]) - 2)
                then coalesce(pg_catalog.left(vars ->> pg_catalog.substr(t.m[1], 2, char_length(t.m[1]) - 2), 500), '')
            else t.m[1]
        end, '' order by t.n
    ), ''), 3000)
    from pg_catalog.regexp_matches(template, '\{[a-z_]+\}|[^{]+|\{', 'g') with ordinality as t (m, n);
$function$;

comment on function toolsdb_private.render_notification_template(text, jsonb) is
'The message of a rule: template with each {name} of vars replaced by its value (cut to 500 '
'characters; null: empty), in one pass; unknown placeholders stay; the result is cut to 3000 characters.';

create or replace function toolsdb.route_events(
    batch_size integer default 100,
    worker text default null,
    out events_routed integer,
    out notifications_queued integer
)
returns record
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    claimed toolsdb.events[];
    batch_sessions text[];
    session_info jsonb;
begin
    -- Claimed, routed and marked processed in this one transaction: a
    -- worker that dies before its commit leaves the events unprocessed and
    -- nothing queued; the idempotency key makes a second routing of an event
    -- (processed again by hand) queue nothing new. On Citus too: the claims
    -- on the workers are part of this transaction (docs/citus.md).
    claimed := array(select e from toolsdb.get_unprocessed_events(batch_size, '5 minutes', worker) as e);
    events_routed := coalesce(cardinality(claimed), 0);
    notifications_queued := 0;
    if events_routed = 0 then
        return;
    end if;
    -- The sessions of the batch, read apart from the rules: on Citus they are
    -- on the workers, and the events and rules on the coordinator (docs/citus.md).
    batch_sessions := array(select distinct c.session_id from pg_catalog.unnest(claimed) as c);
    select pg_catalog.jsonb_object_agg(
        s.session_id,
        pg_catalog.jsonb_build_object('user_id', s.user_id, 'cwd', s.cwd, 'project_id', s.project_id, 'agent_id', s.agent_id)
    )
    into session_info
    from toolsdb.sessions as s
    where s.session_id = any(batch_sessions);
    with matched as (
        select
            e.event_id,
            e.session_id,
            e.event_type,
            r.rule_name,
            r.priority,
            r.recipient,
            r.destination_name as rule_destination,
            r.notification_type,
            r.message_template,
            r.max_attempts,
            s.user_id,
            pg_catalog.jsonb_build_object(
                'message', pg_catalog.left(e.payload ->> 'message', 500),
                'notification_type', pg_catalog.left(e.payload ->> 'notification_type', 500),
                'tool_name', pg_catalog.left(e.payload ->> 'tool_name', 500),
                'cwd', pg_catalog.left(coalesce(e.payload ->> 'cwd', s.cwd), 500),
                'session_id', e.session_id,
                'event_type', e.event_type,
                'project', (select p.name from toolsdb.projects as p where p.project_id = s.project_id),
                'user', (select u.username from toolsdb.users as u where u.user_id = s.user_id),
                'agent', (select a.name from toolsdb.agents as a where a.agent_id = s.agent_id),
                'last_assistant_message', pg_catalog.left(e.payload ->> 'last_assistant_message', 500),
                'rule', r.rule_name
            ) as vars
        from pg_catalog.unnest(claimed) as e
        inner join pg_catalog.jsonb_each(session_info) as j (session_id, info) on e.session_id = j.session_id
        cross join lateral pg_catalog.jsonb_to_record(j.info) as s (user_id uuid, cwd text, project_id uuid, agent_id uuid)
        inner join toolsdb.notification_rules as r
            on
                r.enabled
                and r.match_event_type = e.event_type
                and (
                    r.match_notification_type is null
                    or coalesce(pg_catalog.left(e.payload ->> 'notification_type', 4096), '')
                    like toolsdb_private.glob_to_like(r.match_notification_type)
                )
                and (
                    r.match_tool_name is null
                    or coalesce(pg_catalog.left(e.payload ->> 'tool_name', 4096), '')
                    like toolsdb_private.glob_to_like(r.match_tool_name)
                )
                and (
                    r.match_cwd is null
                    or coalesce(pg_catalog.left(coalesce(e.payload ->> 'cwd', s.cwd), 4096), '')
                    like toolsdb_private.glob_to_like(r.match_cwd)
                )
                and (r.match_project_id is null or r.match_project_id = s.project_id)
    ),
    made as (
        insert into toolsdb.notifications (
            event_id, session_id, notification_type, backend, destination_name, payload, max_attempts, idempotency_key
        )
        select
            m.event_id,
            m.session_id,
            m.notification_type,
            d.backend,
            d.destination_name,
            pg_catalog.jsonb_build_object(
                'message', toolsdb_private.render_notification_template(m.message_template, m.vars),
                'rule', m.rule_name,
                'event_type', m.event_type
            ) || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                'hook_notification_type', m.vars -> 'notification_type',
                'tool_name', m.vars -> 'tool_name',
                'cwd', m.vars -> 'cwd',
                'project', m.vars -> 'project',
                'user', m.vars -> 'user'
            )),
            m.max_attempts,
            'rule:' || m.rule_name || ':event:' || m.event_id || ':to:' || d.destination_name
        from matched as m
        cross join lateral (
            -- The rule's destination, or the session user's, or default.
            select x.destination_name, x.backend
            from toolsdb.notification_destinations as x
            where x.enabled and (
                (m.recipient = 'destination' and x.destination_name = m.rule_destination)
                or (m.recipient = 'session_user' and x.user_id = m.user_id)
                or (
                    m.recipient = 'session_user' and x.destination_name = 'default'
                    and not exists (
                        select from toolsdb.notification_destinations as y
                        where y.enabled and y.user_id = m.user_id
                    )
                )
            )
        ) as d
        order by m.event_id, m.priority, m.rule_name, d.destination_name
        on conflict on constraint notifications_idempotency_key_key do nothing
        returning 1
    )
    select pg_catalog.count(*)::integer into notifications_queued from made;
    perform toolsdb.mark_events_processed(
        array(select c.event_id from pg_catalog.unnest(claimed) as c), claimed[1].claim_token
    );
end;
$function$;

comment on function toolsdb.route_events(integer, text) is
'Turns hook events into notifications, in one transaction: claims up to batch_size unprocessed '
'events (as get_unprocessed_events does), applies every enabled notification rule matching each '
'(in priority order), queues one notification per (rule, event, destination) with the rendered '
'message in its payload and the idempotency key rule:<rule>:event:<id>:to:<destination> (so routing '
'an event again queues nothing new), and marks the events processed, matched or not. Recipient '
'session_user: the enabled destinations of the session''s user; none (or no user): the enabled '
'destination named default; none either: nothing. Returns how many events and notifications. For '
'toolsdb_worker.';

create or replace function toolsdb.notification_destination_secret(destination_name text)
returns table (backend text, enabled boolean, secret_key text, secret_value text, secret_key_id text)
language sql
stable
security definer
set search_path = ''
as $function$
    select d.backend, d.enabled, d.secret_key, c.secret_value, c.secret_key_id
    from toolsdb.notification_destinations as d
    inner join toolsdb.config as c on c.key = d.secret_key
    where d.destination_name = notification_destination_secret.destination_name;
$function$;

comment on function toolsdb.notification_destination_secret(text) is
'What a worker needs to deliver to a destination: its backend, whether it is enabled, and the '
'Fernet token of its config secret with the id of the key that encrypted it (the worker decrypts; '
'the database never holds the plaintext). No row when it does not exist. For toolsdb_worker.';

create or replace function toolsdb.notification_destination_set(
    destination_name text,
    backend text,
    secret_key text,
    user_id uuid default null,
    enabled boolean default true,
    description text default null
)
returns toolsdb.notification_destinations
language plpgsql
volatile
set search_path = ''
as $function$
declare
    result toolsdb.notification_destinations;
begin
    if not exists (
        select from toolsdb.config as c where c.key = notification_destination_set.secret_key and c.is_secret
    ) then
        raise exception 'config key % is not an encrypted secret', coalesce(pg_catalog.quote_literal(secret_key), 'null')
            using errcode = 'invalid_parameter_value',
            hint = 'store the URL first: toolsdb config set KEY --secret, or use toolsdb notify destination set';
    end if;
    insert into toolsdb.notification_destinations as d (
        destination_name, backend, secret_key, user_id, enabled, description
    )
    values (
        notification_destination_set.destination_name, notification_destination_set.backend,
        notification_destination_set.secret_key, notification_destination_set.user_id,
        coalesce(notification_destination_set.enabled, true), notification_destination_set.description
    )
    on conflict on constraint notification_destinations_pkey do update
    set backend = excluded.backend,
        secret_key = excluded.secret_key,
        user_id = excluded.user_id,
        enabled = excluded.enabled,
        description = coalesce(excluded.description, d.description)
    returning * into result;
    return result;
end;
$function$;

comment on function toolsdb.notification_destination_set(text, text, text, uuid, boolean, text) is
'Adds or replaces a notification destination: its backend (slack, discord, webhook, email), the '
'config key of the encrypted secret holding its URL (it must exist and be a secret: a plain URL is '
'refused), its owner (user_id; null: shared) and whether it is enabled. Returns the row.';

create or replace function toolsdb.notification_destination_delete(destination_name text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
begin
    delete from toolsdb.notification_destinations as d
    where d.destination_name = notification_destination_delete.destination_name;
    return found;
end;
$function$;

comment on function toolsdb.notification_destination_delete(text) is
'Deletes a destination (its config secret stays); refused (foreign_key_violation) while a rule '
'names it. Its queued notifications then go to the destination named default. False when absent.';

create or replace function toolsdb.notification_rule_set(
    rule_name text,
    match_event_type text,
    message_template text,
    notification_type text default 'notice',
    recipient text default null,
    destination_name text default null,
    match_notification_type text default null,
    match_tool_name text default null,
    match_cwd text default null,
    match_project_id uuid default null,
    priority integer default 100,
    max_attempts integer default 3,
    enabled boolean default true,
    description text default null
)
returns toolsdb.notification_rules
language plpgsql
volatile
set search_path = ''
as $function$
declare
    result toolsdb.notification_rules;
begin
    insert into toolsdb.notification_rules as r (
        rule_name, match_event_type, message_template, notification_type, recipient, destination_name,
        match_notification_type, match_tool_name, match_cwd, match_project_id, priority, max_attempts,
        enabled, description
    )
    values (
        notification_rule_set.rule_name, notification_rule_set.match_event_type, notification_rule_set.message_template,
        coalesce(notification_rule_set.notification_type, 'notice'),
        case
            when notification_rule_set.destination_name is not null and notification_rule_set.recipient is null
                then 'destination'
            else coalesce(notification_rule_set.recipient, 'session_user')
        end,
        notification_rule_set.destination_name, notification_rule_set.match_notification_type,
        notification_rule_set.match_tool_name, notification_rule_set.match_cwd,
        notification_rule_set.match_project_id, coalesce(notification_rule_set.priority, 100),
        coalesce(notification_rule_set.max_attempts, 3), coalesce(notification_rule_set.enabled, true),
        notification_rule_set.description
    )
    on conflict on constraint notification_rules_pkey do update
    set match_event_type = excluded.match_event_type,
        message_template = excluded.message_template,
        notification_type = excluded.notification_type,
        recipient = excluded.recipient,
        destination_name = excluded.destination_name,
        match_notification_type = excluded.match_notification_type,
        match_tool_name = excluded.match_tool_name,
        match_cwd = excluded.match_cwd,
        match_project_id = excluded.match_project_id,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        enabled = excluded.enabled,
        description = coalesce(excluded.description, r.description)
    returning * into result;
    return result;
end;
$function$;

comment on function toolsdb.notification_rule_set(
    text, text, text, text, text, text, text, text, text, uuid, integer, integer, boolean, text
) is
'Adds or replaces a notification rule (every argument; the description is kept when null): which '
'event (match_event_type, and globs on the payload''s notification_type, tool_name and cwd, and '
'a project) makes which notification_type for whom (recipient session_user, or destination with '
'destination_name; null: destination when destination_name is given, else session_user), with '
'which message_template. Returns the row; a bad value is a check_violation naming '
'the rule it breaks.';

create or replace function toolsdb.notification_rule_enable(rule_name text, enabled boolean default true)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
begin
    update toolsdb.notification_rules as r
    set enabled = coalesce(notification_rule_enable.enabled, true)
    where r.rule_name = notification_rule_enable.rule_name
        and r.enabled is distinct from coalesce(notification_rule_enable.enabled, true);
    return found or exists (select from toolsdb.notification_rules as r where r.rule_name = notification_rule_enable.rule_name);
end;
$function$;

comment on function toolsdb.notification_rule_enable(text, boolean) is
'Enables (or with false disables) a rule; false when there is no such rule.';

create or replace function toolsdb.notification_rule_delete(rule_name text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $function$
begin
    delete from toolsdb.notification_rules as r where r.rule_name = notification_rule_delete.rule_name;
    return found;
end;
$function$;

comment on function toolsdb.notification_rule_delete(text) is
'Deletes a rule (a default one included: migrate does not bring it back); false when absent.';
