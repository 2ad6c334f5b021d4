-- schema/47_notification_rules.sql
-- Tier 40: toolsdb.notification_rules, which hook event makes which
-- notification for whom: a rule matches the event's type and, optionally,
-- the payload's notification_type and tool_name (glob patterns), the cwd
-- (glob) and the session's project; it sends to the session's user (their
-- destinations, else the destination named default) or to one named
-- destination, with a message template. toolsdb.route_events() applies them
-- (repeatable/47_notification_rules.sql); toolsdb worker runs it. Three
-- default rules: a permission prompt, an idle prompt and a finished turn
-- (Stop) notify the session's user. Audited. See docs/runtime.md.
-- Its functions, triggers and row-level security: repeatable/47_notification_rules.sql.
-- Needs: schema/21_projects.sql, schema/44_notifications.sql.

create table if not exists toolsdb.notification_rules (
    rule_name text not null,
    enabled boolean not null default true,
    priority integer not null default 100,
    match_event_type text not null,
    match_notification_type text,
    match_tool_name text,
    match_cwd text,
    match_project_id uuid,
    recipient text not null default 'session_user',
    destination_name text,
    notification_type text not null,
    message_template text not null,
    max_attempts integer not null default 3,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notification_rules_pkey primary key (rule_name),
    constraint notification_rules_match_project_id_fkey foreign key (match_project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint notification_rules_destination_name_fkey foreign key (destination_name)
    references toolsdb.notification_destinations (destination_name) on delete restrict,
    constraint rule_name_is_valid check (rule_name ~ '^[a-z0-9][a-z0-9_.-]*$' and char_length(rule_name) <= 100),
    constraint priority_is_valid check (priority between -1000000 and 1000000),
    constraint match_event_type_is_valid check (
        match_event_type ~ '^[[:graph:]]+$' and char_length(match_event_type) <= 100
    ),
    constraint match_notification_type_length_is_valid check (char_length(match_notification_type) between 1 and 200),
    constraint match_tool_name_length_is_valid check (char_length(match_tool_name) between 1 and 200),
    constraint match_cwd_length_is_valid check (char_length(match_cwd) between 1 and 1000),
    constraint recipient_is_valid check (recipient in ('session_user', 'destination')),
    constraint destination_matches_recipient check ((recipient = 'destination') = (destination_name is not null)),
    constraint notification_type_is_valid check (
        notification_type ~ '^[a-z][a-z0-9_]*$' and char_length(notification_type) <= 50
    ),
    constraint message_template_length_is_valid check (char_length(message_template) between 1 and 2000),
    constraint max_attempts_is_valid check (max_attempts between 1 and 100),
    constraint description_length_is_valid check (char_length(description) between 1 and 1000)
);

create index if not exists notification_rules_event_idx on toolsdb.notification_rules (match_event_type, priority)
where enabled;

create index if not exists notification_rules_match_project_id_idx on toolsdb.notification_rules (match_project_id);

create index if not exists notification_rules_destination_name_idx on toolsdb.notification_rules (destination_name);

comment on table toolsdb.notification_rules is
'Which hook event makes which notification, for whom, with which message. route_events() applies '
'every enabled rule matching an event (all of them, in priority order): one notification per '
'(rule, event, destination). Patterns are globs (* any run, ? one character, \ escapes), matched '
'with LIKE, never regular expressions. Managed with toolsdb.notification_rule_set(), '
'notification_rule_enable() and notification_rule_delete().';

comment on column toolsdb.notification_rules.rule_name is
'Unique name, lowercase letters, digits, _ . - (at most 100).';

comment on column toolsdb.notification_rules.enabled is 'False to keep the rule without applying it.';

comment on column toolsdb.notification_rules.priority is
'Order in which matching rules make their notifications, lowest first (then rule_name); default 100.';

comment on column toolsdb.notification_rules.match_event_type is
'The hook event it applies to, exactly as stored in toolsdb.events.event_type (Notification, Stop, PreToolUse, ...).';

comment on column toolsdb.notification_rules.match_notification_type is
'Glob the payload''s notification_type must match (permission_prompt, idle_prompt, ...); null: any, or none.';

comment on column toolsdb.notification_rules.match_tool_name is
'Glob the payload''s tool_name must match (Bash, mcp__*); null: any, or none.';

comment on column toolsdb.notification_rules.match_cwd is
'Glob the event''s cwd (the payload''s, else the session''s) must match, such as /home/*/work/*; null: any.';

comment on column toolsdb.notification_rules.match_project_id is
'Only events of sessions of this project; null: any. Deleting the project deletes the rule.';

comment on column toolsdb.notification_rules.recipient is
'session_user: the enabled destinations of the session''s user, else the destination named default '
'(else nothing); destination: the named destination_name.';

comment on column toolsdb.notification_rules.destination_name is
'The destination when recipient is destination; null otherwise. A used destination cannot be deleted.';

comment on column toolsdb.notification_rules.notification_type is
'The notification_type of the notifications it makes, snake_case (permission, idle, task_complete, ...).';

comment on column toolsdb.notification_rules.message_template is
'The message, 1-2000 characters, with {placeholders}: message, notification_type, tool_name, cwd, '
'session_id, event_type, project, user, agent, last_assistant_message, rule. Each value is cut to '
'500 characters and the message to 3000; unknown placeholders stay as written.';

comment on column toolsdb.notification_rules.max_attempts is
'Delivery attempts of its notifications before they are dead letters, 1-100; default 3.';

comment on column toolsdb.notification_rules.description is 'What the rule is for, 1-1000 characters.';

comment on column toolsdb.notification_rules.created_at is 'When it was added; set by trigger _100_timestamps.';

comment on column toolsdb.notification_rules.updated_at is 'When it was last changed; set by trigger _100_timestamps.';

-- The default rule set: what design 001 was built for (reference rows; a
-- rule changed or deleted by its users stays so).
insert into toolsdb.notification_rules (
    rule_name, priority, match_event_type, match_notification_type, notification_type, message_template, description
) values
(
    'permission_prompt', 10, 'Notification', 'permission_prompt', 'permission',
    'Claude needs your permission in {cwd}: {message}',
    'A permission prompt notifies the session''s user.'
),
(
    'idle_prompt', 20, 'Notification', 'idle_prompt', 'idle',
    'Claude is waiting for your input in {cwd}: {message}',
    'An idle prompt notifies the session''s user.'
),
(
    'stop', 30, 'Stop', null, 'task_complete',
    'Claude finished its turn in {cwd}. {last_assistant_message}',
    'A finished turn (Stop) notifies the session''s user.'
)
on conflict on constraint notification_rules_pkey do nothing;
