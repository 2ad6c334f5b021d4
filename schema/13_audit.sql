-- schema/13_audit.sql
-- Tier 10: the audit log (docs/security.md). Defines toolsdb.audit_logs
-- (monthly partitions, append-only), the explicit event function
-- toolsdb.audit_event(), change capture that a table opts into with
-- toolsdb.audit_table(), partition maintenance and retention, and the seals
-- (toolsdb.audit_seal(), toolsdb.audit_verify()) that make tampering evident.
-- Its functions, triggers and row-level security: repeatable/13_audit.sql.
-- Needs: schema/00_bootstrap.sql.

-- ---------------------------------------------------------------------------
-- The log
-- ---------------------------------------------------------------------------

-- The log's rules on its text and JSON columns are domains, not table CHECKs: PostgreSQL
-- caches a domain's checks per connection, where it reads a table's CHECKs back from
-- the catalog and plans them again at every statement that writes the table, and every
-- audited write writes here (docs/security.md, "What capture costs").
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.audit_text_200') is null then
        create domain toolsdb.audit_text_200 as text
        constraint audit_text_200_length_is_valid check (char_length(value) between 1 and 200);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_text_1000') is null then
        create domain toolsdb.audit_text_1000 as text
        constraint audit_text_1000_length_is_valid check (char_length(value) between 1 and 1000);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_name') is null then
        create domain toolsdb.audit_name as text
        constraint audit_name_is_valid check (value ~ '^[a-z][a-z0-9_.]*$' and char_length(value) <= 100);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_role_name') is null then
        create domain toolsdb.audit_role_name as text
        constraint audit_role_name_length_is_valid check (char_length(value) between 1 and 63);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_object') is null then
        create domain toolsdb.audit_object as jsonb
        constraint audit_object_is_object check (jsonb_typeof(value) = 'object');
    end if;
end
$domains$;

comment on domain toolsdb.audit_text_200 is
'Text of 1 to 200 characters, in toolsdb.audit_logs (actor, session_id).';

comment on domain toolsdb.audit_text_1000 is
'Text of 1 to 1,000 characters, in toolsdb.audit_logs (entity_id, user_agent).';

comment on domain toolsdb.audit_name is
'A lowercase dotted name (^[a-z][a-z0-9_.]*$, at most 100 characters), in toolsdb.audit_logs '
'(action, entity_type).';

comment on domain toolsdb.audit_role_name is
'A role name (1 to 63 characters), in toolsdb.audit_logs (db_role).';

comment on domain toolsdb.audit_object is
'A JSON object, in toolsdb.audit_logs (old_values, new_values, details).';

create table if not exists toolsdb.audit_logs (
    audit_id bigint generated always as identity,
    logged_at timestamptz not null default now(),
    actor toolsdb.audit_text_200 not null default session_user,
    actor_user_id uuid,
    actor_agent_id uuid,
    session_id toolsdb.audit_text_200,
    action toolsdb.audit_name not null,
    entity_type toolsdb.audit_name,
    entity_id toolsdb.audit_text_1000,
    old_values toolsdb.audit_object,
    new_values toolsdb.audit_object,
    details toolsdb.audit_object not null default '{}',
    client_addr inet,
    user_agent toolsdb.audit_text_1000,
    db_role toolsdb.audit_role_name not null default session_user,
    transaction_id xid8 not null default pg_current_xact_id(),
    -- No table CHECK: every audited write inserts here, and PostgreSQL plans a table's
    -- CHECKs again at each statement. A captured change always names its entity: the
    -- capture trigger, its only writer (audit_event() refuses those actions), takes it
    -- from the row's primary key (docs/security.md, "What capture costs").
    constraint audit_logs_pkey primary key (transaction_id, audit_id, logged_at)
) partition by range (logged_at);

create table if not exists toolsdb.audit_logs_default
partition of toolsdb.audit_logs default;

comment on table toolsdb.audit_logs_default is
'Default partition of toolsdb.audit_logs: entries of months without their own partition land here '
'until toolsdb.audit_create_partitions() moves them.';

create index if not exists audit_logs_entity_type_entity_id_idx
on toolsdb.audit_logs (entity_type, entity_id);

create index if not exists audit_logs_actor_idx on toolsdb.audit_logs (actor);

create index if not exists audit_logs_session_id_idx
on toolsdb.audit_logs (session_id) where session_id is not null;

create index if not exists audit_logs_logged_at_idx on toolsdb.audit_logs using brin (logged_at);

comment on table toolsdb.audit_logs is
'The one audit log of the database, append-only: explicit events (toolsdb.audit_event) and '
'changes captured on audited tables (toolsdb.audit_table). Partitioned by month of logged_at '
'(audit_logs_yYYYYmMM, plus audit_logs_default as a safety net); retention drops whole months. '
'Sealed rows are tamper-evident: see toolsdb.audit_seal() and toolsdb.audit_verify().';

comment on column toolsdb.audit_logs.audit_id is
'Increasing id of the entry (identity); order of insertion, not of commit.';

comment on column toolsdb.audit_logs.logged_at is
'When the entry was written: the start time of the writing transaction (now()). Partition key.';

comment on column toolsdb.audit_logs.actor is
'Who acted, always set: setting toolsdb.actor, else toolsdb.user_id, else toolsdb.agent_id, else the '
'database login role (session_user).';

comment on column toolsdb.audit_logs.actor_user_id is
'The acting toolsdb user (setting toolsdb.user_id), if any. No foreign key: the log outlives users.';

comment on column toolsdb.audit_logs.actor_agent_id is
'The acting agent (setting toolsdb.agent_id), if any. No foreign key: the log outlives agents.';

comment on column toolsdb.audit_logs.session_id is
'The agent session acted for (setting toolsdb.session_id), if any. The application reads only its '
'own session''s entries (row-level security).';

comment on column toolsdb.audit_logs.action is
'What happened: insert, update, delete or truncate for captured changes; an event name in '
'snake_case (e.g. permission_changed, config_updated, notification_sent) for explicit events.';

comment on column toolsdb.audit_logs.entity_type is
'Kind of thing acted on: the table name for captured changes (e.g. users), free snake_case for '
'events (e.g. permission).';

comment on column toolsdb.audit_logs.entity_id is
'Which one: the primary key value as text (a JSON object for composite keys); null for truncate.';

comment on column toolsdb.audit_logs.old_values is
'Before: the whole row for delete, only the changed columns for update; null otherwise. '
'Secret columns read "[redacted]".';

comment on column toolsdb.audit_logs.new_values is
'After: the whole row for insert, only the changed columns for update; null otherwise. '
'Secret columns read "[redacted]".';

comment on column toolsdb.audit_logs.details is
'Free JSON object with anything else worth keeping (event details, request ids).';

comment on column toolsdb.audit_logs.client_addr is
'Address of the end client: setting toolsdb.client_addr, else the database connection''s address.';

comment on column toolsdb.audit_logs.user_agent is
'User agent of the end client (setting toolsdb.user_agent), if any.';

comment on column toolsdb.audit_logs.db_role is
'The database login role (session_user) that wrote the entry.';

comment on column toolsdb.audit_logs.transaction_id is
'Id of the writing transaction (pg_current_xact_id()). Sealing covers ranges of finished '
'transactions; also groups the entries of one transaction.';

-- Tables that are not audited, each with its reason (docs/security.md).
create table if not exists toolsdb_private.audit_exemptions (
    table_name text not null,
    reason text not null,
    constraint audit_exemptions_pkey primary key (table_name),
    constraint table_name_is_valid check (table_name ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
    constraint reason_length_is_valid check (char_length(reason) between 10 and 500)
);

comment on table toolsdb_private.audit_exemptions is
'Tables deliberately not audited by change capture, each with its reason; every other table of '
'schemas toolsdb and toolsdb_private is audited (a catalog test checks it).';

comment on column toolsdb_private.audit_exemptions.table_name is
'Schema-qualified table name, e.g. toolsdb.audit_logs.';

comment on column toolsdb_private.audit_exemptions.reason is 'Why the table is not audited.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.audit_logs', 'the audit log itself: append-only and sealed'),
('toolsdb.audit_seals', 'the proof over the audit log: append-only, chained'),
('toolsdb.audit_prunes', 'written only by audit retention, which leaves an audit event itself'),
('toolsdb_private.audit_exemptions', 'this list: changed only by schema files and migrations')
on conflict (table_name) do nothing;

-- ---------------------------------------------------------------------------
-- Partitions and retention
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.audit_prunes (
    period date not null,
    partition_name text not null,
    row_count bigint not null,
    max_age interval not null,
    pruned_at timestamptz not null default now(),
    pruned_by text not null default session_user,
    constraint audit_prunes_pkey primary key (period),
    constraint period_is_month check (period = date_trunc('month', period)::date),
    constraint partition_name_is_valid check (partition_name ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$'),
    constraint row_count_is_valid check (row_count >= 0),
    constraint pruned_by_length_is_valid check (char_length(pruned_by) between 1 and 63)
);

comment on table toolsdb.audit_prunes is
'Months of the audit log dropped by retention (toolsdb.audit_apply_retention). Verification skips '
'the row check of seals over these months; their seals still chain.';

comment on column toolsdb.audit_prunes.period is 'First day of the month dropped (UTC).';

comment on column toolsdb.audit_prunes.partition_name is 'The partition dropped, e.g. audit_logs_y2025m01.';

comment on column toolsdb.audit_prunes.row_count is 'How many entries the partition held.';

comment on column toolsdb.audit_prunes.max_age is 'The retention age in force when it was dropped.';

comment on column toolsdb.audit_prunes.pruned_at is 'When it was dropped.';

comment on column toolsdb.audit_prunes.pruned_by is 'Database role that ran the retention.';

-- ---------------------------------------------------------------------------
-- Seals: tamper evidence without serializing writers
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.audit_seals (
    seal_id bigint generated always as identity,
    period date not null,
    first_transaction_id xid8 not null,
    end_transaction_id xid8 not null,
    row_count bigint not null,
    first_audit_id bigint not null,
    last_audit_id bigint not null,
    rows_hash bytea not null,
    previous_hash bytea,
    seal_hash bytea not null,
    sealed_at timestamptz not null default now(),
    sealed_by text not null default session_user,
    constraint audit_seals_pkey primary key (seal_id),
    constraint audit_seals_end_transaction_id_period_key unique (end_transaction_id, period),
    constraint period_is_month check (period = date_trunc('month', period)::date),
    constraint transaction_range_is_valid check (first_transaction_id < end_transaction_id),
    constraint row_count_is_positive check (row_count > 0),
    constraint audit_id_range_is_valid check (first_audit_id <= last_audit_id),
    constraint rows_hash_is_sha256 check (octet_length(rows_hash) = 32),
    constraint previous_hash_is_sha256 check (octet_length(previous_hash) = 32),
    constraint seal_hash_is_sha256 check (octet_length(seal_hash) = 32),
    constraint sealed_by_length_is_valid check (char_length(sealed_by) between 1 and 63)
);

comment on table toolsdb.audit_seals is
'Seals over toolsdb.audit_logs, append-only. Each call of toolsdb.audit_seal() seals the entries '
'of every finished transaction not sealed yet (a transaction id range), one row per month, and '
'chains each seal to the previous one. toolsdb.audit_verify() recomputes them.';

comment on column toolsdb.audit_seals.seal_id is 'Order of sealing.';

comment on column toolsdb.audit_seals.period is 'Month (UTC, first day) of the entries this seal covers.';

comment on column toolsdb.audit_seals.first_transaction_id is
'Start of the sealed transaction id range (inclusive): the end of the previous batch.';

comment on column toolsdb.audit_seals.end_transaction_id is
'End of the sealed range (exclusive): the xmin of the sealing snapshot, below which every '
'transaction has finished, so no entry can join the range later.';

comment on column toolsdb.audit_seals.row_count is 'How many entries of the month lie in the range.';

comment on column toolsdb.audit_seals.first_audit_id is 'Lowest audit_id covered.';

comment on column toolsdb.audit_seals.last_audit_id is 'Highest audit_id covered.';

comment on column toolsdb.audit_seals.rows_hash is
'SHA-256 over the SHA-256 digests of the covered entries'' canonical text, in audit_id order.';

comment on column toolsdb.audit_seals.previous_hash is 'seal_hash of the previous seal; null for the first.';

comment on column toolsdb.audit_seals.seal_hash is
'SHA-256 of previous_hash and this seal''s period, range, count and rows_hash: the chain. Publish '
'the newest one outside the database to anchor the log.';

comment on column toolsdb.audit_seals.sealed_at is 'When the seal was made.';

comment on column toolsdb.audit_seals.sealed_by is 'Database role that made it.';
