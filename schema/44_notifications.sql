-- schema/44_notifications.sql
-- Tier 40: outgoing notifications (Slack, Discord, ...) and their delivery queue:
-- insert_notification enqueues, claim_notifications claims a batch with a
-- lease (for update skip locked), mark_notification_sent acks and
-- mark_notification_failed retries with exponential backoff and jitter until
-- max_attempts, then dead-letters; get_dead_notifications and
-- redrive_notifications handle the dead letters. pg_notify on channel
-- toolsdb_notifications once per inserting statement. Row-level security
-- per session; not audited (queue churn; the row's attempts, last_error and
-- sent_at are the delivery record). See docs/runtime.md.
-- Where they go: toolsdb.notification_destinations (a name, a backend and the
-- encrypted config secret holding the URL or SMTP settings), written by
-- `toolsdb notify destination set`; the rules that make notifications from
-- events are in schema/47_notification_rules.sql.
-- Its functions, triggers and row-level security: repeatable/44_notifications.sql.
-- Needs: schema/14_config.sql, schema/20_users.sql, schema/40_sessions.sql,
-- schema/43_events.sql.

create table if not exists toolsdb.notification_destinations (
    destination_name text not null,
    backend text not null,
    secret_key text not null,
    user_id uuid,
    enabled boolean not null default true,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notification_destinations_pkey primary key (destination_name),
    constraint notification_destinations_secret_key_fkey foreign key (secret_key)
    references toolsdb.config (key) on delete restrict,
    constraint notification_destinations_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint destination_name_is_valid check (
        destination_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' and char_length(destination_name) <= 100
    ),
    constraint backend_is_valid check (backend in ('slack', 'discord', 'email', 'webhook')),
    constraint description_length_is_valid check (char_length(description) between 1 and 1000)
);

create index if not exists notification_destinations_secret_key_idx
on toolsdb.notification_destinations (secret_key);

create index if not exists notification_destinations_user_id_idx
on toolsdb.notification_destinations (user_id);

comment on table toolsdb.notification_destinations is
'Where notifications go: a Slack or Discord incoming webhook, a generic JSON webhook or an SMTP '
'mailbox. The URL (or smtp:// settings with credentials) is never a column here: it is the '
'encrypted config secret named by secret_key, decrypted by the worker. A destination with a '
'user_id is that user''s: rules that notify the session''s user send to it. Written by '
'toolsdb.notification_destination_set() (toolsdb notify destination set).';

comment on column toolsdb.notification_destinations.destination_name is
'Unique name, letters, digits, _ . - (at most 100); "default" receives what a session''s user cannot.';

comment on column toolsdb.notification_destinations.backend is
'How to deliver: slack (POST {"text"}), discord (POST {"content"}), webhook (POST the notification as '
'JSON) or email (SMTP).';

comment on column toolsdb.notification_destinations.secret_key is
'The toolsdb.config key of the encrypted secret holding the URL (for email an SMTP URL such as '
'smtp://user:pass@host:587/?from=a@b&to=c@d&starttls=1); it cannot be unset while used here.';

comment on column toolsdb.notification_destinations.user_id is
'The user it belongs to, or null (shared); rules with recipient session_user send to the session '
'user''s enabled destinations. Deleting the user deletes it.';

comment on column toolsdb.notification_destinations.enabled is
'False to keep it without sending to it: rules skip it and the worker fails what is queued for it.';

comment on column toolsdb.notification_destinations.description is 'What it is, 1-1000 characters.';

comment on column toolsdb.notification_destinations.created_at is
'When it was added; set by trigger _100_timestamps.';

comment on column toolsdb.notification_destinations.updated_at is
'When it was last changed; set by trigger _100_timestamps.';

-- A queue: vacuum after a fixed count of dead claims, not 20% of the table
-- (docs/operations.md, tests/bench_churn.py). No fillfactor: every update
-- changes status, a predicate column of the claim and dead-letter indexes.
create table if not exists toolsdb.notifications (
    notification_id bigint generated always as identity,
    event_id bigint,
    session_id text not null,
    notification_type text not null,
    backend text not null,
    destination_name text,
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
    constraint notifications_destination_name_fkey foreign key (destination_name)
    references toolsdb.notification_destinations (destination_name) on delete set null,
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
) with (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- The claim query of claim_notifications(), exactly: open rows in
-- next_attempt_at, notification_id order.
create index if not exists notifications_claim_idx on toolsdb.notifications (next_attempt_at, notification_id)
where status in ('pending', 'sending', 'failed');

create index if not exists notifications_dead_idx on toolsdb.notifications (notification_id)
where status = 'dead';

create index if not exists notifications_event_id_idx on toolsdb.notifications (event_id);

create index if not exists notifications_destination_name_idx on toolsdb.notifications (destination_name);

create index if not exists notifications_session_id_idx on toolsdb.notifications (session_id, created_at);

comment on table toolsdb.notifications is
'Notifications to deliver: permission requests, finished tasks, ... to Slack, Discord, email or a '
'webhook, with retries. A queue: claim_notifications() leases a batch, mark_notification_sent() or '
'mark_notification_failed() settles each; failures back off exponentially with jitter and after '
'max_attempts the row is dead (a dead letter) until redrive_notifications(). Row-level security: '
'the application sees its session''s rows.';

comment on column toolsdb.notifications.notification_id is 'Increasing id.';

comment on column toolsdb.notifications.event_id is
'The raw event that caused it, if any (null once that event is purged).';

comment on column toolsdb.notifications.session_id is 'The session it is about.';

comment on column toolsdb.notifications.notification_type is
'What it is about, snake_case: permission, task_complete, idle, error, ...';

comment on column toolsdb.notifications.backend is 'Where it goes: slack, discord, email or webhook.';

comment on column toolsdb.notifications.destination_name is
'The destination to deliver to (set by route_events()); null: the destination named default '
'(notifications queued by insert_notification, or whose destination was deleted).';

comment on column toolsdb.notifications.status is
'pending (waiting), sending (claimed, leased until next_attempt_at), sent, failed (will retry at '
'next_attempt_at) or dead (gave up after max_attempts; a dead letter).';

comment on column toolsdb.notifications.payload is
'What the backend sends (a JSON object); from a rule: message (the rendered template), rule, '
'event_type and the matched payload fields.';

comment on column toolsdb.notifications.attempts is
'Delivery attempts so far (retry_count in the hook-notification API); each claim is one.';

comment on column toolsdb.notifications.max_attempts is
'Attempts before it is dead-lettered, 1-100; default 3 (the hook-notification API''s retry limit).';

comment on column toolsdb.notifications.last_error is
'Error of the last failed attempt (error in the hook-notification API).';

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
