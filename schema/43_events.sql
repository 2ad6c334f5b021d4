-- schema/43_events.sql
-- Tier 40: raw hook events (the events table) and the queue around
-- them: toolsdb.hook_ingest() stores one Claude Code hook payload and keeps
-- its session up to date in one call; workers claim unprocessed events with
-- leases (get_unprocessed_events) and mark them processed with the claim's
-- token (mark_event_processed). pg_notify('toolsdb_events') once per
-- inserting statement. Row-level security per session; not audited (the
-- rows are themselves the raw record). See docs/runtime.md.
-- Its functions, triggers and row-level security: repeatable/43_events.sql.
-- Needs: schema/40_sessions.sql.

-- Domains, not table CHECKs, as for sessions (schema/40_sessions.sql): every
-- hook event inserts here.
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.hook_payload') is null then
        create domain toolsdb.hook_payload as jsonb
        constraint payload_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.idempotency_key') is null then
        create domain toolsdb.idempotency_key as text
        constraint idempotency_key_length_is_valid check (char_length(value) between 1 and 300);
    end if;
    if pg_catalog.to_regtype('toolsdb.event_attempts') is null then
        create domain toolsdb.event_attempts as integer
        constraint attempts_is_not_negative check (value >= 0);
    end if;
    if pg_catalog.to_regtype('toolsdb.worker_name') is null then
        create domain toolsdb.worker_name as text
        constraint claimed_by_length_is_valid check (char_length(value) between 1 and 200);
    end if;
end
$domains$;

comment on domain toolsdb.hook_payload is 'A hook payload, a JSON object, in toolsdb.events.';

comment on domain toolsdb.idempotency_key is
'A source''s key of an event, 1 to 300 characters, in toolsdb.events.';

comment on domain toolsdb.event_attempts is 'How many times an event was claimed, not negative, in toolsdb.events.';

comment on domain toolsdb.worker_name is 'A worker''s name, 1 to 200 characters, in toolsdb.events (claimed_by).';

-- A queue: vacuum after a fixed count of dead claims, not 20% of the table
-- (docs/operations.md, tests/bench_churn.py). Fillfactor 50: a claim changes
-- no indexed column (the claim index is on event_id alone), so with room on
-- the page for each row's second version it is a HOT update that writes no
-- index entry; the ack (processed_at, the claim index's predicate) is not.
create table if not exists toolsdb.events (
    event_id bigint generated always as identity,
    session_id text not null,
    event_type toolsdb.hook_event_name not null,
    payload toolsdb.hook_payload not null,
    idempotency_key toolsdb.idempotency_key,
    created_at timestamptz not null default now(),
    visible_at timestamptz not null default now(),
    attempts toolsdb.event_attempts not null default 0,
    claim_token uuid,
    claimed_by toolsdb.worker_name,
    processed_at timestamptz,
    constraint events_pkey primary key (event_id),
    constraint events_idempotency_key_key unique (idempotency_key),
    constraint events_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade
) with (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- The claim query of get_unprocessed_events(), exactly: unprocessed rows in
-- event_id order. visible_at is checked on the row, not kept here: a claim
-- sets it, and an indexed column would make every claim a non-HOT update.
create index if not exists events_claim_idx on toolsdb.events (event_id)
where processed_at is null;

create index if not exists events_session_id_idx on toolsdb.events (session_id, created_at);

create index if not exists events_created_at_idx on toolsdb.events using brin (created_at);

comment on table toolsdb.events is
'Raw agent hook events: the payload exactly as the hook received it, for workers to process. A '
'queue: get_unprocessed_events() claims a batch with a lease, mark_event_processed() settles it; '
'an event whose worker died comes back when its lease ends. Row-level security: the application '
'sees only the events of toolsdb.session_id.';

comment on column toolsdb.events.event_id is 'Increasing id.';

comment on column toolsdb.events.session_id is 'The session it belongs to; deleting the session deletes its events.';

comment on column toolsdb.events.event_type is
'Hook event name as sent (PreToolUse, Notification, SessionEnd, ...); unknown names are kept as they are.';

comment on column toolsdb.events.payload is
'The hook payload (hook_payload in the hook-notification API), a JSON object, unchanged.';

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
